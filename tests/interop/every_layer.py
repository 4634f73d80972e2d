"""A model with every cnnlab layer type, shared by the interop tests."""

from __future__ import annotations

from cnnlab.layers.activations import ELU, LeakyReLU, Maxout, ReLU, Sigmoid, Softmax, Tanh
from cnnlab.layers.batchnorm import BatchNorm1D, BatchNorm2D
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.dense import Dense
from cnnlab.layers.dropout import Dropout
from cnnlab.layers.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from cnnlab.layers.reshape import Flatten
from cnnlab.layers.residual import Residual
from cnnlab.layers.sequential import Sequential

#: Input of ``every_layer_model``: (C, H, W).
EVERY_LAYER_INPUT = (3, 11, 10)


def build_every_layer_model(dropout: float = 0.3, rng: int = 0) -> Sequential:
    """One model with every cnnlab layer type and the options PyTorch maps differently."""
    return Sequential(
        Conv2D(3, 4, 3, stride=2, padding="same", rng=rng),  # "same" at stride 2: Conv2dSame
        BatchNorm2D(4, eps=1e-3, momentum=0.2),
        LeakyReLU(0.2),
        Conv2D(4, 6, (3, 2), padding="same", rng=rng + 1),  # "same" at stride 1, even kernel
        ELU(0.7),
        Maxout(2),  # 6 -> 3 channels
        Conv2D(3, 4, 3, padding=(2, 1), dilation=(2, 1), bias=False, rng=rng + 2),
        MaxPool2D(3, stride=2, padding=1, ceil_mode=True),
        Residual(Sequential(Conv2D(4, 4, 3, padding=1, rng=rng + 3), Tanh())),
        Residual(Sequential(Conv2D(4, 6, 1, stride=2, rng=rng + 4)), Conv2D(4, 6, 1, stride=2, rng=rng + 5)),
        ReLU(),
        AvgPool2D(2, stride=1, padding=1, ceil_mode=True, count_include_pad=False),
        AvgPool2D((2, 1)),
        GlobalAvgPool2D(),
        Flatten(),
        Dense(6, 8, rng=rng + 6),
        BatchNorm1D(8, eps=1e-2, momentum=0.3),  # eps bounds 1/std: features after pooling vary little
        Sigmoid(),
        Dropout(dropout, rng=rng + 7),
        Dense(8, 6, bias=False, rng=rng + 8),
        Maxout(3),
        Softmax(),
    )
