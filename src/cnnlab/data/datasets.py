"""Datasets as arrays: NCHW float32 images in [0, 1], int64 labels, a train and a test split.

``load_dataset`` is the one entry point:

- ``"digits"``: 1,797 8x8 handwritten digits bundled with cnnlab (no download, NumPy only);
- ``"mnist"``, ``"fashion-mnist"``: the four IDX files, found locally or downloaded;
- ``"cifar10"``: the binary version of CIFAR-10, found locally or downloaded;
- a path to a folder: ``root/<class>/*.png`` images (needs Pillow).

Where files are looked for: see ``cnnlab.data.locate``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnlab.data.cifar import CLASSES as CIFAR10_CLASSES
from cnnlab.data.cifar import load_cifar_arrays
from cnnlab.data.folder import load_folder_arrays
from cnnlab.data.idx import load_idx_arrays

DIGITS_PATH = Path(__file__).with_name("digits.npz")

FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]

#: Names ``load_dataset`` knows, with their class names.
DATASETS: dict[str, list[str]] = {
    "digits": [str(d) for d in range(10)],
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": FASHION_CLASSES,
    "cifar10": CIFAR10_CLASSES,
}

#: Datasets of ``DATASETS`` whose classes are mirror-symmetric: a left-right flipped image keeps
#: its class, so flip augmentation and flip TTA are safe (not digits or MNIST: a mirrored 2 is
#: not a 2). Read by the advice checker, tune's ``augment: on`` and the TTA warning.
MIRROR_SAFE: tuple[str, ...] = ("fashion-mnist", "cifar10")


@dataclass
class ArrayDataset:
    """Images and labels held in memory, checked on construction.

    Attributes:
        x: images, float32, shape (N, C, H, W), finite.
        y: labels, int64, shape (N,), each in ``range(len(classes))``.
        classes: class names, ``classes[y[i]]`` names sample i.
        name: used in error messages, e.g. "mnist/train".

    Example:
        >>> ds = ArrayDataset(np.zeros((2, 1, 4, 4), np.float32), np.array([0, 1]), ["a", "b"])
        >>> len(ds), ds.x.shape
        (2, (2, 1, 4, 4))
    """

    x: np.ndarray
    y: np.ndarray
    classes: list[str]
    name: str = "dataset"

    def __post_init__(self) -> None:
        where = f"ArrayDataset {self.name!r}"
        if not isinstance(self.x, np.ndarray) or self.x.ndim != 4 or self.x.dtype != np.float32:
            raise ValueError(
                f"{where}: x must be a 4-D float32 array (N, C, H, W). Received: "
                f"{getattr(self.x, 'dtype', type(self.x).__name__)} shape {np.shape(self.x)}"
            )
        if not isinstance(self.y, np.ndarray) or self.y.ndim != 1 or self.y.dtype != np.int64:
            raise ValueError(
                f"{where}: y must be a 1-D int64 array (N,). Received: "
                f"{getattr(self.y, 'dtype', type(self.y).__name__)} shape {np.shape(self.y)}"
            )
        if len(self.x) != len(self.y):
            raise ValueError(f"{where}: x has {len(self.x)} images but y has {len(self.y)} labels")
        if len(self.y) == 0:
            raise ValueError(f"{where}: no samples (N=0)")
        if len(self.classes) == 0:
            raise ValueError(f"{where}: classes must list at least one class name")
        low, high = int(self.y.min()), int(self.y.max())
        if low < 0 or high >= len(self.classes):
            raise ValueError(
                f"{where}: labels must be in 0..{len(self.classes) - 1} "
                f"({len(self.classes)} classes). Received: labels in {low}..{high}"
            )
        if not np.isfinite(self.x).all():
            raise ValueError(
                f"{where}: x contains NaN or infinite values "
                f"({int((~np.isfinite(self.x)).sum())} of {self.x.size})"
            )

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Splits:
    """A dataset's train and test parts, its name and class names."""

    train: ArrayDataset
    test: ArrayDataset
    name: str
    classes: list[str]

    def __repr__(self) -> str:
        shape = self.train.x.shape[1:]
        return (
            f"Splits({self.name!r}: train {len(self.train)}, test {len(self.test)}, "
            f"images {shape}, {len(self.classes)} classes)"
        )


def _splits(name: str, classes: list[str], arrays: tuple[np.ndarray, ...]) -> Splits:
    x_train, y_train, x_test, y_test = arrays
    return Splits(
        train=ArrayDataset(x_train, y_train, classes, name=f"{name}/train"),
        test=ArrayDataset(x_test, y_test, classes, name=f"{name}/test"),
        name=name,
        classes=classes,
    )


def load_digits() -> Splits:
    """The bundled 8x8 digits: 1,437 train / 360 test, fixed stratified split, pixels / 16.

    Example:
        >>> data = load_digits()
        >>> data.train.x.shape, data.test.x.shape, float(data.train.x.max())
        ((1437, 1, 8, 8), (360, 1, 8, 8), 1.0)
    """
    with np.load(DIGITS_PATH, allow_pickle=False) as f:
        images, labels = f["images"], f["labels"].astype(np.int64)
        train_idx, test_idx = f["train_idx"].astype(np.int64), f["test_idx"].astype(np.int64)
    x = images[:, None].astype(np.float32) / np.float32(16)  # (1797, 1, 8, 8); pixels are 0..16
    return _splits(
        "digits", DATASETS["digits"], (x[train_idx], labels[train_idx], x[test_idx], labels[test_idx])
    )


def load_dataset(
    name_or_path: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    download: bool = True,
    *,
    size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    min_classes: int = 2,
) -> Splits:
    """Load a dataset by name, or an image folder by path.

    Args:
        name_or_path: "digits", "mnist", "fashion-mnist", "cifar10", or a folder of
            ``<class>/*.png|jpg|jpeg`` images (optionally under ``train/`` and ``test/``).
        root: folder to look in first for the dataset files (the CLI's ``--data-dir``).
        download: fetch missing files from the official source into the user cache.
        size: folders only: output (H, W) or int (default: the most common image size).
        channels: folders only: 1 or 3 (default: 3 if any image is in colour).
        test_fraction: folders only, without ``test/``: share held out per class.
        seed: folders only: seed of that split.
        min_classes: folders only: refuse fewer class folders (default 2: a classifier needs two).

    Raises:
        ValueError: unknown name (the message lists the valid ones) or corrupt data.
        FileNotFoundError: files not found and not downloadable (the message lists every place).

    Example:
        >>> load_dataset("digits")
        Splits('digits': train 1437, test 360, images (1, 8, 8), 10 classes)
    """
    name = str(name_or_path)
    if not name.strip():  # Path("") is the current folder: never read it by accident (issue 23)
        raise ValueError(
            f"load_dataset: the dataset name is empty. Received: {name!r}. Give a name "
            f"({', '.join(DATASETS)}) or the path of a folder of <class>/*.png images "
            "(`.` for the current folder)"
        )
    if name.startswith("text:"):  # issue 27: text datasets have their own loader and commands
        raise ValueError(
            f"load_dataset: {name!r} is a text dataset; read it with cnnlab.data.text.load_text. "
            "cnnlab train, evaluate, predict and show take text data; this command does not yet"
        )
    key = name.lower()
    if key == "digits":
        return load_digits()
    if key in ("mnist", "fashion-mnist"):
        return _splits(key, DATASETS[key], load_idx_arrays(key, root, download))
    if key == "cifar10":
        return _splits(key, DATASETS[key], load_cifar_arrays(root, download))
    if Path(name).is_dir():
        x_train, y_train, x_test, y_test, classes = load_folder_arrays(
            name,
            size=size,
            channels=channels,
            test_fraction=test_fraction,
            seed=seed,
            min_classes=min_classes,
        )
        return _splits(Path(name).resolve().name, classes, (x_train, y_train, x_test, y_test))
    raise ValueError(
        f"load_dataset: unknown dataset {name!r}. Valid names: {', '.join(DATASETS)}, "
        "or the path of an existing folder of <class>/*.png images"
    )
