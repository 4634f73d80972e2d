"""The classic zoo architectures against torchvision's own definitions (the oracle).

Each case builds the cnnlab model and torchvision's at the same (small) input size and class
count, checks that the state_dict keys are torchvision's (so its weights load one to one),
copies torchvision's random weights (BatchNorm's affine parameters and running statistics
randomized too) and compares in float64: the output, dL/dx and every parameter gradient in
training mode (batch statistics; dropout 0 on both sides), the updated running statistics,
and the output in eval mode (running statistics). Tolerance 1e-9
relative to the largest value of each reference tensor.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from cnnlab.cli.main import main
from cnnlab.errors import ShapeError
from cnnlab.init import dry_build
from cnnlab.interop.torch import to_torch
from cnnlab.io import load, save
from cnnlab.layers.summary_tree import expanded_rows
from cnnlab.models.classic import CLASSIC
from cnnlab.models.classic.alexnet_vgg import alexnet, vgg11, vgg16
from cnnlab.models.classic.densenet import densenet121
from cnnlab.models.classic.googlenet import googlenet
from cnnlab.models.classic.mobilenet import mobilenet_v2
from cnnlab.models.classic.resnet import resnet18, resnet50
from cnnlab.models.classic.shufflenet import shufflenet_v2_x1_0
from cnnlab.models.classic.squeezenet import squeezenet1_1
from torchvision_oracle import import_torchvision

TOL = 1e-9


@dataclass(frozen=True)
class Case:
    build: Callable[..., Any]  # the cnnlab builder
    oracle: Callable[[Any, int, dict[str, Any]], Any]  # (torchvision.models, classes, options) -> module
    size: int  # the input's H = W in the test
    options: dict[str, Any] = field(default_factory=dict)  # training-mode options of both (dropout 0)


def small_classifier(torch: Any, module: Any, hidden: int, num_classes: int) -> Any:
    """torchvision's AlexNet/VGG with the hidden dense layers ``hidden`` wide instead of 4096."""
    dense = [i for i, m in enumerate(module.classifier) if isinstance(m, torch.nn.Linear)]
    sizes = [module.classifier[dense[0]].in_features, hidden, hidden, num_classes]
    for i, (a, b) in zip(dense, itertools.pairwise(sizes), strict=True):
        module.classifier[i] = torch.nn.Linear(a, b)
    return module


def hidden_64(make: Callable[..., Any]) -> Callable[[Any, int, dict[str, Any]], Any]:
    def oracle(tv: Any, n: int, o: dict[str, Any]) -> Any:
        import torch

        return small_classifier(torch, make(tv, n, o), o["hidden"], n)

    return oracle


CASES: dict[str, Case] = {
    # AlexNet and VGG with 64-wide hidden dense layers (4096 in float64 is 1 GB of weights;
    # the full-size keys and shapes are checked below without allocating them).
    "alexnet": Case(
        alexnet,
        hidden_64(lambda tv, n, o: tv.alexnet(num_classes=n, dropout=o["dropout"])),
        64,
        {"dropout": 0.0, "hidden": 64},
    ),
    "vgg11": Case(
        vgg11,
        hidden_64(lambda tv, n, o: tv.vgg11(num_classes=n, dropout=o["dropout"])),
        32,
        {"dropout": 0.0, "hidden": 64},
    ),
    "vgg16": Case(
        vgg16,
        hidden_64(lambda tv, n, o: tv.vgg16(num_classes=n, dropout=o["dropout"])),
        32,
        {"dropout": 0.0, "hidden": 64},
    ),
    "vgg11_bn": Case(
        vgg11,
        hidden_64(lambda tv, n, o: tv.vgg11_bn(num_classes=n, dropout=o["dropout"])),
        32,
        {"dropout": 0.0, "hidden": 64, "batch_norm": True},
    ),
    # 64 (the ResNets, DenseNet, MobileNetV2, ShuffleNet): at 32 the last stage's BatchNorm sees
    # 2 values per channel (1x1 maps, batch 2) and its gradient amplifies rounding (ResNet-18:
    # 5e-10 relative there, 2e-14 at 64; ResNet-50: 4e-5 there, 2e-12 at 64).
    "resnet18": Case(resnet18, lambda tv, n, o: tv.resnet18(num_classes=n), 64),
    "resnet50": Case(resnet50, lambda tv, n, o: tv.resnet50(num_classes=n), 64),
    "googlenet": Case(
        googlenet,
        lambda tv, n, o: tv.GoogLeNet(n, aux_logits=False, transform_input=False, init_weights=True, **o),
        32,
        {"dropout": 0.0},
    ),
    "densenet121": Case(densenet121, lambda tv, n, o: tv.densenet121(num_classes=n), 64),
    "squeezenet1_1": Case(
        squeezenet1_1, lambda tv, n, o: tv.squeezenet1_1(num_classes=n, **o), 32, {"dropout": 0.0}
    ),
    "mobilenet_v2": Case(
        mobilenet_v2, lambda tv, n, o: tv.mobilenet_v2(num_classes=n, **o), 64, {"dropout": 0.0}
    ),
    "shufflenet_v2_x1_0": Case(shufflenet_v2_x1_0, lambda tv, n, o: tv.shufflenet_v2_x1_0(num_classes=n), 64),
}


#: The smallest input of each architecture (1 for the others).
SMALLEST = {"alexnet": 63, "vgg11": 32, "vgg16": 32, "googlenet": 15, "densenet121": 29, "squeezenet1_1": 17}


def quick_size(name: str) -> int:
    """An input size for the checks that need no BatchNorm statistics of 2x2 maps: 32, or the smallest."""
    return max(32, SMALLEST.get(name, 1))


def randomize(torch: Any, module: Any, rng: np.random.Generator) -> None:
    """BN weight, bias, running mean and variance drawn at random (not 1, 0, 0, 1), and the
    conv and dense biases (torchvision's inits set most to 0)."""
    for sub in module.modules():
        if isinstance(sub, (torch.nn.Conv2d, torch.nn.Linear)) and sub.bias is not None:
            with torch.no_grad():
                sub.bias.copy_(torch.tensor(rng.normal(0, 0.1, sub.bias.shape)))
        if isinstance(sub, torch.nn.BatchNorm2d):
            c = sub.num_features
            with torch.no_grad():
                sub.weight.copy_(torch.tensor(rng.uniform(0.5, 1.5, c)))
                sub.bias.copy_(torch.tensor(rng.normal(0, 0.1, c)))
                sub.running_mean.copy_(torch.tensor(rng.normal(0, 0.1, c)))
                sub.running_var.copy_(torch.tensor(rng.uniform(0.5, 1.5, c)))


def close(name: str, ours: np.ndarray, ref: np.ndarray) -> float:
    """Assert ``ours`` equals ``ref`` to TOL relative to max |ref|; return the relative error.

    The scale is at least 1e-3: a gradient that is 0 in exact arithmetic (a conv bias before
    BatchNorm in training mode) is rounding noise of ~1e-17 in both frameworks.
    """
    assert ours.shape == ref.shape, f"{name}: shape {ours.shape} != torchvision's {ref.shape}"
    scale = max(float(np.abs(ref).max()), 1e-3)
    err = float(np.abs(ours - ref).max()) / scale
    assert err <= TOL, f"{name}: max |error| / max |ref| = {err:.2e} > {TOL}"
    return err


def pair_models(torch: Any, name: str, num_classes: int = 5, **options: Any) -> tuple[Any, Any]:
    """cnnlab's and torchvision's model, both float64, with torchvision's random weights in both."""
    tv = import_torchvision()
    case = CASES[name]
    torch.manual_seed(0)
    theirs = case.oracle(tv.models, num_classes, options).double()
    randomize(torch, theirs, np.random.default_rng(1))
    ours = case.build(3, case.size, num_classes, 0, **options).astype(np.float64)
    expected = [k for k in theirs.state_dict() if not k.endswith("num_batches_tracked")]
    assert list(ours.state_dict()) == expected  # the same keys, in the same order
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


@pytest.mark.parametrize("name", list(CASES))
def test_matches_torchvision_in_float64(torch, name):
    ours, theirs = pair_models(torch, name, **CASES[name].options)
    size = CASES[name].size
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 3, size, size))
    # Training mode: batch statistics; forward, dL/dx, every parameter gradient, running stats.
    ours.train()
    theirs.train()
    y = ours.forward(x)
    x_t = torch.tensor(x, requires_grad=True)
    y_t = theirs(x_t)
    close("forward (train)", y, y_t.detach().numpy())
    dy = rng.normal(size=y.shape)
    dx = ours.backward(dy)
    y_t.backward(torch.tensor(dy))
    close("dL/dx", dx, x_t.grad.numpy())
    grads = {p.path: p.grad for p in ours.parameters()}
    for key, param in theirs.named_parameters():
        close(f"dL/d{key}", grads[key], param.grad.numpy())
    state = ours.state_dict()
    for key, value in theirs.state_dict().items():
        if "running" in key:
            close(key, state[key], value.numpy())
    # Eval mode: the running statistics.
    ours.eval()
    theirs.eval()
    with torch.no_grad():
        ref = theirs(torch.tensor(x)).numpy()
    close("forward (eval)", ours.forward(x), ref)


@pytest.mark.parametrize("name", list(CASES))
def test_full_size_keys_and_shapes_are_torchvisions(torch, name):
    """At torchvision's defaults (1000 classes, 4096-wide classifiers), built without weights:
    cnnlab's initializers hand out zero views in ``dry_build``, torch's modules live on "meta"."""
    tv = import_torchvision()
    case = CASES[name]
    options = {k: v for k, v in case.options.items() if k not in ("dropout", "hidden")}
    defaults = {k: v for k, v in {"dropout": 0.5, "hidden": 4096}.items() if k in case.options}
    with torch.device("meta"):
        theirs = case.oracle(tv.models, 1000, {**case.options, **defaults})
    with dry_build(limit=200_000_000):
        ours = case.build(3, 224, 1000, 0, **options)
    shapes = {
        p + k: v.shape
        for p, layer in ours.named_layers()
        for k, v in {**layer.params, **layer.buffers}.items()
    }
    expected = {
        k: tuple(v.shape) for k, v in theirs.state_dict().items() if not k.endswith("num_batches_tracked")
    }
    assert shapes == expected
    assert ours.output_shape((1, 3, 224, 224)) == (1, 1000)


@pytest.mark.parametrize("name", list(CASES))
def test_any_class_count_and_channels(name):
    case = CASES[name]
    options = {k: v for k, v in case.options.items() if k != "dropout"}
    size = quick_size(name)
    net = case.build(1, (size, size + 8), 7, 0, **options)
    x = np.random.default_rng(0).normal(size=(2, 1, size, size + 8)).astype(np.float32)
    y = net.forward(x)
    assert y.shape == (2, 7) and y.dtype == np.float32
    assert net.backward(np.ones_like(y)).shape == x.shape


@pytest.mark.parametrize("name", list(CLASSIC))
def test_smallest_input_and_the_error_below_it(name):
    build, smallest = CLASSIC[name], SMALLEST.get(name, 1)
    options = {"hidden": 8} if name in ("alexnet", "vgg11", "vgg16") else {}
    with dry_build(limit=200_000_000):
        assert build(3, smallest, 4, 0, **options).output_shape((1, 3, smallest, smallest)) == (1, 4)
        assert build(3, (smallest + 5, smallest + 2), 4, 0, **options).output_shape(
            (1, 3, smallest + 5, smallest + 2)
        ) == (1, 4)
        if smallest > 1:
            with pytest.raises(
                ShapeError,
                match=rf"^{name}: input_size \({smallest - 1}, {smallest - 1}\) is too small for this model "
                rf"\(the smallest is {smallest}x{smallest}\): \w+Pool2D: input of shape",
            ):
                build(3, smallest - 1, 4, 0, **options)


def test_arguments_are_checked_with_the_models_name():
    with pytest.raises(ValueError, match=r"resnet18: argument `num_classes` must be a positive int"):
        resnet18(num_classes=0)
    with pytest.raises(
        ValueError, match=r"googlenet: argument `dropout` must be a number with 0 <= dropout < 1"
    ):
        googlenet(dropout=1.0)
    with pytest.raises(ValueError, match=r"vgg16: argument `hidden` must be a positive int"):
        vgg16(hidden=0)
    with pytest.raises(ValueError, match=r"mobilenet_v2: argument `input_size` must be a positive int or"):
        mobilenet_v2(input_size=(32,))


def test_summary_shows_every_block_with_its_branches(capsys):
    assert main(["summary", "googlenet"]) == 0  # 3x224x224 by default for the classic zoo
    out = capsys.readouterr().out
    assert "input: 3x224x224" in out and "total parameters: 5,610,154" in out  # 6,624,904 at 1000 classes
    assert (
        "inception3a.cat <- inception3a.branch1.relu, inception3a.branch2.1.relu, "
        "inception3a.branch3.1.relu, inception3a.branch4.1.relu: Concat()  256x28x28" in out
    )
    assert "layer1.0.add <- layer1.0.bn2, maxpool: Add()" in run_summary(capsys, "resnet18")
    shuffle = run_summary(capsys, "shufflenet_v2_x1_0")
    assert "stage2.1.cat <- stage2.1.x1, stage2.1.branch2.7: Concat()" in shuffle


def run_summary(capsys, name: str) -> str:
    assert main(["summary", name, "--input-shape", "3,64,64", "--classes", "5"]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name", list(CLASSIC))
def test_expanded_rows_add_up_to_the_model(name):
    with dry_build(limit=200_000_000):
        net = CLASSIC[name](3, 224, 1000, 0)
    rows = expanded_rows(net, (3, 224, 224))
    assert sum(r["params"] for r in rows) == sum(p.value.size for p in net.parameters())
    assert sum(r["flops"] for r in rows) == net.flops((1, 3, 224, 224))
    assert rows[-1]["output_shape"] == (1000,)


# resnet50 and vgg16 are built by the same code as resnet18 and vgg11 (and save 100-200 MB).
@pytest.mark.parametrize("name", [n for n in CLASSIC if n not in ("resnet50", "vgg16")])
def test_to_torch_and_save_load_round_trip(torch, tmp_path, name):
    case = CASES[name]
    options = {k: v for k, v in case.options.items() if k != "dropout"}
    size = quick_size(name)
    net = case.build(3, size, 5, 0, **options).astype(np.float64).eval()
    x = np.random.default_rng(3).normal(size=(2, 3, size, size))
    y = net.forward(x)
    module = to_torch(net).eval()
    with torch.no_grad():
        close("to_torch", module(torch.tensor(x)).numpy(), y)
    loaded = load(save(net, tmp_path / "net.npz"))
    np.testing.assert_array_equal(loaded.eval().forward(x), y)


@pytest.mark.parametrize("name", list(CLASSIC))
def test_initial_weights_follow_torchvisions_schemes(torch, name):
    """Each weight tensor's spread is torchvision's freshly initialized one (within 10%; tensors
    of at least 100 values), and exactly the biases torchvision zeroes are zero."""
    tv = import_torchvision()
    case = CASES[name]
    torch.manual_seed(0)
    theirs = case.oracle(tv.models, 5, case.options).state_dict()
    ours = case.build(3, case.size, 5, 0, **case.options).state_dict()
    resized = "hidden" in case.options  # the oracle's classifier was rebuilt narrower: default init
    for key, value in theirs.items():
        if not key.endswith(("weight", "bias")) or (resized and key.startswith("classifier.")):
            continue
        ref = value.numpy()
        if not ref.any() or ref.std() == 0:  # zeros (biases), ones (BatchNorm weights)
            np.testing.assert_array_equal(ours[key], ref, err_msg=key)
        elif ref.size >= 100:
            spread = float(ours[key].std()) / float(ref.std())
            assert abs(spread - 1) <= 0.1, f"{key}: std {ours[key].std():.4g}, torchvision's {ref.std():.4g}"
