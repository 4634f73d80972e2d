"""torchvision's initial weights for each classic architecture (its ``init_weights`` loops).

cnnlab's layers start from PyTorch's default (uniform, bound 1/sqrt(fan_in)); torchvision
then redraws the weights of most architectures. Training from scratch depends on it (He
et al., 2015, arXiv:1502.01852: a ReLU net keeps its activations' scale when each weight's
variance is 2 / fan), so each builder calls ``init_like_torchvision`` with its scheme:

- ``resnet``: convs N(0, 2 / fan_out) (Kaiming normal, mode fan_out); dense layers default.
- ``vgg``: convs N(0, 2 / fan_out) with bias 0; dense layers N(0, 0.01^2) with bias 0.
- ``googlenet``: convs and dense weights N(0, 0.01^2) truncated to [-2, 2].
- ``densenet``: convs N(0, 2 / fan_in); the dense bias 0.
- ``squeezenet``: convs U(-sqrt(6 / fan_in), sqrt(6 / fan_in)) with bias 0, except the
  classifier's conv: N(0, 0.01^2).
- ``mobilenet``: convs N(0, 2 / fan_out) with bias 0; dense N(0, 0.01^2) with bias 0.

fan_in = C_in/groups * KH * KW and fan_out = C_out * KH * KW for a conv weight
(C_out, C_in/groups, KH, KW), as ``torch.nn.init`` computes them. AlexNet and ShuffleNetV2
keep PyTorch's default, as in torchvision. BatchNorm starts at weight 1, bias 0 already.
"""

from __future__ import annotations

import math

import numpy as np

from cnnlab.layers.base import Layer
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.dense import Dense

SCHEMES = ("resnet", "vgg", "googlenet", "densenet", "squeezenet", "mobilenet")


def _fans(weight: np.ndarray) -> tuple[int, int]:
    """(fan_in, fan_out) of a conv (C_out, C_in/g, KH, KW) or dense (out, in) weight."""
    receptive = math.prod(weight.shape[2:])
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def init_like_torchvision(net: Layer, scheme: str, rng: np.random.Generator, last_conv: str = "") -> None:
    """Redraw ``net``'s conv and dense weights as torchvision's ``scheme`` does (module docstring).

    Layers are visited in state_dict order and each draw comes from ``rng``, so a seed gives
    the same weights. In a ``dry_build`` (read-only zero views) nothing is drawn.

    Args:
        last_conv: the path of SqueezeNet's classifier conv (``"classifier.1."``).
    """
    for path, layer in net.named_layers():
        if not isinstance(layer, (Conv2D, Dense)):
            continue
        weight = layer.params["weight"]
        if not weight.flags.writeable:  # a dry build: shapes only
            return
        fan_in, fan_out = _fans(weight)
        zero_bias = True
        if isinstance(layer, Conv2D):
            if scheme in ("resnet", "vgg", "mobilenet"):
                new = rng.normal(0.0, math.sqrt(2.0 / fan_out), weight.shape)
                zero_bias = scheme != "resnet"
            elif scheme == "densenet":
                new = rng.normal(0.0, math.sqrt(2.0 / fan_in), weight.shape)
                zero_bias = False
            elif scheme == "squeezenet" and path == last_conv:
                new = rng.normal(0.0, 0.01, weight.shape)
            elif scheme == "squeezenet":
                bound = math.sqrt(6.0 / fan_in)
                new = rng.uniform(-bound, bound, weight.shape)
            else:  # googlenet
                new = np.clip(rng.normal(0.0, 0.01, weight.shape), -2.0, 2.0)
                zero_bias = False
        else:
            if scheme in ("vgg", "mobilenet"):
                new = rng.normal(0.0, 0.01, weight.shape)
            elif scheme == "googlenet":
                new = np.clip(rng.normal(0.0, 0.01, weight.shape), -2.0, 2.0)
                zero_bias = False
            else:  # resnet: PyTorch's default; densenet: default weight, bias 0
                new = weight
                zero_bias = scheme == "densenet"
        layer.params["weight"] = new.astype(weight.dtype)
        if zero_bias and "bias" in layer.params:
            layer.params["bias"] = np.zeros_like(layer.params["bias"])
