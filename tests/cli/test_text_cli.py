"""The CLI on text, end to end on generated data: train, evaluate, predict, show --cam (issue 27)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from cli_run import cli_out as cli  # (exit status, stdout, stderr)
from cnnlab.train.analysis.advice import Suggestion, check
from text_data import reviews, train_text


@pytest.fixture(scope="module")
def text_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("text")
    return train_text(reviews(tmp / "reviews", ending=" ☺"), tmp / "run", epochs=12)


def test_train_writes_vocab_and_learns(text_run: Path) -> None:
    vocab = json.loads((text_run / "vocab.json").read_text(encoding="utf-8"))
    assert vocab["format"] == "cnnlab-vocab" and vocab["tokens"][:2] == ["<pad>", "<unk>"]
    assert vocab["tokenizer"] == "words" and "percentile" in vocab["length_reason"]
    assert "☺" in vocab["tokens"]
    config = json.loads((text_run / "config.json").read_text())
    assert config["model"] == "textcnn" and config["model_args"]["widths"] == [2, 3]
    metrics = json.loads((text_run / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.9  # two class words in every review


def test_predict_sentences_top_k(text_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(
        capsys, "predict", str(text_run), "a lovely and wonderful film", "boring awful plot", "--top-k", "1"
    )
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].startswith("'a lovely and wonderful film': pos ")
    assert lines[1].startswith("'boring awful plot': neg ")
    code, out, _ = cli(capsys, "predict", str(text_run / "model.npz"), "great")
    assert code == 0 and out.startswith("'great': pos ") and ", neg " in out


def test_a_copied_model_file_carries_its_vocabulary(
    text_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "reviews.npz"
    shutil.copy(text_run / "model.npz", copy)  # no vocab.json beside it
    code, out, _ = cli(capsys, "predict", str(copy), "a lovely film", "--top-k", "1")
    assert code == 0 and out.startswith("'a lovely film': pos ")


def test_evaluate_text_run(text_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "evaluate", str(text_run))
    assert code == 0 and "test texts of text:" in out and "confusion matrix" in out
    code, out, _ = cli(capsys, "evaluate", str(text_run), "--json")
    metrics = json.loads(out)
    saved = json.loads((text_run / "metrics.json").read_text())
    assert metrics["accuracy"] == saved["test_accuracy"]


def test_show_cam_names_the_deciding_words(text_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(
        capsys, "show", str(text_run), "the plot was terrible and the actors were poor", "--cam"
    )
    assert code == 0
    assert out.splitlines()[0].startswith("'the plot was terrible and the actors were poor': neg ")
    assert "Grad-CAM for neg" in out
    decided = out.split("words that decided: ")[1].split(",")
    assert {decided[0].split()[0], decided[1].split()[0]} & {"terrible", "poor"}


def test_text_data_with_an_image_model_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = reviews(tmp_path / "r", per_class=5)
    code, _, err = cli(
        capsys, "train", "--data", f"text:{data}", "--model", "small", "--out", str(tmp_path / "run")
    )
    assert code == 1 and "needs a text model: --model textcnn. Received: --model small" in err
    assert not (tmp_path / "run").exists()


def test_bad_text_option_is_named_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = reviews(tmp_path / "r", per_class=5)
    code, _, err = cli(capsys, "train", "--data", f"text:{data}?maxlen=5", "--out", str(tmp_path / "run"))
    assert code == 1 and "option 'maxlen=5'" in err and not (tmp_path / "run").exists()


def test_pretrained_vectors_coverage_is_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = reviews(tmp_path / "r", per_class=6)
    vectors = tmp_path / "glove.txt"
    vectors.write_text("the 0.1 0.2 0.3\ngood 1 1 1\nbad -1 -1 -1\nzzz 0 0 0\n", encoding="utf-8")
    run = tmp_path / "run"
    code, out, _ = cli(
        capsys, "train", "--data", f"text:{data}?min_count=1", "--vectors", str(vectors), "--maps", "2",
        "--epochs", "1", "--out", str(run), "--quiet",
    )  # fmt: skip
    assert code == 0
    vocab = json.loads((run / "vocab.json").read_text(encoding="utf-8"))["tokens"]
    expected = f"3 of {len(vocab) - 2} vocabulary tokens found"
    assert expected in out and "dimension 3" in out
    assert json.loads((run / "config.json").read_text())["model_args"]["vectors"] == str(vectors.resolve())


def test_resume_of_a_finished_text_run_keeps_its_vocabulary(
    text_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (text_run / "vocab.json").read_text(encoding="utf-8")
    code, out, _ = cli(capsys, "train", "--resume", str(text_run), "--quiet")
    assert code == 0 and "test accuracy" in out
    assert (text_run / "vocab.json").read_text(encoding="utf-8") == before


def test_rerun_from_a_text_config_and_advice_fit_for_text(
    text_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "again"
    code, _, _ = cli(
        capsys,
        "train",
        "--config",
        str(text_run / "config.json"),
        "--epochs",
        "1",
        "--out",
        str(out_dir),
        "--quiet",
    )
    assert code == 0 and (out_dir / "vocab.json").is_file()
    config = json.loads((out_dir / "config.json").read_text())
    assert (
        check(config, Suggestion("Add augmentation", ("--augment", "shift"))) == "invalid"
    )  # text refuses it
    assert check(config, Suggestion("Stop early", ("--early-stopping", "3"))) == "ok"
    assert check(config, Suggestion("Fewer maps", ("--maps", "50"))) == "ok"


def test_evaluate_on_other_text_data_with_some_of_the_classes(
    text_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "more.csv"
    rows = [f'"a lovely,\nwonderful film {i}",pos' for i in range(5)]  # quoted commas and newlines
    table.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    code, out, _ = cli(
        capsys, "evaluate", str(text_run), "--data", f"text:{table}?test_fraction=0.5", "--json"
    )
    metrics = json.loads(out)
    assert code == 0 and metrics["num_examples"] == 3  # ceil(0.5 * 5) texts of the one class
    assert metrics["confusion_matrix"][0] == [0, 0]  # neg: no texts, the model's classes kept


def test_show_cam_text_with_brackets_and_without_rich(
    text_run: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sentence = "[bold]terrible[/bold] film [/]"
    code, out, _ = cli(capsys, "show", str(text_run), sentence, "--cam")
    assert code == 0 and "[ bold ] terrible [ / bold ] film [ / ]" in out  # not read as rich markup
    monkeypatch.setitem(sys.modules, "rich.console", None)  # import fails: plain text
    code, out, _ = cli(capsys, "show", str(text_run), "a terrible film", "--cam")
    assert code == 0 and "[[terrible]]" in out
    code, _, err = cli(capsys, "show", str(text_run), "a film", "--cam-layer", "1")
    assert code == 1 and "--cam-layer is for image models" in err
