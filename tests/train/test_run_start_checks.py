"""What `cnnlab train` refuses before it writes anything (issue 23 items 4 and 13).

A model whose outputs do not match the data's classes, and model options the model does
not take, are refused with a message that names both sides; the run folder is not created.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import cnnlab
from cli_run import cli

QUICK = ["--epochs", "1", "--batch-size", "64", "--quiet", "--no-plots"]


# ---- item 4: a head with the wrong number of outputs ------------------------------------------
THREE_OUTPUTS = {
    "layers": [
        {"Conv2D": {"out_channels": 4, "kernel_size": 3, "padding": 1}},
        "ReLU",
        "Flatten",
        {"Dense": {"out_features": 3}},
    ]
}


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_model_whose_outputs_are_not_the_classes_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    if suffix == ".yaml":
        yaml = pytest.importorskip("yaml")
        text = yaml.safe_dump(THREE_OUTPUTS)
    else:
        text = json.dumps(THREE_OUTPUTS)
    model = tmp_path / f"head3{suffix}"
    model.write_text(text)
    out = tmp_path / "run"
    code, err = cli(capsys, "train", "--model", str(model), "--data", "digits", *QUICK, "--out", str(out))
    assert code == 1, err
    assert f"the model {model} has 3 outputs per image, but the dataset digits has 10 classes" in err
    assert "labels must be in" not in err
    assert not out.exists()
    # and the same folder is free for the corrected model
    model.write_text(
        text.replace("out_features: 3", "out_features: num_classes").replace(
            '"out_features": 3', '"out_features": "num_classes"'
        )
    )
    code, err = cli(capsys, "train", "--model", str(model), "--data", "digits", *QUICK, "--out", str(out))
    assert code == 0, err
    assert (out / "model.npz").is_file()


def test_evaluate_of_a_model_with_fewer_outputs_than_classes_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A model.npz whose head has 3 outputs but which says it was trained on 10-class digits
    net = cnnlab.Sequential(cnnlab.Flatten(), cnnlab.Dense(64, 3, rng=0))
    classes = [str(d) for d in range(10)]
    extra = {"classes": classes, "input_shape": [1, 8, 8], "dataset": "digits"}
    path = tmp_path / "model.npz"
    cnnlab.save(net, path, extra=extra)
    code, err = cli(capsys, "evaluate", str(path))
    assert code == 1
    assert "the model has 3 outputs per image, but the data has 10 classes" in err, err
    assert "out of bounds" not in err


def test_evaluate_arrays_refuses_labels_beyond_the_outputs() -> None:
    from cnnlab.train.evaluation.evaluate import evaluate_arrays

    net = cnnlab.Sequential(cnnlab.Flatten(), cnnlab.Dense(4, 3, rng=0))
    x = np.zeros((6, 1, 2, 2), np.float32)
    with pytest.raises(ValueError, match="the model has 3 outputs per image, but the data has 6 classes"):
        evaluate_arrays(net, x, np.arange(6), [str(i) for i in range(6)])


# ---- item 13: options the model does not take ------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--model", "small", "--dropout", "0.3"],
            "--dropout is not an option of model small (it takes no options)",
        ),
        (
            ["--model", "small", "--depth", "2"],
            "--depth is not an option of model small (it takes no options)",
        ),
        (
            ["--model", "small_bn", "--widths", "8,16"],
            "--widths is not an option of model small_bn (it takes dropout)",
        ),
        (
            ["--model", "resnet", "--widths", "8,16", "--dropout", "0.1"],
            "--widths, --dropout are not options of model resnet (it takes depth, width, stages)",
        ),
    ],
)
def test_model_options_the_model_does_not_take_are_refused_with_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    out = tmp_path / "run"
    code, err = cli(capsys, "train", *argv, *QUICK, "--out", str(out))
    assert code == 1
    assert expected in err, err
    assert (
        "Options of each model: lenet5: activation, pool; small: none; small_bn: dropout; vgg: depth," in err
    )
    assert "unexpected keyword" not in err
    assert not out.exists()


def test_the_options_table_follows_the_zoo_signatures() -> None:
    import inspect

    from cnnlab.models.zoo import MODELS, model_options

    for name, fn in MODELS.items():
        assert set(model_options(name)) == set(inspect.signature(fn).parameters) - {
            "in_channels",
            "input_size",
            "num_classes",
            "rng",
        }
