"""Mini-batches, per-channel normalization and a stratified split.

Everything here takes its randomness from an explicit ``numpy.random.Generator`` (or a seed),
so the same seed gives the same batches, epoch after epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from cnnlab.errors import arg_error, check_int
from cnnlab.init import RngLike, make_rng

Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def stratified_split(y: np.ndarray, fraction: float, rng: RngLike = None) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices so every class keeps its share in both parts.

    The second part gets ``ceil(fraction * N)`` samples (scikit-learn's rounding for test
    sizes), shared out between the classes in proportion to their counts (largest remainder).

    Args:
        y: integer labels, shape (N,).
        fraction: share of samples that go to the second (validation / test) part, in (0, 1).
        rng: Generator or seed for the shuffle inside each class.

    Returns:
        ``(train_idx, val_idx)``: sorted int64 index arrays that together cover ``range(N)``.

    Example:
        >>> y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
        >>> train_idx, val_idx = stratified_split(y, 0.5, rng=0)
        >>> len(train_idx), len(val_idx), np.bincount(y[val_idx]).tolist()
        (5, 5, [2, 3])
    """
    y = np.asarray(y)
    if y.ndim != 1 or len(y) < 2:
        raise arg_error("stratified_split", "y", "a 1-D label array with at least 2 labels", y.shape)
    if not 0.0 < fraction < 1.0:
        raise arg_error("stratified_split", "fraction", "a number strictly between 0 and 1", fraction)
    gen = make_rng(rng)
    classes, counts = np.unique(y, return_counts=True)
    n_val = math.ceil(round(fraction * len(y), 9))  # round: 0.1 * 30 is 3.0000000000000004
    if n_val >= len(y):
        raise arg_error(
            "stratified_split", "fraction", f"small enough to leave training samples (N={len(y)})", fraction
        )
    # Largest-remainder apportionment: exact total, each class within one of its share.
    share = counts * (n_val / len(y))
    per_class = np.floor(share).astype(np.int64)
    leftover = n_val - int(per_class.sum())
    order = np.argsort(-(share - per_class), kind="stable")
    per_class[order[:leftover]] += 1
    val_parts = []
    for cls, k in zip(classes, per_class, strict=True):
        members = np.flatnonzero(y == cls)
        val_parts.append(gen.permutation(members)[:k])
    val_idx = np.sort(np.concatenate(val_parts)).astype(np.int64)
    mask = np.ones(len(y), dtype=bool)
    mask[val_idx] = False
    return np.flatnonzero(mask).astype(np.int64), val_idx


class DataLoader:
    """Iterate ``(xb, yb)`` mini-batches, reshuffled every epoch from one seeded generator.

    Args:
        x: inputs, shape (N, ...).
        y: labels, shape (N, ...).
        batch_size: samples per batch. The last batch may be smaller unless ``drop_last``.
        shuffle: draw a new permutation at the start of every epoch.
        drop_last: skip the last, incomplete batch.
        rng: Generator or seed used for shuffling and passed to ``transform``.
        transform: ``transform(xb, rng) -> xb``, e.g. random flips for augmentation.

    Example:
        >>> x = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1)
        >>> loader = DataLoader(x, np.arange(10), batch_size=4, shuffle=False)
        >>> len(loader), [yb.tolist() for _, yb in loader]
        (3, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]])
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = False,
        rng: RngLike = None,
        transform: Transform | None = None,
    ) -> None:
        if len(x) != len(y):
            raise arg_error("DataLoader", "y", f"as long as x ({len(x)} samples)", f"{len(y)} labels")
        if len(x) == 0:
            raise arg_error("DataLoader", "x", "a non-empty array", "0 samples")
        check_int("DataLoader", "batch_size", batch_size)
        if drop_last and batch_size > len(x):
            raise ValueError(
                f"DataLoader: batch_size={batch_size} is larger than the dataset ({len(x)} samples) "
                "and drop_last=True would leave no batch at all. Use a smaller batch_size or drop_last=False."
            )
        self.x = x
        self.y = y
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.rng = make_rng(rng)
        self.transform = transform

    def __len__(self) -> int:
        """Number of batches per epoch."""
        n = len(self.x)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        n = len(self.x)
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            xb, yb = self.x[idx], self.y[idx]  # (B, ...) copies: transforms may edit them
            if self.transform is not None:
                xb = self.transform(xb, self.rng)
            yield xb, yb


class Normalizer:
    """Per-channel standardization ``(x - mean) / std`` fitted on the training split only.

    Fit on training images alone so no statistics leak from the test set; save ``state()``
    with the model so predictions normalize the same way.

    Example:
        >>> x = np.stack([np.zeros((2, 2)), np.full((2, 2), 2.0)])[:, None].astype(np.float32)
        >>> norm = Normalizer().fit(x)
        >>> norm.state()
        {'mean': [1.0], 'std': [1.0]}
        >>> norm(x)[:, 0, 0, 0].tolist()
        [-1.0, 1.0]
    """

    def __init__(self, mean: list[float] | None = None, std: list[float] | None = None) -> None:
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.std = None if std is None else np.asarray(std, dtype=np.float64)

    def fit(self, x_train: np.ndarray, eps: float = 1e-7) -> Normalizer:
        """Compute per-channel mean and std over (N, H, W) of NCHW ``x_train``; returns self."""
        if x_train.ndim != 4 or len(x_train) == 0:
            raise arg_error("Normalizer.fit", "x_train", "a non-empty NCHW array", x_train.shape)
        self.mean = x_train.mean(axis=(0, 2, 3), dtype=np.float64)  # (C,)
        # std floor: a constant channel (e.g. a blank border) must not divide by zero.
        self.std = np.maximum(x_train.std(axis=(0, 2, 3), dtype=np.float64), eps)  # (C,)
        return self

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.mean is None or self.std is None:
            raise RuntimeError("Normalizer: call fit(x_train) or from_state(...) before normalizing")
        if x.ndim != 4 or x.shape[1] != len(self.mean):
            raise arg_error("Normalizer", "x", f"an NCHW array with {len(self.mean)} channels", x.shape)
        mean = self.mean.astype(x.dtype)[None, :, None, None]  # (1, C, 1, 1)
        std = self.std.astype(x.dtype)[None, :, None, None]  # (1, C, 1, 1)
        return (x - mean) / std

    def state(self) -> dict[str, Any]:
        """JSON-able ``{"mean": [...], "std": [...]}``."""
        if self.mean is None or self.std is None:
            raise RuntimeError("Normalizer: nothing to save; call fit(x_train) first")
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Normalizer:
        """Rebuild a fitted Normalizer from ``state()``."""
        if set(state) != {"mean", "std"} or len(state["mean"]) != len(state["std"]):
            raise arg_error(
                "Normalizer.from_state", "state", "{'mean': [...], 'std': [...]} of equal length", state
            )
        return cls(list(state["mean"]), list(state["std"]))

    def __repr__(self) -> str:
        if self.mean is None or self.std is None:
            return "Normalizer()"
        return f"Normalizer(mean={self.state()['mean']}, std={self.state()['std']})"
