"""`cnnlab evaluate`, `predict` and `show` on data and models that do not match (issue 15, part 2).

A digits model trained in a second; image folders made from the digits images in tmp_path.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import cnnlab
from cli_run import cli_out as cli  # (exit status, stdout, stderr)
from cnnlab.data import load_dataset
from cnnlab.data.loader import Normalizer
from cnnlab.train.loop.fit import fit

Image = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder of a small conv net trained on digits (8x8) without flips: ~90% test accuracy."""
    data = load_dataset("digits")
    norm = Normalizer().fit(data.train.x)
    model = cnnlab.Sequential(
        cnnlab.Conv2D(1, 8, 3, padding=1, rng=0),
        cnnlab.ReLU(),
        cnnlab.MaxPool2D(2),
        cnnlab.Flatten(),
        cnnlab.Dense(8 * 4 * 4, 10, rng=0),
    )
    loss = cnnlab.SoftmaxCrossEntropy()
    fit(model, loss, cnnlab.Adam(model.parameters(), lr=0.01), (norm(data.train.x), data.train.y),
        epochs=4, batch_size=64, val_split=0.0, verbose=False, seed=0)  # fmt: skip
    run = tmp_path_factory.mktemp("evalx") / "run"
    run.mkdir()
    extra = {
        "classes": data.classes,
        "input_shape": [1, 8, 8],
        "normalization": norm.state(),
        "dataset": "digits",
    }
    cnnlab.save(model, run / "model.npz", extra=extra)
    (run / "config.json").write_text(json.dumps({"data": "digits", "augment": "none"}))
    return run


def digit_folder(root: Path, digits: list[int], per_class: int = 12, size: int = 8) -> Path:
    """``root/test/<digit>/*.png`` (and the same under train/) from the digits test split."""
    test = load_dataset("digits").test
    for split in ("train", "test"):
        for d in digits:
            (root / split / str(d)).mkdir(parents=True, exist_ok=True)
            for i in np.flatnonzero(test.y == d)[:per_class]:
                im = Image.fromarray(np.round(test.x[i, 0] * 255).astype(np.uint8))
                if size != 8:
                    im = im.resize((size, size), Image.Resampling.BILINEAR)
                im.save(root / split / str(d) / f"{i}.png")
    return root


def model_accuracy(run: Path, folder: Path) -> tuple[float, int]:
    """Accuracy of the run's model on ``folder/test`` with the true digit as label (by hand)."""
    model, extra = cnnlab.io.load_with_extra(run / "model.npz")
    xs, ys = [], []
    for class_dir in sorted((folder / "test").iterdir()):
        for path in sorted(class_dir.iterdir()):
            xs.append(np.asarray(Image.open(path), dtype=np.float32)[None] / np.float32(255))
            ys.append(int(class_dir.name))
    x = Normalizer.from_state(extra["normalization"])(np.stack(xs))
    pred = model.predict(x).argmax(axis=1)
    return float(np.mean(pred == np.array(ys))), len(ys)


# ---- evaluate ------------------------------------------------------------------------------
def test_evaluate_matches_a_folders_classes_by_name(
    digits_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = digit_folder(tmp_path / "some", [5, 6, 7])
    expected, n = model_accuracy(digits_run, folder)
    assert expected > 0.6  # the model knows these digits: a by-index mapping would score near 0
    code, out, _ = cli(capsys, "evaluate", str(digits_run), "--data", str(folder), "--json")
    result = json.loads(out)
    assert code == 0 and result["num_examples"] == n
    assert result["accuracy"] == pytest.approx(expected)
    assert result["per_class"]["5"]["support"] == 12 and result["per_class"]["0"]["support"] == 0


def test_evaluate_refuses_class_names_the_model_does_not_know(
    digits_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = digit_folder(tmp_path / "odd", [3, 4])
    (folder / "train" / "4").rename(folder / "train" / "cat")
    (folder / "test" / "4").rename(folder / "test" / "cat")
    code, out, err = cli(capsys, "evaluate", str(digits_run), "--data", str(folder))
    assert code == 1 and out == ""
    assert err.startswith(
        "cnnlab evaluate: error: evaluate: the data has classes the model was not trained on: cat. "
        "The model's classes: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9"
    )


def test_evaluate_resizes_a_folder_to_the_models_input_and_says_so(
    digits_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = digit_folder(tmp_path / "big", [0, 1, 2, 3], size=16)
    code, out, err = cli(capsys, "evaluate", str(digits_run), "--data", str(folder), "--json")
    assert code == 0, err
    assert err.strip().splitlines() == [
        f"cnnlab evaluate: warning: folder dataset {folder}: of 96 images, 96 resized to 8x8 "
        "(the model's input size)"
    ]
    assert json.loads(out)["accuracy"] > 0.6  # 16x16 digits shrunk back to 8x8 are still digits


def test_evaluate_a_saved_model_without_extra_on_a_dataset_of_another_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = cnnlab.Sequential(
        cnnlab.Conv2D(1, 2, 3, padding=1, rng=0), cnnlab.Flatten(), cnnlab.Dense(2 * 16 * 16, 10, rng=0)
    )
    path = cnnlab.save(model, tmp_path / "plain.npz")  # no input shape, no classes stored
    code, out, err = cli(capsys, "evaluate", str(path), "--data", "digits")
    assert code == 0, err
    assert err.strip().splitlines() == [
        "cnnlab evaluate: note: the model file stores no input shape: using 1x16x16",
        "cnnlab evaluate: note: digits images converted to the model's input 1x16x16: "
        "resized from 8x8 to 16x16",
    ]
    assert out.startswith("accuracy: ") and "(360 test images of digits)" in out


def test_evaluate_flip_tta_on_a_model_trained_without_flips_warns(
    digits_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "evaluate", str(digits_run), "--tta", "flip", "--json")
    result = json.loads(out)
    assert code == 0
    assert err.strip().splitlines() == [
        "cnnlab evaluate: warning: --tta flip on a model trained without flipped images (augment=none): "
        f"accuracy {result['accuracy']:.4f} with flip TTA, {result['accuracy_without_tta']:.4f} without; "
        "use --tta none, or train with --augment flip"
    ]
    assert cli(capsys, "evaluate", str(digits_run), "--json")[2] == ""  # no TTA: no warning


# ---- predict and show ------------------------------------------------------------------------
def test_predict_uses_the_input_shape_of_a_model_saved_without_extra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = cnnlab.Sequential(
        cnnlab.Conv2D(3, 2, 3, padding=1, rng=0), cnnlab.Flatten(), cnnlab.Dense(2 * 12 * 12, 12, rng=0)
    )
    path = cnnlab.save(model, tmp_path / "plain.npz")
    image = tmp_path / "img.png"
    Image.fromarray(np.full((12, 12, 3), 200, np.uint8)).save(image)
    code, out, err = cli(capsys, "predict", str(path), str(image), "--top-k", "12")
    assert code == 0, err
    names = [entry.split()[0] for entry in out.split(": ", 1)[1].split(", ")]
    assert sorted(names, key=int) == [str(i) for i in range(12)]  # indices stand in for names
    x = np.full((1, 3, 12, 12), 200 / 255, np.float32)
    probs = np.exp(model.predict(x)[0] - model.predict(x)[0].max())
    assert names[0] == str(int(np.argmax(probs)))


def test_show_falls_back_to_class_indices(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = cnnlab.Sequential(cnnlab.Flatten(), cnnlab.Dense(64, 12, rng=0))
    path = cnnlab.save(model, tmp_path / "mlp.npz", extra={"classes": ["a", "b"]})  # too few names
    image = tmp_path / "img.png"
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(image)
    code, out, err = cli(capsys, "show", str(path), str(image), "--top-k", "12", "--out", str(tmp_path))
    assert code == 0, err
    assert (tmp_path / "img_prediction.png").exists()
    first = out.splitlines()[0].split(": ", 1)[1].split(", ")
    assert len(first) == 12 and {e.split()[0] for e in first} == {"a", "b", *map(str, range(2, 12))}


@pytest.mark.parametrize("command", ["predict", "show"])
def test_top_k_zero_is_refused_with_the_options_name(
    digits_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    image = tmp_path / "img.png"
    Image.new("L", (8, 8)).save(image)
    code, out, err = cli(capsys, command, str(digits_run), str(image), "--top-k", "0")
    assert code == 2 and out == ""
    assert "argument --top-k: expected a positive int (1 or more). Received: '0'" in err


def _save_modes(folder: Path) -> dict[str, Path]:
    """One image of every kind a user may have, each 20x30 (H x W)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    gray = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    alpha = np.dstack([rgb, np.where(gray > 128, 255, 0).astype(np.uint8)])
    palette = Image.fromarray(gray).convert("P")
    palette.info["transparency"] = int(np.asarray(palette)[0, 0])
    images = {
        "gray.png": Image.fromarray(gray),
        "rgb.png": Image.fromarray(rgb),
        "rgba.png": Image.fromarray(alpha),
        "la.png": Image.merge("LA", (Image.fromarray(gray), Image.fromarray(gray))),
        "palette.png": palette,
        "gray16.png": Image.fromarray(gray.astype(np.uint16) * 257),
        "photo.jpg": Image.fromarray(rgb),
        "bilevel.png": Image.fromarray(gray > 128).convert("1"),
    }
    paths = {}
    for name, im in images.items():
        im.save(folder / name, **({"transparency": im.info["transparency"]} if name == "palette.png" else {}))
        paths[name] = folder / name
    return paths


def test_predict_accepts_every_kind_of_image_and_names_lossy_conversions(
    digits_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = _save_modes(tmp_path / "imgs")
    code, out, err = cli(capsys, "predict", str(digits_run), *map(str, paths.values()))
    assert code == 0, err
    assert [line.split(": ")[0] for line in out.splitlines()] == [str(p) for p in paths.values()]
    warnings = {
        line.split(" (")[0].removeprefix("cnnlab predict: warning: "): line for line in err.splitlines()
    }
    assert set(warnings) == {str(paths[n]) for n in paths}  # every image is shrunk from 20x30 to 8x8
    assert "colour dropped" in warnings[str(paths["rgb.png"])]
    assert "transparency flattened onto black" in warnings[str(paths["rgba.png"])]
    assert "colour dropped" not in warnings[str(paths["gray16.png"])]
    assert all(
        line.count("\n") == 0 and "size reduced from 20x30 to 8x8" in line for line in warnings.values()
    )


def test_16_bit_grayscale_keeps_its_values(tmp_path: Path) -> None:
    from cnnlab.cli.common import load_image

    values = np.array([[0, 300, 1000], [20000, 40000, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    x = load_image(str(tmp_path / "g16.png"), 1, (2, 3))  # (1, 2, 3)
    np.testing.assert_allclose(x[0], values / 65535, atol=1e-6)  # Pillow's convert("L") clips >255 to white


def test_predict_says_when_it_enlarges_an_image(
    digits_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "small.png"
    Image.new("L", (4, 4), 255).save(image)
    code, out, err = cli(capsys, "predict", str(digits_run), str(image))
    assert code == 0 and out.startswith(f"{image}: ")
    assert err.splitlines() == [f"cnnlab predict: note: {image} (L, 4x4) enlarged to the model's input 1x8x8"]


def test_evaluate_a_folder_holding_one_of_the_models_classes(
    digits_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = digit_folder(tmp_path / "only7", [7])
    expected, n = model_accuracy(digits_run, folder)
    code, out, err = cli(capsys, "evaluate", str(digits_run), "--data", str(folder), "--json")
    assert code == 0 and err == ""
    assert json.loads(out)["accuracy"] == pytest.approx(expected) and n == 12
