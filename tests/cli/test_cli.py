"""The `cnnlab` command line end to end, on the embedded digits data."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnnlab.cli.main import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "r1"
    assert main(["train", "--epochs", "2", "--out", str(out), "--quiet", "--seed", "3", "--no-plots"]) == 0
    return out


def test_train_writes_run_folder(run_dir: Path) -> None:
    for name in ("model.npz", "config.json", "history.csv", "metrics.json"):
        assert (run_dir / name).exists(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.5 < metrics["test_accuracy"] <= 1.0
    assert metrics["test_loss"] > 0
    with open(run_dir / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    assert {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"} <= set(rows[0])


def test_train_is_deterministic_and_config_reruns(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r2"
    assert (
        main(["train", "--config", str(run_dir / "config.json"), "--out", str(out), "--quiet", "--no-plots"])
        == 0
    )
    a, b = np.load(run_dir / "model.npz"), np.load(out / "model.npz")
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        assert np.array_equal(a[key], b[key]), key
    strip = lambda p: [r[:-1] for r in csv.reader(open(p))]  # noqa: E731 (drop "seconds")
    assert strip(run_dir / "history.csv") == strip(out / "history.csv")


def test_evaluate_json(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(run_dir), "--data", "digits", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    expected = json.loads((run_dir / "metrics.json").read_text())["test_accuracy"]
    assert result["accuracy"] == pytest.approx(expected)
    assert len(result["confusion_matrix"]) == 10


def test_evaluate_with_flip_tta(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(run_dir), "--tta", "flip", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    expected = json.loads((run_dir / "metrics.json").read_text())["test_accuracy"]
    assert result["tta"] == "flip" and result["accuracy_without_tta"] == pytest.approx(expected)
    assert main(["evaluate", str(run_dir), "--tta", "flip"]) == 0
    assert "flip TTA, without:" in capsys.readouterr().out


def test_train_with_tta_prints_both_accuracies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tta"
    args = ["train", "--epochs", "1", "--out", str(out), "--quiet", "--no-plots", "--tta", "flip"]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tta"] == "flip" and 0 <= metrics["accuracy_without_tta"] <= 1
    assert f"[flip TTA; without: {metrics['accuracy_without_tta']:.4f}]" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["tta"] == "flip"


def test_label_smoothing_reaches_the_training_loss(tmp_path: Path) -> None:
    losses = {}
    for eps in ("0", "0.5"):
        out = tmp_path / f"ls{eps}"
        args = ["train", "--epochs", "1", "--out", str(out), "--quiet", "--no-plots"]
        args += ["--label-smoothing", eps]
        assert main(args) == 0
        assert json.loads((out / "config.json").read_text())["label_smoothing"] == float(eps)
        with open(out / "history.csv") as f:
            losses[eps] = float(next(csv.DictReader(f))["train_loss"])
    # A smoothed target cannot be matched by a one-hot-like prediction: the loss stays higher.
    assert losses["0.5"] > losses["0"] + 0.3


def test_bad_label_smoothing_is_one_line() -> None:
    from cnnlab.train.runs.config import TrainConfig

    with pytest.raises(ValueError, match=r"label_smoothing.*in \[0, 1\). Received: label_smoothing=1.0"):
        TrainConfig(label_smoothing=1.0).validate()


def test_train_augments_with_black_not_the_mean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Augmentation runs on normalized images, where 0 is the mean gray: the pixels a shift
    # uncovers must get the normalized value of black instead.
    import cnnlab.data.transforms as transforms
    import cnnlab.train.runs.run as run_module
    from cnnlab.data import load_dataset

    seen = []

    def spy(spec: str, shape: tuple[int, int, int], fill: object = 0.0) -> object:
        seen.append(fill)
        return parse(spec, shape, fill)

    parse = transforms.parse_augment
    monkeypatch.setattr(run_module, "parse_augment", spy)  # where train_run looks it up
    args = [
        "train",
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "r"),
        "--quiet",
        "--no-plots",
        "--augment",
        "shift",
    ]
    assert main(args) == 0
    x = load_dataset("digits").train.x
    assert seen == [pytest.approx((-x.mean() / x.std(),), rel=1e-5)]


def test_evaluate_text(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "accuracy:" in out and "confusion matrix" in out


def test_predict_png(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    from cnnlab.data import load_dataset

    image = load_dataset("digits").test.x[0, 0]  # (8, 8) in [0, 1]
    path = tmp_path / "digit.png"
    Image.fromarray((image * 255).astype(np.uint8)).resize((32, 32)).save(path)
    assert main(["predict", str(run_dir), str(path), "--top-k", "2"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(str(path)) and line.count(",") == 1


def test_predict_goes_on_past_a_bad_image_and_takes_folders(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("b.png", "a.PNG", "c.jpg"):
        Image.fromarray(np.full((8, 8), 128, np.uint8)).save(
            folder / name, format="JPEG" if name.endswith("jpg") else "PNG"
        )
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.png").write_text("not a png either")
    (folder / "sub").mkdir()
    assert main(["predict", str(run_dir), str(folder / "missing.png"), str(folder)]) == 1
    captured = capsys.readouterr()
    # every readable image classified, in name order; the two bad ones reported, then a count
    assert [line.split(":")[0] for line in captured.out.splitlines()] == [
        str(folder / n) for n in ("a.PNG", "b.png", "c.jpg")
    ]
    err = captured.err.splitlines()
    assert err[0].startswith(f"cnnlab predict: error: cannot read image {folder / 'missing.png'}")
    assert err[1].startswith(f"cnnlab predict: error: cannot read image {folder / 'broken.png'}")
    assert err[2] == "cnnlab predict: 2 of 5 images could not be read"
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(run_dir), str(tmp_path / "empty")]) == 1
    assert "no PNG/JPEG files directly in the folder" in capsys.readouterr().err


def test_summary_shows_formulas(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "small", "--input-shape", "1,28,28"]) == 0
    out = capsys.readouterr().out
    assert "floor((28 - 3 + 2*1) / 1) + 1 = 28" in out
    assert "421,642" in out  # 320 + 18,496 + 401,536 + 1,290


def test_summary_and_train_take_vgg_widths(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "vgg", "--widths", "4,8", "--input-shape", "1,8,8"]) == 0
    out = capsys.readouterr().out
    assert "Conv2D(4, 8," in out and "Conv2D(8, 8," in out and "Conv2D(8, 16" not in out
    with pytest.raises(SystemExit):
        main(["summary", "vgg", "--widths", "4,0"])
    assert "expected positive ints such as 16,64. Received: '4,0'" in capsys.readouterr().err


def test_widths_flag_and_width_flag_against_a_recipe() -> None:
    import argparse

    from cnnlab.cli.train_cmd import add_parser, resolve_config

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())

    def model_args(*flags: str) -> dict[str, object]:
        return resolve_config(parser.parse_args(["train", "--recipe", "fashion", *flags])).model_args

    assert model_args("--widths", "8,16")["widths"] == [8, 16]
    # --width replaces the recipe's per-block widths and keeps its number of blocks
    assert model_args("--width", "24") == {"depth": 2, "width": 24, "dropout": 0.0}
    assert model_args("--depth", "3") == {"depth": 3, "dropout": 0.0}
    # another model leaves the recipe's vgg options behind; its own flags still apply
    assert model_args("--model", "resnet") == {}
    assert model_args("--model", "resnet", "--depth", "2") == {"depth": 2}
    assert model_args("--model", "vgg") == {"widths": [16, 64], "dropout": 0.0}


def test_recipe_with_another_model_trains_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "tiny.json"
    spec.write_text('{"layers": ["Flatten", {"Dense": {"out_features": "num_classes"}}]}')
    out = tmp_path / "run"
    args = ["train", "--recipe", "digits", "--epochs", "1", "--quiet", "--no-plots", "--out", str(out)]
    assert main([*args, "--model", str(spec)]) == 0, capsys.readouterr().err
    assert main([*args, "--model", "vgg", "--widths", "4", "--overwrite"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    # a model file given options of the zoo models: one line naming them, no phantom option
    assert main([*args, "--model", str(spec), "--width", "8", "--overwrite"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--width" in err and "--model-args" not in err


def test_unknown_names_list_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--data", "nope", "--epochs", "1", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "digits" in err and "fashion-mnist" in err
    assert main(["summary", "nope"]) == 1
    err = capsys.readouterr().err
    assert "small" in err and "resnet" in err


def test_unknown_option_is_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab", "train", "--epoch", "1"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "--epoch" in proc.stderr
    # named by the command it belongs to, with that command's help
    assert proc.stderr.startswith("cnnlab train: error: unrecognized arguments: --epoch 1")
    assert "`cnnlab train --help`" in proc.stderr


def test_import_cnnlab_uses_numpy_and_stdlib_only() -> None:
    def loaded(statement: str) -> set[str]:
        code = f"import sys; {statement}; print(chr(10).join(sorted(sys.modules)))"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return {m.split(".")[0] for m in out.stdout.split()}

    # The baseline counts what numpy itself and the interpreter's .pth files load.
    foreign = loaded("import cnnlab") - loaded("import numpy, numpy.random")
    foreign -= set(sys.stdlib_module_names) | {"cnnlab"}
    assert not foreign, foreign


def test_train_warns_when_flip_tta_does_not_suit_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # digits are trained without mirrored images: flip TTA lowers the test accuracy
    out = tmp_path / "run"
    assert main(["train", "--tta", "flip", "--epochs", "1", "--quiet", "--no-plots", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "cnnlab train: warning: --tta flip on a model trained without flipped images (augment=none)" in err


def test_config_takes_a_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    args = ["train", "--epochs", "1", "--quiet", "--no-plots"]
    assert main([*args, "--lr", "0.003", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main([*args, "--config", str(run), "--out", str(tmp_path / "again")]) == 0  # RUN/config.json
    assert "lr=0.003" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert main([*args, "--config", str(tmp_path / "empty")]) == 1
    assert "is a folder without config.json (a run's) or best_config.json" in capsys.readouterr().err
