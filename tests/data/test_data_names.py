"""Dataset names and the missing-dataset advice (issue 23, items 12 and 14)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnlab.cli.main import main
from cnnlab.data.datasets import load_dataset


@pytest.mark.parametrize("name", ["", "  "])
def test_an_empty_dataset_name_is_refused(name: str) -> None:
    with pytest.raises(
        ValueError, match=r"load_dataset: the dataset name is empty\. Received: '\s*'\. Give a name"
    ):
        load_dataset(name)


def test_train_with_an_empty_data_option_does_not_read_the_current_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two class folders of images in the current folder: before, `--data ''` trained on them.
    pytest.importorskip("PIL")
    from PIL import Image

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(6):
            Image.new("L", (8, 8), 40 * i).save(tmp_path / name / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    code = main(
        ["train", "--data", "", "--epochs", "1", "--quiet", "--no-plots", "--out", str(tmp_path / "run")]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "cnnlab train: error: load_dataset: the dataset name is empty. Received: ''." in err
    assert "(`.` for the current folder)" in err
    assert not (tmp_path / "run").exists()


def test_missing_dataset_advice_names_only_what_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("mnist", root=tmp_path / "empty", download=False)
    message = str(info.value)
    assert "--no-download" not in message  # there is no such option
    assert "This command does not download (download=False)." in message
    assert "load_dataset('mnist')" in message and "cnnlab train --data mnist" in message
