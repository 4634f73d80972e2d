"""The layer table: every registered layer declares its PyTorch/ONNX entry, and round-trips.

The cases come from the registry (``import_all_layers``), not from a list: a new layer file
is checked here without an edit, and fails until its table entry works both ways.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from every_layer import layer_example
from test_torch_bridge import randomize

from cnnlab.errors import CnnlabError
from cnnlab.interop.codegen import torch_source
from cnnlab.interop.onnx import onnx_table
from cnnlab.interop.torch import from_torch, to_torch, torch_class, torch_table
from cnnlab.layers.base import Layer, TorchSpec
from cnnlab.layers.registry import import_all_layers

LAYERS = import_all_layers()
CONVERTIBLE = sorted(name for name, cls in LAYERS.items() if cls.torch is not None and cls.torch.module)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_layer_declares_its_table_entry(name: str) -> None:
    cls = LAYERS[name]
    spec = cls.__dict__.get("torch")  # its own, not inherited: each layer says it
    assert isinstance(spec, TorchSpec), (
        f"{name}: declare `torch = TorchSpec('torch.nn.Module', onnx_ops=(...))` in the class, or "
        "`TorchSpec(None, none_because='...')` when PyTorch has no equivalent"
    )
    assert spec.module is not None or spec.none_because
    for path in spec.modules:
        assert path.startswith(("torch.nn.", "cnnlab.interop.torch_modules.")), path


def check_layer_parity(torch: Any, model: Layer, module: Any, x: np.ndarray) -> None:
    """Output, input gradient (float inputs), every parameter gradient and buffer agree (float64)."""
    float_input = x.dtype.kind == "f"
    x_t = torch.tensor(x, requires_grad=float_input)
    y, y_t = model.forward(x), module(x_t)
    np.testing.assert_allclose(y_t.detach().numpy(), y, rtol=0, atol=1e-12)
    dy = np.random.default_rng(1).normal(size=y.shape)
    module.zero_grad(set_to_none=True)
    dx = model.backward(dy)
    if isinstance(dx, tuple):  # a multi-input layer (Concat, Add) called with one input
        (dx,) = dx
    y_t.backward(torch.tensor(dy))
    if float_input:
        np.testing.assert_allclose(x_t.grad.numpy(), dx, rtol=0, atol=1e-12)
    grads = {p.path: p.grad for p in model.parameters()}
    named = dict(module.named_parameters())
    assert sorted(named) == sorted(grads)
    for key, param in named.items():
        np.testing.assert_allclose(param.grad.numpy(), grads[key], rtol=0, atol=1e-12, err_msg=key)
    state = model.state_dict()
    for key, value in module.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            np.testing.assert_allclose(value.numpy(), state[key], rtol=0, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("name", CONVERTIBLE)
def test_every_layer_round_trips_through_torch_and_model_py(torch: Any, name: str) -> None:
    layer, shape, make_input = layer_example(LAYERS[name])
    x = make_input(np.random.default_rng(0), (3, *shape))
    model = layer.astype(np.float64).eval()  # eval: Dropout's masks are each framework's own
    module = to_torch(model)
    check_layer_parity(torch, model, module, x)
    randomize(torch, module)
    back = from_torch(module)
    assert type(back) is type(model) and repr(back) == repr(model)
    check_layer_parity(torch, back, module, x)
    namespace: dict[str, Any] = {}
    exec(compile(torch_source(back), "model.py", "exec"), namespace)  # the generated model.py
    net = namespace["build"]()
    net.load_state_dict(module.state_dict())
    with torch.no_grad():
        assert torch.equal(net.eval()(torch.tensor(x)), module.eval()(torch.tensor(x)))


def test_every_module_path_in_the_table_resolves(torch: Any) -> None:
    paths = {path for cls in LAYERS.values() if cls.torch for path in cls.torch.modules}
    assert {torch_class(path) for path in paths} == set(torch_table())
    assert torch_table()[torch.nn.Conv2d].__name__ == "Conv2D"
    assert torch_table()[torch_class("cnnlab.interop.torch_modules.Conv2dSame")].__name__ == "Conv2D"


def test_a_torch_subclass_with_its_own_forward_is_refused(torch: Any) -> None:
    class Doubled(torch.nn.ReLU):
        def forward(self, x: Any) -> Any:
            return 2 * super().forward(x)

    class Renamed(torch.nn.ReLU):  # the base's forward: computes what nn.ReLU does
        pass

    with pytest.raises(
        CnnlabError, match=r"Doubled\(\) has no cnnlab equivalent: supported are nn.Sequential"
    ):
        from_torch(torch.nn.Sequential(Doubled()))
    assert repr(from_torch(torch.nn.Sequential(Renamed()))[0]) == "ReLU()"


def test_a_spec_without_a_module_must_say_why() -> None:
    with pytest.raises(CnnlabError, match="none_because"):
        TorchSpec(None)
    assert TorchSpec(None, none_because="a training-time view").modules == ()


def test_every_declared_onnx_op_is_an_onnx_operator() -> None:
    onnx = pytest.importorskip("onnx")
    table = onnx_table()
    assert {"Conv", "Gemm", "BatchNormalization", "Relu", "MaxPool"} <= set(table)
    unknown = sorted(op for op in table if not onnx.defs.has(op))
    assert not unknown, f"not ONNX operators (a typo in a TorchSpec's onnx_ops?): {unknown}"
    assert [cls.__name__ for cls in table["Gemm"]] == ["Dense"]
