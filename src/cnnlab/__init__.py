"""cnnlab: every idea of a classic CNN lecture as readable, fast, verified NumPy code.

The table of contents:

- layers: Conv2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D, the lecture's activations
  (Sigmoid, Tanh, ReLU, LeakyReLU, ELU, Maxout) and Softmax, Dense, Flatten, Dropout,
  BatchNorm1D/2D, Residual, Sequential
- losses: SoftmaxCrossEntropy, MSELoss
- optimizers: SGD, Adam, AdamW (schedules in cnnlab.optim)
- training: fit, History, callbacks (cnnlab.train), datasets (cnnlab.data),
  models (cnnlab.models), save/load (cnnlab.io)
- gradcheck: float64 finite-difference checks of any layer

``import cnnlab`` loads NumPy and the standard library only.
"""

import os
import sys

# OpenBLAS's worker threads spin for a long while after each matrix product; on a 2-core
# laptop they fight cnnlab's own copy/pool threads (measured: 63-79 -> 48-58 ms per train
# step, docs/performance.md). OpenBLAS reads this when NumPy is first imported; when a script
# imported NumPy before cnnlab, blas_threads makes the loaded OpenBLAS re-read it. A value
# the user set wins (and is left alone).
if "OPENBLAS_THREAD_TIMEOUT" not in os.environ:
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = "4"
    if "numpy" in sys.modules:
        from cnnlab.blas_threads import apply_thread_timeout

        apply_thread_timeout()

# A train step's freed arrays are kept for the next step instead of being handed back to the
# system and faulted in again (~1,000 page faults per resnet step; glibc only: malloc_reuse).
if sys.platform.startswith("linux"):
    from cnnlab.malloc_reuse import keep_freed_memory

    keep_freed_memory()

from cnnlab.errors import CnnlabError, ShapeError
from cnnlab.gradcheck import gradcheck
from cnnlab.io import load, save
from cnnlab.layers.activations import ELU, LeakyReLU, Maxout, ReLU, Sigmoid, Softmax, Tanh
from cnnlab.layers.base import Layer, Param, from_config, to_config
from cnnlab.layers.batchnorm import BatchNorm1D, BatchNorm2D
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.dense import Dense
from cnnlab.layers.dropout import Dropout
from cnnlab.layers.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from cnnlab.layers.reshape import Flatten
from cnnlab.layers.residual import Residual
from cnnlab.layers.sequential import Sequential
from cnnlab.losses import MSELoss, SoftmaxCrossEntropy
from cnnlab.optim import SGD, Adam, AdamW
from cnnlab.train.loop.callbacks import CSVLogger, EarlyStopping, JSONLogger, ModelCheckpoint
from cnnlab.train.loop.fit import TrainingDiverged, fit
from cnnlab.train.loop.history import History

__version__ = "0.1.0"

__all__ = [
    "ELU",
    "SGD",
    "Adam",
    "AdamW",
    "AvgPool2D",
    "BatchNorm1D",
    "BatchNorm2D",
    "CSVLogger",
    "CnnlabError",
    "Conv2D",
    "Dense",
    "Dropout",
    "EarlyStopping",
    "Flatten",
    "GlobalAvgPool2D",
    "History",
    "JSONLogger",
    "Layer",
    "LeakyReLU",
    "MSELoss",
    "MaxPool2D",
    "Maxout",
    "ModelCheckpoint",
    "Param",
    "ReLU",
    "Residual",
    "Sequential",
    "ShapeError",
    "Sigmoid",
    "Softmax",
    "SoftmaxCrossEntropy",
    "Tanh",
    "TrainingDiverged",
    "fit",
    "from_config",
    "gradcheck",
    "load",
    "save",
    "to_config",
]
