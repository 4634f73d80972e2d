"""Reading any image a user may have, and image folders too small to train on (issue 15, part 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnnlab.cli.main import main
from cnnlab.data.datasets import load_dataset

Image = pytest.importorskip("PIL.Image")
TINY = str(Path(__file__).parents[1] / "reliability" / "tiny.json")


def folder(root: Path, counts: dict[str, int]) -> Path:
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("L", (8, 8), 30 * i).save(root / name / f"{i}.png")
    return root


def train(capsys: pytest.CaptureFixture[str], data: Path, out: Path) -> tuple[int, str]:
    argv = ["train", "--data", str(data), "--model", TINY, "--epochs", "1", "--quiet", "--no-plots"]
    code = main([*argv, "--out", str(out)])
    return code, capsys.readouterr().err


def test_single_class_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = folder(tmp_path / "one", {"cat": 10})
    with pytest.raises(
        ValueError, match=r"found 1 class folder \(cat\); a classifier needs at least 2 classes"
    ):
        load_dataset(data)
    code, err = train(capsys, data, tmp_path / "run")
    assert code == 1
    assert err.startswith(
        f"cnnlab train: error: folder dataset {data}: found 1 class folder (cat); a classifier"
    )
    assert not (tmp_path / "run" / "model.npz").exists()  # no "test accuracy 1.0000, good_fit"
    assert load_dataset(data, min_classes=1).classes == ["cat"]  # what `cnnlab evaluate` reads


def test_two_image_folder_gets_a_user_level_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = folder(tmp_path / "two", {"cat": 1, "dog": 1})
    expected = (
        f"folder dataset {data}: too few images: 2 in 2 classes leave 1 for training after holding out "
        "the test share (test_fraction=0.2); training needs at least 2"
    )
    with pytest.raises(ValueError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load_dataset(data)
    code, err = train(capsys, data, tmp_path / "run")
    assert code == 1 and err.startswith("cnnlab train: error: " + expected)
    assert "stratified_split" not in err
    folder(tmp_path / "two", {"cat": 2, "dog": 2})  # four images: 3 train, 1 test
    assert len(load_dataset(data).train) == 3


def test_16_bit_alpha_and_palette_images_read_right(tmp_path: Path) -> None:
    from cnnlab.data.images import read_image

    values = np.array([[0, 1000], [30000, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    x, converted = read_image(tmp_path / "g16.png", 3, None)
    assert x.shape == (3, 2, 2) and converted.mode == "I;16" and converted.lossy == []
    np.testing.assert_allclose(x[0], values / 65535, atol=1e-6)
    # RGBA: a transparent pixel becomes black whatever colour it hides; opaque ones keep theirs.
    rgba = np.array([[[255, 255, 255, 0], [10, 20, 30, 255]]], dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "a.png")
    x, converted = read_image(tmp_path / "a.png", 3, None)
    np.testing.assert_array_equal(np.round(x[:, 0, :] * 255), [[0, 10], [0, 20], [0, 30]])
    assert converted.lossy == ["transparency flattened onto black"]
    x, converted = read_image(tmp_path / "a.png", 1, (4, 4))
    assert x.shape == (1, 4, 4)
    assert converted.lossy == ["transparency flattened onto black", "colour dropped (read as grayscale)"]
    # A palette image whose colours are grays loses nothing when read as grayscale.
    Image.fromarray(np.array([[0, 128], [255, 64]], np.uint8)).convert("P").save(tmp_path / "p.png")
    x, converted = read_image(tmp_path / "p.png", 1, None)
    np.testing.assert_array_equal(np.round(x[0] * 255), [[0, 128], [255, 64]])
    assert converted.mode == "P" and converted.lossy == []


def test_a_folder_of_mixed_modes_reports_its_lossy_conversions_once(tmp_path: Path) -> None:
    folder(tmp_path, {"a": 3, "b": 3})
    Image.fromarray(np.full((8, 8, 4), 255, np.uint8)).save(tmp_path / "a" / "rgba.png")
    Image.fromarray(np.full((16, 16), 9000, np.uint16)).save(tmp_path / "b" / "deep.png")
    with pytest.warns(UserWarning) as record:
        data = load_dataset(tmp_path, channels=1, test_fraction=0.25)
    assert [str(w.message) for w in record] == [
        f"folder dataset {tmp_path}: of 8 images, 1 resized to 8x8 (the most common size)"
    ]  # the RGBA image is opaque and gray: nothing lost
    x = np.concatenate([data.train.x, data.test.x])
    assert np.isclose(x, 9000 / 65535, atol=1e-3).all(axis=(1, 2, 3)).sum() == 1  # 16 bits kept


def test_convert_batch_channels_and_size() -> None:
    from cnnlab.data.images import convert_batch

    rng = np.random.default_rng(0)
    rgb = rng.random((2, 3, 4, 6)).astype(np.float32)
    gray, changes = convert_batch(rgb, 1, (2, 3))
    assert gray.shape == (2, 1, 2, 3) and gray.dtype == np.float32
    assert changes == ["colour dropped (the model takes grayscale)", "resized from 4x6 to 2x3 (size reduced)"]
    same = np.repeat(rgb[:, :1], 3, axis=1)
    luma, changes = convert_batch(same, 1, None)
    np.testing.assert_allclose(luma, rgb[:, :1], rtol=1e-6)
    assert changes == []
    three, changes = convert_batch(rgb[:, :1], 3, None)
    assert three.shape == (2, 3, 4, 6) and changes == ["grayscale repeated into 3 channels"]
