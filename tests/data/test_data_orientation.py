"""Phone photos and oversized images, wherever images are read (issue 23, items 2 and 18).

A JPEG whose EXIF orientation is 6 stores the picture rotated (the camera was held
sideways); cnnlab reads it upright, as every image viewer shows it. An image over Pillow's
decompression-bomb limit is refused with its pixel count and the limit.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

import cnnlab
from cnnlab.cli.main import main
from cnnlab.data.datasets import load_dataset
from cnnlab.data.images import ImageTooLarge, read_image

Image = pytest.importorskip("PIL.Image")


def upright_picture(height: int = 40, width: int = 24) -> np.ndarray:
    """A (H, W) uint8 picture whose top half is bright: easy to tell from its rotations."""
    y, x = np.mgrid[0:height, 0:width]
    return np.where(y < height // 2, 220, 30).astype(np.uint8) + (x % 4).astype(np.uint8)  # (H, W)


def save_rotated_jpeg(pixels: np.ndarray, path: Path) -> Path:
    """Save ``pixels`` as a phone does with the camera turned: stored rotated, EXIF orientation 6.

    Orientation 6 means "rotate 90 degrees clockwise to show"; so the stored pixels are the
    picture turned 90 degrees counter-clockwise.
    """
    stored = Image.fromarray(pixels).transpose(Image.Transpose.ROTATE_90)  # counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path, quality=95, exif=exif)
    return path


def test_an_exif_rotated_jpeg_is_read_upright(tmp_path: Path) -> None:
    picture = upright_picture()  # (40, 24)
    Image.fromarray(picture).save(tmp_path / "upright.jpg", quality=95)
    rotated = save_rotated_jpeg(picture, tmp_path / "phone.jpg")
    with Image.open(rotated) as im:
        assert (im.height, im.width) == (24, 40)  # stored sideways
    pixels, converted = read_image(rotated, 1)
    reference, _ = read_image(tmp_path / "upright.jpg", 1)
    assert converted.size == (40, 24)
    assert pixels.shape == reference.shape == (1, 40, 24)
    assert np.abs(pixels - reference).max() < 0.08  # JPEG tolerance
    assert np.abs(pixels[0] - picture / 255).mean() < 0.03


def test_an_exif_rotated_jpeg_in_an_image_folder_is_upright(tmp_path: Path) -> None:
    picture = upright_picture()
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(5):
            save_rotated_jpeg(picture, tmp_path / name / f"{i}.jpg")
    data = load_dataset(tmp_path)
    x = np.concatenate([data.train.x, data.test.x])  # (N, 1, H, W)
    assert x.shape[1:] == (1, 40, 24)
    assert x[:, 0, :20].mean() > 0.8 > 0.2 > x[:, 0, 20:].mean()  # bright top half


def test_cnnlab_predict_sees_the_upright_picture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A linear model that answers "top" for a bright top half and "left" for a bright left half.
    top = np.zeros((8, 8), np.float32)
    top[:4] = 1
    left = np.zeros((8, 8), np.float32)
    left[:, :4] = 1
    model = cnnlab.Sequential(cnnlab.Flatten(), cnnlab.Dense(64, 2, rng=0))
    model.layers[1].params["weight"][...] = 20 * (np.stack([top, left]).reshape(2, 64) - 0.5)
    model.layers[1].params["bias"][...] = 0
    extra = {"classes": ["top", "left"], "input_shape": [1, 8, 8]}
    path = cnnlab.save(model, tmp_path / "model.npz", extra=extra)
    picture = np.zeros((32, 32), np.uint8)
    picture[:16] = 255  # bright top half
    photo = save_rotated_jpeg(picture, tmp_path / "phone.jpg")
    assert main(["predict", str(path), str(photo), "--top-k", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{photo}: top 1.000"), out


def bomb_png(width: int, height: int) -> bytes:
    """A PNG header declaring ``width`` x ``height`` gray pixels (no pixel data needed to be refused)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def test_an_image_over_the_pixel_limit_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(bomb_png(30000, 30000))
    limit = 2 * Image.MAX_IMAGE_PIXELS
    expected = f"over the pixel limit: 900,000,000 pixels, the limit is {limit:,}"
    with pytest.raises(ImageTooLarge, match=expected):
        read_image(big, 1, (8, 8))
    model = cnnlab.Sequential(cnnlab.Flatten(), cnnlab.Dense(64, 2, rng=0))
    path = cnnlab.save(model, tmp_path / "model.npz", extra={"input_shape": [1, 8, 8]})
    assert main(["predict", str(path), str(big)]) == 1
    err = capsys.readouterr().err
    assert f"cannot read image {big}: the image is over the pixel limit: 900,000,000 pixels" in err
    assert "Pillow can read" not in err


def test_a_dashboard_upload_over_the_pixel_limit_says_so() -> None:
    pytest.importorskip("starlette")
    from cnnlab.dashboard.models import MAX_UPLOAD_PIXELS, BadImage, read_upload

    with pytest.raises(BadImage) as info:
        read_upload(bomb_png(30000, 30000), 1, (8, 8))
    expected = "the image is over the pixel limit: 900,000,000 pixels; uploads may have at most"
    assert str(info.value).startswith(f"{expected} {MAX_UPLOAD_PIXELS:,}")
