"""cnnlab: every idea of a classic CNN lecture as readable, fast, verified NumPy code.

The table of contents:

- layers: Conv2D, MaxPool2D, AvgPool2D, GlobalAvgPool2D, the lecture's activations
  (Sigmoid, Tanh, ReLU, LeakyReLU, ELU, Maxout) and Softmax, Dense, Flatten, Dropout,
  BatchNorm1D/2D; for the classic architectures: grouped Conv2D(groups=...),
  AdaptiveAvgPool2D, LocalResponseNorm, ChannelShuffle, LogSoftmax, ReLU6, Hardswish; for
  text: Embedding, Conv1D, MaxPool1D, AvgPool1D, GlobalMaxPool1D, MaskedMaxPool1D
- models: Sequential, Residual, and Graph (any directed acyclic graph of layers, joined by
  Concat or Add)
- losses: SoftmaxCrossEntropy, MSELoss
- optimizers: SGD, Adam, AdamW (schedules in cnnlab.optim)
- training: fit, History, callbacks (cnnlab.train), datasets (cnnlab.data),
  models (cnnlab.models), save/load (cnnlab.io)
- from_onnx: an ONNX model file as a cnnlab model (onnx is imported when it is called;
  cnnlab.interop has the PyTorch and ONNX bridges)
- gradcheck: float64 finite-difference checks of any layer
- tune_process: the explicit process set-up that makes NumPy training faster (OpenBLAS's
  idle workers sleep, glibc's malloc keeps freed memory; cnnlab.process). The CLI and the
  NumPy engine call it; ``CNNLAB_TUNE_PROCESS=0`` turns it off.

``import cnnlab`` loads NumPy and the standard library only, and changes nothing in the
process (no environment variable, no library setting).
"""

from cnnlab.errors import CnnlabError, ShapeError
from cnnlab.gradcheck import gradcheck
from cnnlab.interop.onnx_import import from_onnx
from cnnlab.io import load, save
from cnnlab.layers.activations import ELU, LeakyReLU, Maxout, ReLU, Sigmoid, Softmax, Tanh
from cnnlab.layers.activations_extra import Hardswish, LogSoftmax, ReLU6
from cnnlab.layers.adaptive_pool import AdaptiveAvgPool2D
from cnnlab.layers.base import Layer, Param, from_config, to_config
from cnnlab.layers.batchnorm import BatchNorm1D, BatchNorm2D
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.conv1d import Conv1D
from cnnlab.layers.dense import Dense
from cnnlab.layers.dropout import Dropout
from cnnlab.layers.embedding import Embedding
from cnnlab.layers.graph import Graph
from cnnlab.layers.lrn import LocalResponseNorm
from cnnlab.layers.masked_pool1d import MaskedMaxPool1D
from cnnlab.layers.merge import Add, Concat
from cnnlab.layers.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from cnnlab.layers.pooling1d import AvgPool1D, GlobalMaxPool1D, MaxPool1D
from cnnlab.layers.reshape import Flatten
from cnnlab.layers.residual import Residual
from cnnlab.layers.sequential import Sequential
from cnnlab.layers.shuffle import ChannelShuffle
from cnnlab.losses import MSELoss, SoftmaxCrossEntropy
from cnnlab.optim import SGD, Adam, AdamW
from cnnlab.process import tune_process
from cnnlab.train.loop.callbacks import CSVLogger, EarlyStopping, JSONLogger, ModelCheckpoint
from cnnlab.train.loop.divergence import TrainingDiverged
from cnnlab.train.loop.fit import fit
from cnnlab.train.loop.history import History

__version__ = "0.1.0"

__all__ = [
    "ELU",
    "SGD",
    "Adam",
    "AdamW",
    "AdaptiveAvgPool2D",
    "Add",
    "AvgPool1D",
    "AvgPool2D",
    "BatchNorm1D",
    "BatchNorm2D",
    "CSVLogger",
    "ChannelShuffle",
    "CnnlabError",
    "Concat",
    "Conv1D",
    "Conv2D",
    "Dense",
    "Dropout",
    "EarlyStopping",
    "Embedding",
    "Flatten",
    "GlobalAvgPool2D",
    "GlobalMaxPool1D",
    "Graph",
    "Hardswish",
    "History",
    "JSONLogger",
    "Layer",
    "LeakyReLU",
    "LocalResponseNorm",
    "LogSoftmax",
    "MSELoss",
    "MaskedMaxPool1D",
    "MaxPool1D",
    "MaxPool2D",
    "Maxout",
    "ModelCheckpoint",
    "Param",
    "ReLU",
    "ReLU6",
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
    "from_onnx",
    "gradcheck",
    "load",
    "save",
    "to_config",
    "tune_process",
]
