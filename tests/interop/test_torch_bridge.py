"""to_torch / from_torch: same outputs, input and parameter gradients, and buffers, both ways."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from every_layer import EVERY_LAYER_INPUT, build_every_layer_model

from cnnlab.errors import CnnlabError
from cnnlab.interop.torch import from_torch, to_torch
from cnnlab.layers.activations import Maxout
from cnnlab.layers.base import Layer
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.sequential import Sequential
from cnnlab.models import MODELS, build_model
from cnnlab.models.classic import CLASSIC

#: The small zoo models; the classic ImageNet architectures: tests/models/test_classic_zoo.py.
SMALL_MODELS = [name for name in MODELS if name not in CLASSIC]

TOL = {np.float64: 1e-12, np.float32: 1e-5}
ZOO_INPUT = {
    "lenet5": (1, 8, 8),
    "small": (1, 8, 8),
    "small_bn": (1, 8, 8),
    "vgg": (3, 16, 16),
    "resnet": (3, 16, 16),
}


def zoo_model(name: str, dtype: Any, rng: int = 0) -> Sequential:
    C, H, W = ZOO_INPUT[name]
    kwargs = {"width": 4} if name in ("vgg", "resnet") else {}
    return build_model(name, in_channels=C, input_size=(H, W), num_classes=5, rng=rng, **kwargs).astype(dtype)


def assert_close(actual: np.ndarray, expected: np.ndarray, tol: float, what: str) -> None:
    """Equal within ``tol`` relative to the larger of 1 and the expected values' scale."""
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tol * scale, err_msg=what)


def check_parity(torch: Any, model: Layer, module: Any, input_shape: tuple[int, ...], dtype: Any) -> None:
    """Forward and backward through both; outputs, dx, every grad and every buffer must agree."""
    tol = TOL[dtype]
    rng = np.random.default_rng(7)
    x = rng.normal(size=(4, *input_shape)).astype(dtype)
    assert module.training == model.training
    y = model.forward(x)
    x_t = torch.tensor(x, requires_grad=True)
    module.zero_grad(set_to_none=True)
    y_t = module(x_t)
    assert y_t.dtype == torch.float64 if dtype == np.float64 else torch.float32
    assert_close(y_t.detach().numpy(), y, tol, "output")
    dy = rng.normal(size=y.shape).astype(dtype)
    dx = model.backward(dy)
    y_t.backward(torch.tensor(dy))
    assert_close(x_t.grad.numpy(), dx, tol, "input gradient")
    grads = {p.path: p.grad for p in model.parameters()}
    named = dict(module.named_parameters())
    assert sorted(named) == sorted(grads)
    for key, param in named.items():
        assert_close(param.grad.numpy(), grads[key], tol, f"gradient of {key}")
    state = model.state_dict()  # running statistics after one training step agree too
    for key, value in module.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert_close(value.numpy(), state[key], tol, f"state {key}")


def randomize(torch: Any, module: Any) -> None:
    """Torch-side weights and running statistics unlike cnnlab's init (for the from_torch direction)."""
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for key, value in module.state_dict(keep_vars=True).items():
            if key.endswith("running_var"):
                value.copy_(torch.rand(value.shape, generator=gen, dtype=value.dtype) + 0.5)
            elif value.is_floating_point():
                value.copy_(torch.rand(value.shape, generator=gen, dtype=value.dtype) - 0.5)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", SMALL_MODELS)
def test_zoo_to_torch(torch: Any, name: str, dtype: Any, mode: str) -> None:
    model = zoo_model(name, dtype).train(mode == "train")
    check_parity(torch, model, to_torch(model), ZOO_INPUT[name], dtype)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", SMALL_MODELS)
def test_zoo_from_torch(torch: Any, name: str, dtype: Any, mode: str) -> None:
    module = to_torch(zoo_model(name, dtype, rng=1))
    randomize(torch, module)
    module.train(mode == "train")
    model = from_torch(module)
    assert model.dtype == dtype
    check_parity(torch, model, module, ZOO_INPUT[name], dtype)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_layer_both_directions(torch: Any, dtype: Any, mode: str) -> None:
    # Dropout masks come from each framework's own generator: compare training with p = 0.
    model = build_every_layer_model(dropout=0.0 if mode == "train" else 0.3).astype(dtype)
    model.train(mode == "train")
    module = to_torch(model)
    check_parity(torch, model, module, EVERY_LAYER_INPUT, dtype)
    randomize(torch, module)
    back = from_torch(module)
    assert repr(back) == repr(model)
    check_parity(torch, back, module, EVERY_LAYER_INPUT, dtype)


def test_round_trip_keeps_weights_dtype_and_mode(torch: Any) -> None:
    model = build_every_layer_model().astype(np.float64).eval()
    module = to_torch(model)
    assert not module.training and next(module.parameters()).dtype == torch.float64
    back = from_torch(module)
    assert not back.training and back.dtype == np.float64
    before, after = model.state_dict(), back.state_dict()
    assert list(before) == list(after)
    for key in before:
        assert np.array_equal(before[key], after[key]), key


def test_custom_modules_map_as_documented(torch: Any) -> None:
    module = to_torch(build_every_layer_model())
    names = [type(m).__name__ for m in module]
    assert names[:7] == ["Conv2dSame", "BatchNorm2d", "LeakyReLU", "Conv2dSame", "ELU", "Maxout", "Conv2d"]
    assert module[2].negative_slope == 0.2 and module[4].alpha == 0.7
    assert module[1].eps == 1e-3 and module[1].momentum == 0.2
    assert names[3] == "Conv2dSame"  # even kernel: asymmetric padding, torch's "same" would copy
    assert names[8:10] == ["Residual", "Residual"] and module[8].shortcut is None
    assert names[13] == "GlobalAvgPool2d" and names[-1] == "Softmax" and module[-1].dim == 1
    assert module[11].count_include_pad is False and module[11].ceil_mode is True
    assert module[16].eps == 1e-2 and module[16].momentum == 0.3 and module[18].p == 0.3


def test_maxout_ties_send_the_gradient_to_the_first_piece(torch: Any) -> None:
    x = np.zeros((2, 4, 3, 3))  # every piece ties (think: after ReLU)
    model = Sequential(Maxout(2))
    module = to_torch(model)
    model.forward(x)
    dx = model.backward(np.ones((2, 2, 3, 3)))
    x_t = torch.tensor(x, requires_grad=True)
    module(x_t).sum().backward()
    assert np.array_equal(x_t.grad.numpy(), dx)


def test_odd_kernel_same_padding_at_stride_1_is_torchs_own(torch: Any) -> None:
    module = to_torch(Sequential(Conv2D(2, 3, 5, padding="same", dilation=2)))
    assert type(module[0]).__name__ == "Conv2d" and module[0].padding == "same"


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_from_torch_accepts_torch_same_padding_and_identity_shortcut(torch: Any) -> None:
    from torch import nn

    from cnnlab.interop.torch_modules import torch_modules

    module = nn.Sequential(
        nn.Conv2d(2, 3, 4, padding="same", dtype=torch.float64),
        torch_modules().Residual(nn.Sequential(nn.Tanh()), nn.Identity()),
    )
    model = from_torch(module)
    assert repr(model[0]) == "Conv2D(2, 3, kernel_size=4, padding='same')"
    check_parity(torch, model, module, (2, 5, 6), np.float64)


def test_unsupported_modules_and_layers_say_what_is_supported(torch: Any) -> None:
    from torch import nn

    with pytest.raises(CnnlabError, match=r"Conv3d.*no cnnlab equivalent: supported are nn.Sequential"):
        from_torch(nn.Sequential(nn.Conv3d(1, 2, 3)))  # (nn.Conv1d is Conv1D since issue 27)
    with pytest.raises(CnnlabError, match="only padding_mode='zeros'"):  # groups: supported since issue 26
        from_torch(nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"))
    with pytest.raises(
        CnnlabError, match=r"Softmax\(dim=-1\) has no cnnlab equivalent: .* over axis 1 \(dim=1\)"
    ):
        from_torch(nn.Softmax(dim=-1))
    with pytest.raises(CnnlabError, match="only float32 and float64"):
        from_torch(nn.Linear(2, 2).half())

    class _Custom(Layer):  # leading underscore: not registered as a layer type
        pass

    with pytest.raises(
        CnnlabError, match=r"to_torch: no PyTorch equivalent for _Custom\. Supported layers: "
    ):
        to_torch(Sequential(Conv2D(1, 1, 1), _Custom()))


def test_importing_interop_does_not_import_torch() -> None:
    code = "import sys, cnnlab.interop; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
