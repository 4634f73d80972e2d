"""CNN image classification with PyTorch: Fashion-MNIST with the network of cnnlab's `small`.

A standalone script (PyTorch and NumPy only) to put beside cnnlab's NumPy engine:

    python examples/pytorch_classification.py --epochs 3
    cnnlab train --data fashion-mnist --model small --epochs 3 --schedule none --val-split 0

Both read the same four IDX files (train-images-idx3-ubyte.gz, ...), scale pixels to [0, 1],
normalize them with the training set's mean and std, and train
Conv(1->32, 3x3, pad 1) - ReLU - MaxPool(2) - Conv(32->64, 3x3, pad 1) - ReLU - MaxPool(2) -
Flatten - Dense(64*7*7 -> 128) - ReLU - Dense(128 -> 10) with softmax cross-entropy and Adam
(batch 32, learning rate 2e-3: cnnlab's defaults).
"""

from __future__ import annotations

import argparse
import gzip
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CLASSES = [
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


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip or raw): 2 zero bytes, a dtype code (8 = uint8), the rank, the sizes, the data."""
    data = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    if data[:2] != b"\0\0" or data[2] != 8:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_split(data_dir: Path, prefix: str, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as float32 (N, 1, 28, 28) in [0, 1] and labels as int64 (N,)."""
    images = read_idx(data_dir / f"{prefix}-images-idx3-ubyte.gz")[:limit]  # (N, 28, 28)
    labels = read_idx(data_dir / f"{prefix}-labels-idx1-ubyte.gz")[:limit]  # (N,)
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)  # (N, 1, 28, 28)
    return x, torch.from_numpy(labels.astype(np.int64))


def build_model(height: int = 28, width: int = 28, num_classes: int = 10) -> nn.Sequential:
    """cnnlab's `small`: two conv3x3-ReLU-maxpool stages, Dense(128), the classifier."""
    return nn.Sequential(
        nn.Conv2d(1, 32, kernel_size=3, padding=1),  # (N, 32, 28, 28)
        nn.ReLU(),
        nn.MaxPool2d(2),  # (N, 32, 14, 14)
        nn.Conv2d(32, 64, kernel_size=3, padding=1),  # (N, 64, 14, 14)
        nn.ReLU(),
        nn.MaxPool2d(2),  # (N, 64, 7, 7)
        nn.Flatten(),  # (N, 3136)
        nn.Linear(64 * (height // 4) * (width // 4), 128),
        nn.ReLU(),
        nn.Linear(128, num_classes),  # logits; the loss applies the softmax
    )


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> tuple[float, float]:
    """Mean loss and accuracy over (x, y), in eval mode and without gradients."""
    model.eval()
    total_loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            logits = model(x[i : i + batch_size])
            total_loss += F.cross_entropy(logits, y[i : i + batch_size], reduction="sum").item()
            correct += (logits.argmax(dim=1) == y[i : i + batch_size]).sum().item()
    return total_loss / len(x), correct / len(x)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images of each split")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)

    x_train, y_train = load_split(args.data_dir, "train", args.limit)
    x_test, y_test = load_split(args.data_dir, "t10k", args.limit)
    mean, std = x_train.mean(), x_train.std()  # normalize with training statistics only
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    print(f"train {tuple(x_train.shape)}, test {tuple(x_test.shape)}")

    model = build_model(*x_train.shape[2:])
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    for epoch in range(1, args.epochs + 1):
        model.train()
        start = time.perf_counter()
        order = torch.randperm(len(x_train))  # reshuffle every epoch
        for i in range(0, len(x_train), args.batch_size):
            batch = order[i : i + args.batch_size]
            loss = F.cross_entropy(model(x_train[batch]), y_train[batch])  # fused, stable softmax + NLL
            optimizer.zero_grad()
            loss.backward()  # the backward phase: every layer's gradient, by autograd
            optimizer.step()
        train_loss, train_acc = evaluate(model, x_train, y_train, 1000)
        test_loss, test_acc = evaluate(model, x_test, y_test, 1000)
        print(
            f"epoch {epoch}: train loss {train_loss:.4f} acc {train_acc:.4f} | "
            f"test loss {test_loss:.4f} acc {test_acc:.4f} | {time.perf_counter() - start:.1f}s"
        )


if __name__ == "__main__":
    main()
