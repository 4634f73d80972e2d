"""Image-folder datasets: ``root/<class>/*.png|jpg|jpeg``, optionally under ``train/`` and ``test/``.

Pillow decodes the images; it is imported only here, when a folder is loaded, so the core
install (NumPy only) still loads digits, MNIST and CIFAR.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.data.loader import stratified_split
from cnnlab.errors import arg_error

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "F"}


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError(
            "The folder dataset reads images with Pillow, which is not installed: "
            "pip install pillow (or pip install cnnlab[train])"
        ) from exc
    return Image


def scan_classes(folder: Path) -> dict[str, list[Path]]:
    """``{class name: sorted image paths}`` per sub-folder; warns about and skips non-image files."""
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise ValueError(f"folder dataset {folder}: no class sub-folders; expected {folder}/<class>/*.png")
    classes = {}
    for class_dir in class_dirs:
        images = []
        for path in sorted(class_dir.iterdir()):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                images.append(path)
            elif not path.name.startswith("."):
                warnings.warn(f"folder dataset: skipping {path} (not a .png/.jpg/.jpeg file)", stacklevel=3)
        if not images:
            raise ValueError(f"folder dataset: class folder {class_dir} has no .png/.jpg/.jpeg images")
        classes[class_dir.name] = images
    return classes


def _probe(Image: Any, path: Path) -> tuple[tuple[int, int], str]:
    """(H, W) and mode of an image, without decoding the pixels."""
    try:
        with Image.open(path) as im:
            return (im.height, im.width), im.mode
    except Exception as exc:  # Pillow raises UnidentifiedImageError, OSError, SyntaxError...
        raise ValueError(f"folder dataset: cannot read image {path}: {exc}") from exc


def _decode(Image: Any, path: Path, size: tuple[int, int], channels: int) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB")
            if (im.height, im.width) != size:
                im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)  # Pillow takes (W, H)
            pixels = np.asarray(im, dtype=np.uint8)
    except Exception as exc:
        raise ValueError(f"folder dataset: cannot read image {path}: {exc}") from exc
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)  # (C, H, W)


def load_folder_arrays(
    root: str | os.PathLike[str],
    size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Read an image folder: ``(x_train, y_train, x_test, y_test, classes)``.

    Args:
        root: folder with one sub-folder per class, or with ``train/`` (and ``test/``) holding them.
        size: output (H, W), or an int for square images; default: the most common image size.
        channels: 1 (grayscale) or 3 (RGB); default: 3 if any image is in colour, else 1.
        test_fraction: share of each class held out when there is no ``test/`` folder.
        seed: seed of that stratified split.

    Images come back as (N, C, H, W) float32 in [0, 1], labels as int64 indices into the
    sorted class names.
    """
    root = Path(root)
    if channels not in (None, 1, 3):
        raise arg_error("load_dataset", "channels", "1 (grayscale), 3 (RGB) or None", channels)
    if isinstance(size, int):
        size = (size, size)
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise arg_error("load_dataset", "size", "a positive int or (H, W) pair", size)
    Image = _pillow()
    if (root / "train").is_dir():
        train = scan_classes(root / "train")
        test = scan_classes(root / "test") if (root / "test").is_dir() else None
    else:
        train, test = scan_classes(root), None
    classes = sorted(train)
    if test is not None and set(test) - set(train):
        raise ValueError(
            f"folder dataset {root}: test/ has classes missing from train/: {sorted(set(test) - set(train))}"
        )
    groups = [train] + ([test] if test is not None else [])
    probes = {p: _probe(Image, p) for group in groups for paths in group.values() for p in paths}
    if size is None:
        size = Counter(hw for hw, _ in probes.values()).most_common(1)[0][0]
    if channels is None:
        channels = 3 if any(mode not in GRAY_MODES for _, mode in probes.values()) else 1

    def read(group: dict[str, list[Path]]) -> tuple[np.ndarray, np.ndarray]:
        paths = [(p, classes.index(name)) for name, ps in group.items() for p in ps]
        images = np.stack([_decode(Image, p, size, channels) for p, _ in paths])  # (N, C, H, W)
        x = images.astype(np.float32)
        x /= np.float32(255)
        return x, np.array([label for _, label in paths], dtype=np.int64)

    x, y = read(train)
    if test is not None:
        x_test, y_test = read(test)
        return x, y, x_test, y_test, classes
    train_idx, test_idx = stratified_split(y, test_fraction, rng=seed)
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx], classes
