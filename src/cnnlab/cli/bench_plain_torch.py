"""The baseline of ``cnnlab bench --recipe``: the plain PyTorch script a user would write.

Written as the lecture's PyTorch example (``examples/pytorch_classification.py``) writes
its training loop: the data as tensors, NCHW, eager mode, a Python loop over shuffled
batches, ``F.cross_entropy``, ``zero_grad`` / ``backward`` / ``step``. The model is the
recipe's, as standard ``torch.nn`` modules (``cnnlab.interop.to_torch``: Conv2d,
BatchNorm2d, ReLU, MaxPool2d, Linear; what a hand-written ``nn.Sequential`` holds), with the
recipe's weights, optimizer and learning rate. The augmentation is the recipe's (random
shifts of up to ``max_shift`` pixels filled with ``fill``, and horizontal flips), written in
PyTorch on the whole batch, vectorized as a careful user writes it (no loop over images).
Its random draws come from torch's generator: the same work as cnnlab's augmentation, not
the same numbers.

``cnnlab bench --recipe NAME`` times ``next()`` of ``plain_torch_steps``: one step each.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np

from cnnlab.data.transforms import Compose, RandomHorizontalFlip, RandomShift


def shift_flip_options(transform: Any) -> tuple[int, float, float]:
    """``(max_shift, fill, flip_p)`` of a recipe's ``shift,flip`` augmentation (0, 0, 0: none).

    Raises:
        ValueError: an augmentation other than random shifts and horizontal flips (the
            plain script writes only these two).
    """
    parts = (
        [] if transform is None else transform.transforms if isinstance(transform, Compose) else [transform]
    )
    max_shift, fill, flip_p = 0, 0.0, 0.0
    for part in parts:
        if isinstance(part, RandomShift):
            fills = part.fill if isinstance(part.fill, tuple) else (part.fill,)
            if len(set(fills)) != 1:
                raise ValueError(f"plain PyTorch script: one fill value for every channel. Received: {fills}")
            max_shift, fill = part.max_shift, fills[0]
        elif isinstance(part, RandomHorizontalFlip):
            flip_p = part.p
        else:
            raise ValueError(
                "plain PyTorch script: only the augmentations shift and flip are written in it. "
                f"Received: {part!r}"
            )
    return max_shift, fill, flip_p


def plain_torch_steps(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int,
    lr: float,
    max_shift: int = 0,
    fill: float = 0.0,
    flip_p: float = 0.0,
    seed: int = 0,
) -> Generator[None, None, None]:
    """Train ``model`` (a torch module) on ``(x, y)`` with Adam, epoch after epoch; yield after each step.

    Args:
        model: an ``nn.Module`` in NCHW (PyTorch's default layout), float32.
        x, y: the training images (N, C, H, W), normalized, and their labels (N,).
        batch_size, lr: the recipe's.
        max_shift, fill, flip_p: the recipe's augmentation (``shift_flip_options``).
        seed: seeds torch's generator (shuffling, augmentation).
    """
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    x_train = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))  # (N, C, H, W)
    y_train = torch.from_numpy(y.astype(np.int64))  # (N,)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    while True:  # one epoch per pass; the caller decides how many steps to take
        order = torch.randperm(len(x_train))  # reshuffle every epoch
        for i in range(0, len(x_train), batch_size):
            batch = order[i : i + batch_size]
            xb = augment(x_train[batch], max_shift, fill, flip_p)  # (B, C, H, W)
            loss = F.cross_entropy(model(xb), y_train[batch])  # fused, stable softmax + NLL
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            yield


def augment(xb: Any, max_shift: int, fill: float, flip_p: float) -> Any:
    """Random shifts (``fill`` where the image moved away) and horizontal flips, per image.

    Shape:
        - Input: (N, C, H, W). Output: (N, C, H, W).
    """
    import torch
    import torch.nn.functional as F

    N, C, H, W = xb.shape
    if max_shift > 0:
        p = max_shift
        padded = F.pad(xb, (p, p, p, p), value=fill)  # (N, C, H + 2p, W + 2p)
        top = torch.randint(0, 2 * p + 1, (N,))  # (N,) the window's corner: shift = p - top
        left = torch.randint(0, 2 * p + 1, (N,))
        rows = top[:, None] + torch.arange(H)  # (N, H)
        cols = left[:, None] + torch.arange(W)  # (N, W)
        n = torch.arange(N)[:, None, None, None]
        c = torch.arange(C)[None, :, None, None]
        xb = padded[n, c, rows[:, None, :, None], cols[:, None, None, :]]  # (N, C, H, W)
    if flip_p > 0:
        flip = torch.rand(N) < flip_p  # (N,)
        xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)  # (N, C, H, W)
    return xb
