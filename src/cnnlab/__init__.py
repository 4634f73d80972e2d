"""cnnlab: every idea of a classic CNN lecture as readable, fast, verified NumPy code.

The table of contents:

- layers: Conv2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D, the lecture's activations
  (Sigmoid, Tanh, ReLU, LeakyReLU, ELU, Maxout) and Softmax, Dense, Flatten, Dropout,
  BatchNorm1D/2D, Residual, Sequential
- losses: SoftmaxCrossEntropy, MSELoss
- gradcheck: float64 finite-difference checks of any layer
"""

from cnnlab.errors import CnnlabError, ShapeError
from cnnlab.layers.base import Layer, Param, from_config, to_config
from cnnlab.layers.sequential import Sequential

__version__ = "0.1.0"

__all__ = [
    "CnnlabError",
    "Layer",
    "Param",
    "Sequential",
    "ShapeError",
    "from_config",
    "to_config",
]
