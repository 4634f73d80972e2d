"""Image-folder datasets: ``root/<class>/*.png|jpg|jpeg``, optionally under ``train/`` and ``test/``.

Pillow decodes the images; it is imported only here, when a folder is loaded, so the core
install (NumPy only) still loads digits, MNIST and CIFAR.
"""

from __future__ import annotations

import math
import os
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from cnnlab.data.images import Converted, open_image, pillow, read_image, upright_size
from cnnlab.data.loader import stratified_split
from cnnlab.errors import arg_error

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "F"}


def scan_classes(folder: Path) -> dict[str, list[Path]]:
    """``{class name: sorted image paths}`` per sub-folder; warns (once) about non-image files."""
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise ValueError(f"folder dataset {folder}: no class sub-folders; expected {folder}/<class>/*.png")
    classes = {}
    skipped: list[Path] = []
    for class_dir in class_dirs:
        images = []
        for path in sorted(class_dir.iterdir()):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                images.append(path)
            elif not path.name.startswith("."):
                skipped.append(path)
        if not images:
            raise ValueError(f"folder dataset: class folder {class_dir} has no .png/.jpg/.jpeg images")
        classes[class_dir.name] = images
    if len(skipped) == 1:
        warnings.warn(f"folder dataset: skipping {skipped[0]} (not a .png/.jpg/.jpeg file)", stacklevel=3)
    elif skipped:
        names = ", ".join(str(p.relative_to(folder)) for p in skipped[:3]) + (
            ", ..." if len(skipped) > 3 else ""
        )
        warnings.warn(
            f"folder dataset {folder}: skipping {len(skipped)} files that are not .png/.jpg/.jpeg images "
            f"({names})",
            stacklevel=3,
        )
    return classes


def _probe(path: Path) -> tuple[tuple[int, int], str]:
    """(H, W) as shown (after EXIF orientation) and mode of an image, without decoding the pixels."""
    try:
        with open_image(path) as im:
            return upright_size(im), im.mode
    except Exception as exc:  # Pillow raises UnidentifiedImageError, OSError, SyntaxError...
        raise ValueError(f"folder dataset: cannot read image {path}: {exc}") from exc


def _decode(path: Path, size: tuple[int, int], channels: int) -> tuple[np.ndarray, Converted]:
    try:
        return read_image(path, channels, size, warn_large=False)  # (C, H, W); _probe warned
    except Exception as exc:
        raise ValueError(f"folder dataset: cannot read image {path}: {exc}") from exc


def _check_counts(
    root: Path, train: dict[str, list[Path]], min_classes: int, split: bool, fraction: float
) -> None:
    """A classifier needs two classes, and enough images for a training and a validation part."""
    if len(train) < min_classes:
        where = root / "train" if (root / "train").is_dir() else root
        raise ValueError(
            f"folder dataset {root}: found {len(train)} class folder ({', '.join(train)}); a classifier "
            f"needs at least {min_classes} classes, one sub-folder each, e.g. {where}/cat/*.png and "
            f"{where}/dog/*.png"
        )
    n = sum(len(paths) for paths in train.values())
    n_train = n - math.ceil(round(fraction * n, 9)) if split else n
    if min_classes > 1 and n_train < 2:
        held = f" after holding out the test share (test_fraction={fraction})" if split else ""
        raise ValueError(
            f"folder dataset {root}: too few images: {n} in {len(train)} classes leave {n_train} for "
            f"training{held}; training needs at least 2 (a validation part is held out of them too). "
            "Add images: a few dozen per class is a sensible minimum"
        )


def _report(root: Path, done: list[Converted], size: tuple[int, int], reason: str | None) -> None:
    """One warning for the whole folder: how many images were resized or lost information."""
    steps = Counter(step for c in done for step in c.lossy if not step.startswith("size"))
    parts = [f"{count} {step}" for step, count in sorted(steps.items())]
    resized = sum(c.size != size for c in done)
    if resized:
        parts.append(f"{resized} resized to {size[0]}x{size[1]} ({reason or 'the most common size'})")
    if parts:
        warnings.warn(f"folder dataset {root}: of {len(done)} images, " + "; ".join(parts), stacklevel=3)


def load_folder_arrays(
    root: str | os.PathLike[str],
    size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    min_classes: int = 2,
    size_reason: str = "the size asked for",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Read an image folder: ``(x_train, y_train, x_test, y_test, classes)``.

    Args:
        root: folder with one sub-folder per class, or with ``train/`` (and ``test/``) holding them.
        size: output (H, W), or an int for square images; default: the most common image size.
        channels: 1 (grayscale) or 3 (RGB); default: 3 if any image is in colour, else 1.
        test_fraction: share of each class held out when there is no ``test/`` folder.
        seed: seed of that stratified split.
        min_classes: refuse folders with fewer classes (2 for training; ``cnnlab evaluate``
            accepts a folder holding one of the model's classes).
        size_reason: why images are resized to ``size``, for the warning.

    Images come back as (N, C, H, W) float32 in [0, 1], labels as int64 indices into the
    sorted class names. Images of another size are resized, colour images read as grayscale
    (``channels=1``) lose their colour, transparency is flattened onto black: one warning
    says how many (see ``cnnlab.data.images.read_image``).
    """
    root = Path(root)
    if channels not in (None, 1, 3):
        raise arg_error("load_dataset", "channels", "1 (grayscale), 3 (RGB) or None", channels)
    if isinstance(size, int):
        size = (size, size)
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise arg_error("load_dataset", "size", "a positive int or (H, W) pair", size)
    pillow()  # the install hint before anything else
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
    probes = {p: _probe(p) for group in groups for paths in group.values() for p in paths}
    _check_counts(root, train, min_classes, test is None, test_fraction)
    asked = size is not None
    if size is None:
        size = Counter(hw for hw, _ in probes.values()).most_common(1)[0][0]
    if channels is None:
        channels = 3 if any(mode not in GRAY_MODES for _, mode in probes.values()) else 1

    done: list[Converted] = []

    def read(group: dict[str, list[Path]]) -> tuple[np.ndarray, np.ndarray]:
        paths = [(p, classes.index(name)) for name, ps in group.items() for p in ps]
        images = []
        for p, _ in paths:
            pixels, converted = _decode(p, size, channels)  # (C, H, W)
            images.append(pixels)
            done.append(converted)
        x = np.stack(images)  # (N, C, H, W)
        return x, np.array([label for _, label in paths], dtype=np.int64)

    x, y = read(train)
    x_test, y_test = read(test) if test is not None else (x[:0], y[:0])
    _report(root, done, size, size_reason if asked else None)
    if test is not None:
        return x, y, x_test, y_test, classes
    train_idx, test_idx = stratified_split(y, test_fraction, rng=seed)
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx], classes
