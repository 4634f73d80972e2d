"""A Graph through the layer table: to_torch / from_torch (GraphModule), model.py and ONNX.

Parity to 1e-12 in float64 (outputs, dL/dx, every parameter gradient, buffers), the same
state_dict keys, the way back, and onnxruntime in float32 (1e-5 relative).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from cnnlab.errors import CnnlabError
from cnnlab.interop.codegen import torch_source
from cnnlab.interop.onnx import to_onnx
from cnnlab.interop.torch import from_torch, to_torch
from cnnlab.interop.torch_modules import torch_modules
from cnnlab.layers.activations import ReLU
from cnnlab.layers.batchnorm import BatchNorm2D
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.graph import Graph
from cnnlab.layers.merge import Add, Concat
from cnnlab.layers.pooling import MaxPool2D
from cnnlab.layers.residual import Residual
from cnnlab.layers.sequential import Sequential
from torch_compare import compare_with_torch


def _inception() -> Graph:
    g = Graph("x")
    g.add("b1", Conv2D(4, 3, 1, rng=0), "x")
    g.add("b2", Sequential(Conv2D(4, 2, 1, rng=1), ReLU(), Conv2D(2, 3, 3, padding=1, rng=2)), "x")
    g.add("b3", Sequential(MaxPool2D(3, stride=1, padding=1), Conv2D(4, 2, 1, rng=3)), "x")
    g.add("cat", Concat(), ["b1", "b2", "b3"])
    g.output(g.add("act", ReLU(), "cat"))
    return g


def _dense() -> Graph:
    g, last, c = Graph("x"), "x", 4
    for i in range(3):
        g.add(f"l{i}", Sequential(BatchNorm2D(c), ReLU(), Conv2D(c, 2, 3, padding=1, rng=i)), last)
        last = g.add(f"c{i}", Concat(), [last, f"l{i}"])
        c += 2
    g.output(last)
    return g


def _fan_out_nested() -> Graph:
    g = Graph("x")
    g.add("stem", Conv2D(4, 4, 3, padding=1, rng=0), "x")
    g.add("res", Residual(Sequential(Conv2D(4, 4, 3, padding=1, rng=1), BatchNorm2D(4))), "stem")
    g.add("inner", _inception(), "stem")  # a Graph as a node: keys "inner.b2.0.weight"
    g.add("proj", Conv2D(8, 4, 1, rng=2), "inner")
    g.output(g.add("sum", Add(), ["stem", "res", "proj", "stem"]))
    return g


GRAPHS: dict[str, Callable[[], Graph]] = {"inception": _inception, "dense": _dense, "nested": _fan_out_nested}


def _random_running_stats(graph: Graph, rng: np.random.Generator) -> None:
    state = graph.state_dict()
    for key, value in state.items():
        if key.endswith("running_mean"):
            state[key] = rng.uniform(-1, 1, value.shape)
        elif key.endswith("running_var"):
            state[key] = rng.uniform(0.5, 2, value.shape)
    graph.load_state_dict(state)


@pytest.mark.parametrize("name", list(GRAPHS))
@pytest.mark.parametrize("training", [True, False])
def test_graph_to_torch_matches_in_float64(
    torch: Any, rng: np.random.Generator, name: str, training: bool
) -> None:
    graph = GRAPHS[name]().astype(np.float64)
    _random_running_stats(graph, rng)
    graph.train(training)
    module = to_torch(graph)
    assert module.training is training
    assert [k for k in module.state_dict() if "num_batches" not in k] == list(graph.state_dict())
    x = rng.standard_normal((3, 4, 6, 5))
    dy = rng.standard_normal(graph.output_shape(x.shape))
    # compare_with_torch: output, dL/dx, every parameter gradient and the state_dict (after
    # the forward: BatchNorm's running stats move the same way in training mode).
    compare_with_torch(torch, graph, module, x, dy, atol=1e-12, where=f"{name} training={training}")


@pytest.mark.parametrize("name", list(GRAPHS))
def test_graph_from_torch_round_trip(torch: Any, rng: np.random.Generator, name: str) -> None:
    graph = GRAPHS[name]().astype(np.float64).eval()
    module = to_torch(graph)
    with torch.no_grad():  # new weights on the torch side: the way back must carry them
        for param in module.parameters():
            param.uniform_(-0.5, 0.5)
    back = from_torch(module)
    assert isinstance(back, Graph) and repr(back) == repr(graph)
    assert back.dtype == np.float64 and not back.training
    x = rng.standard_normal((2, 4, 5, 5))
    expected = module(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(back.forward(x), expected, rtol=0, atol=1e-12)


def test_two_input_graph_module(torch: Any, rng: np.random.Generator) -> None:
    graph = Graph(["x", "y"])
    graph.add("fx", Conv2D(2, 3, 3, padding=1, rng=0), "x")
    graph.output(graph.add("cat", Concat(), ["fx", "y"]))
    graph.astype(np.float64)
    module = to_torch(graph)
    x, y = rng.standard_normal((2, 2, 4, 4)), rng.standard_normal((2, 1, 4, 4))
    np.testing.assert_allclose(
        graph.forward(x, y), module(torch.tensor(x), torch.tensor(y)).detach().numpy(), rtol=0, atol=1e-12
    )
    assert from_torch(module).inputs == ("x", "y")


def test_errors(torch: Any) -> None:
    graph = Graph("x")
    graph.add("a", ReLU(), "x")
    with pytest.raises(CnnlabError, match=r"to_torch: the Graph has no output"):
        to_torch(graph)
    reserved = Graph("x")
    reserved.output(reserved.add("keys", ReLU(), "x"))
    with pytest.raises(CnnlabError, match=r"to_torch: Graph: torch refused a name .*'keys'.*rename it"):
        to_torch(reserved)
    assert torch_modules().Concat(2).extra_repr() == "dim=2"


def test_a_graph_inside_a_sequential_and_the_reverse(torch: Any, rng: np.random.Generator) -> None:
    """One walk converts both: the nested containers' keys are the same on both sides."""
    inner = Graph("x")
    inner.output(inner.add("cat", Concat(), ["x", inner.add("r", Sequential(Conv2D(4, 2, 1, rng=0)), "x")]))
    model = Sequential(Conv2D(4, 4, 3, padding=1, rng=1), inner, ReLU()).astype(np.float64)
    module = to_torch(model)
    assert type(module[1]).__name__ == "GraphModule"
    assert [k for k in module.state_dict()] == list(model.state_dict())  # "1.r.0.weight"
    x = rng.standard_normal((2, 4, 5, 5))
    dy = rng.standard_normal(model.output_shape(x.shape))
    compare_with_torch(torch, model, module, x, dy, atol=1e-12, where="sequential(graph)")
    back = from_torch(module)
    assert repr(back) == repr(model) and back.dtype == np.float64


@pytest.mark.parametrize("name", list(GRAPHS))
def test_model_py_builds_the_same_graph(torch: Any, rng: np.random.Generator, name: str) -> None:
    graph = GRAPHS[name]().astype(np.float64).eval()
    namespace: dict[str, Any] = {}
    exec(compile(torch_source(graph), "model.py", "exec"), namespace)
    net = namespace["build"]()
    net.load_state_dict(to_torch(graph).state_dict())
    x = rng.standard_normal((2, 4, 6, 5))
    with torch.no_grad():
        np.testing.assert_allclose(net.eval()(torch.tensor(x)).numpy(), graph.forward(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", list(GRAPHS))
@pytest.mark.parametrize("dynamo", [False, True])
def test_to_onnx_exports_a_graph(onnxruntime: Any, tmp_path: Any, name: str, dynamo: bool) -> None:
    if dynamo:
        pytest.importorskip("onnxscript")
    graph = GRAPHS[name]()
    _random_running_stats(graph, np.random.default_rng(3))
    path = to_onnx(graph, tmp_path / f"{name}.onnx", (4, 6, 5), dynamo=dynamo)
    assert graph.training  # exported in eval mode, the model left as it was
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):  # the batch axis is dynamic
        x = np.random.default_rng(batch).standard_normal((batch, 4, 6, 5)).astype(np.float32)
        out = session.run(None, {"input": x})[0]
        ref = graph.predict(x)
        err = np.abs(out - ref).max() / np.abs(ref).max()
        assert err <= 1e-5, f"{name} dynamo={dynamo} batch={batch}: relative error {err:.2e}"


def test_to_onnx_refuses_a_graph_with_two_inputs(tmp_path: Any) -> None:
    graph = Graph(["x", "y"])
    graph.output(graph.add("cat", Concat(), ["x", "y"]))
    with pytest.raises(ValueError, match=r"to_onnx: the model must take one input.*Graph with 2 inputs"):
        to_onnx(graph, tmp_path / "two.onnx", (2, 4, 4))
