"""torchvision's architectures exported to ONNX with random weights, imported, and run (issue 26).

Each case builds torchvision's model (the oracle; random weights, BatchNorm's affine
parameters and running statistics randomized too so that they matter, eval mode), exports
it with ``torch.onnx.export`` at a small input (batch 2), reads the file with ``from_onnx``
and compares cnnlab's float32 output with torchvision's: max |err| / max |ref| <= 1e-4.

Both exporters: torch.export's (``dynamo=True``, torch 2.13's default) for every
architecture, the TorchScript one (``dynamo=False``) where it writes something cnnlab reads:
at these sizes it cannot export AlexNet's and VGG's adaptive pool (1x1 -> 6x6 / 7x7: "output
size that are not factor of input size"), and it writes ShuffleNet's ``chunk`` as Slices
whose bounds are computed from ``Shape`` at run time, which cnnlab refuses.

LeNet-5 has no torchvision twin and is not here. AlexNet and VGG keep torchvision's layers
with 64-wide hidden dense layers instead of 4096 (as in ``tests/models/test_classic_zoo.py``):
VGG-16's full classifier is 120 M weights, and its size changes nothing the import reads.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cnnlab import from_onnx  # the top-level name (issue 26's cnnlab.from_onnx)
from cnnlab.layers.adaptive_pool import AdaptiveAvgPool2D
from cnnlab.layers.channel_slice import ChannelSlice
from torchvision_oracle import import_torchvision

TOL = 1e-4
CLASSES = 10


def hidden_64(module: Any) -> Any:
    """AlexNet's/VGG's classifier with 64-wide hidden dense layers (the same layers otherwise)."""
    import torch

    dense = [i for i, m in enumerate(module.classifier) if isinstance(m, torch.nn.Linear)]
    sizes = [module.classifier[dense[0]].in_features, 64, 64, CLASSES]
    for i, (a, b) in zip(dense, itertools.pairwise(sizes), strict=True):
        module.classifier[i] = torch.nn.Linear(a, b)
    return module


# name -> (torchvision.models -> module, input size). The size is the smallest the architecture
# takes (AlexNet 63, VGG 32, GoogLeNet 15, DenseNet 29, SqueezeNet 17); the ResNets, MobileNetV2
# and ShuffleNet take any size (padding), so 32, their total stride: the last map is 1x1.
CASES: dict[str, tuple[Callable[[Any], Any], int]] = {
    "alexnet": (lambda tv: hidden_64(tv.alexnet(num_classes=CLASSES)), 63),
    "vgg11": (lambda tv: hidden_64(tv.vgg11(num_classes=CLASSES)), 32),
    "vgg16": (lambda tv: hidden_64(tv.vgg16(num_classes=CLASSES)), 32),
    "googlenet": (
        lambda tv: tv.GoogLeNet(CLASSES, aux_logits=False, transform_input=False, init_weights=True),
        15,
    ),
    "resnet18": (lambda tv: tv.resnet18(num_classes=CLASSES), 32),
    "resnet50": (lambda tv: tv.resnet50(num_classes=CLASSES), 32),
    "densenet121": (lambda tv: tv.densenet121(num_classes=CLASSES), 29),
    "squeezenet1_1": (lambda tv: tv.squeezenet1_1(num_classes=CLASSES), 17),
    "mobilenet_v2": (lambda tv: tv.mobilenet_v2(num_classes=CLASSES), 32),
    "shufflenet_v2_x1_0": (lambda tv: tv.shufflenet_v2_x1_0(num_classes=CLASSES), 32),
}

#: What the TorchScript exporter (dynamo=False) cannot give cnnlab at these sizes, and why.
NOT_TORCHSCRIPT = {
    "alexnet": "the exporter refuses adaptive_avg_pool2d 1x1 -> 6x6",
    "vgg11": "the exporter refuses adaptive_avg_pool2d 1x1 -> 7x7",
    "vgg16": "the exporter refuses adaptive_avg_pool2d 1x1 -> 7x7",
    "shufflenet_v2_x1_0": "chunk as Slices with bounds computed from Shape (cnnlab refuses Shape)",
}


def randomized(torch: Any, module: Any, rng: np.random.Generator) -> Any:
    """``module`` in eval mode with random biases and BatchNorm weight, bias, running mean and
    variance (torchvision initializes them to 0, 1, 0, 1, where a wrong import would not show)."""
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, (torch.nn.Conv2d, torch.nn.Linear)) and sub.bias is not None:
                sub.bias.copy_(torch.tensor(rng.normal(0, 0.1, sub.bias.shape)))
            if isinstance(sub, torch.nn.BatchNorm2d):
                c = sub.num_features
                sub.weight.copy_(torch.tensor(rng.uniform(0.5, 1.5, c)))
                sub.bias.copy_(torch.tensor(rng.normal(0, 0.1, c)))
                sub.running_mean.copy_(torch.tensor(rng.normal(0, 0.1, c)))
                sub.running_var.copy_(torch.tensor(rng.uniform(0.5, 1.5, c)))
    return module.eval()


def export_and_import(torch: Any, name: str, dynamo: bool, tmp_path: Path) -> tuple[Any, Any, np.ndarray]:
    """(cnnlab's import, torchvision's model, the input) for case ``name``."""
    make, size = CASES[name]
    torch.manual_seed(0)
    theirs = randomized(torch, make(import_torchvision().models), np.random.default_rng(1))
    x = np.random.default_rng(2).normal(size=(2, 3, size, size)).astype(np.float32)
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(theirs, (torch.from_numpy(x),), str(path), dynamo=dynamo, verbose=False)
    return from_onnx(path), theirs, x


def relative_error(torch: Any, ours: Any, theirs: Any, x: np.ndarray) -> float:
    with torch.no_grad():
        ref = theirs(torch.from_numpy(x)).numpy()
    y = ours.forward(x)
    assert y.shape == ref.shape == (2, CLASSES) and y.dtype == np.float32
    return float(np.abs(y - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize("name", list(CASES))
def test_torch_export_onnx_matches_torchvision(torch: Any, tmp_path: Path, name: str) -> None:
    ours, theirs, x = export_and_import(torch, name, True, tmp_path)
    err = relative_error(torch, ours, theirs, x)
    assert err <= TOL, f"{name}: max |err| / max |ref| = {err:.2e} > {TOL}"
    layers = {type(layer) for _, layer in ours.named_layers()}
    if name in ("alexnet", "vgg11", "vgg16"):  # the decomposed 1x1 -> 6x6 / 7x7 pool, read back
        assert AdaptiveAvgPool2D in layers
    if name == "shufflenet_v2_x1_0":  # chunk(2, dim=1) as Split, read back
        assert ChannelSlice in layers


@pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export")
@pytest.mark.parametrize("name", [n for n in CASES if n not in NOT_TORCHSCRIPT])
def test_torchscript_onnx_matches_torchvision(torch: Any, tmp_path: Path, name: str) -> None:
    ours, theirs, x = export_and_import(torch, name, False, tmp_path)
    err = relative_error(torch, ours, theirs, x)
    assert err <= TOL, f"{name}: max |err| / max |ref| = {err:.2e} > {TOL}"
