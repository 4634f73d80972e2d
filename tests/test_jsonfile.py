"""A broken run-folder JSON file is named in the error (issue 23, item 11).

``cnnlab plot RUN`` with a truncated metrics.json said only ``Expecting value: line 2 column 1``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnlab.cli.main import main
from cnnlab.jsonfile import InvalidJSONFile, read_json, read_json_object
from cnnlab.train.analysis.tune import load_space
from cnnlab.train.loop.history import History

HISTORY = "epoch,train_loss,train_accuracy,val_loss,val_accuracy,lr,seconds\n1,2.0,0.5,2.1,0.4,0.01,1.0\n"


def test_read_json_names_the_file_and_where_it_broke(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    path.write_text('{"accuracy":\n')
    with pytest.raises(InvalidJSONFile) as info:
        read_json(path)
    assert str(info.value) == (
        f"{path} is not valid JSON (Expecting value at line 2 column 1; a truncated or hand-edited file?)"
    )
    assert isinstance(info.value, ValueError)  # callers that tolerate ValueError still do


def test_read_json_object_refuses_other_values_and_allows_a_missing_default(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("[1, 2]")
    with pytest.raises(
        InvalidJSONFile, match=r"config.json must hold a JSON object \(\{...\}\). Received: a JSON array"
    ):
        read_json_object(path)
    path.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(InvalidJSONFile, match=r"config.json is not valid JSON \(not UTF-8 text at byte 7\)"):
        read_json_object(path)
    assert read_json_object(tmp_path / "absent.json", missing={}) == {}
    with pytest.raises(FileNotFoundError):
        read_json(tmp_path / "absent.json")


@pytest.mark.parametrize("name", ["metrics.json", "config.json"])
def test_cnnlab_plot_names_the_broken_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    pytest.importorskip("matplotlib")
    run = tmp_path / "run"
    run.mkdir()
    (run / "history.csv").write_text(HISTORY)
    (run / name).write_text("{\n")
    assert main(["plot", str(run), "--no-tsne"]) == 1
    err = capsys.readouterr().err
    assert f"cnnlab plot: error: {run / name} is not valid JSON (" in err, err


def test_a_broken_tune_space_and_history_json_name_their_file(tmp_path: Path) -> None:
    space = tmp_path / "space.json"
    space.write_text('{"lr": \n')
    with pytest.raises(InvalidJSONFile, match=r"space.json is not valid JSON \(Expecting value at line 2"):
        load_space(space)
    history = tmp_path / "history.json"
    history.write_text("[]")
    with pytest.raises(InvalidJSONFile, match=r"history.json must hold a JSON object"):
        History.from_json(history)
