"""Graph (a DAG of layers) and the merge layers Concat/Add: PyTorch parity, gradcheck, config, errors.

Each architecture test builds the same network twice: a cnnlab ``Graph`` and a hand-written
``torch.nn.Module`` whose submodules carry the node names (so the state_dict keys agree),
loads torch's random weights into cnnlab and compares, in float64, the output, dL/dx and
every parameter gradient to 1e-10 (``compare_with_torch``).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest

import cnnlab
from cnnlab.errors import CnnlabError, ShapeError
from cnnlab.gradcheck import gradcheck
from cnnlab.layers.activations import ReLU
from cnnlab.layers.base import from_config, to_config
from cnnlab.layers.batchnorm import BatchNorm2D
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.dense import Dense
from cnnlab.layers.graph import Graph
from cnnlab.layers.merge import Add, Concat
from cnnlab.layers.pooling import GlobalAvgPool2D, MaxPool2D
from cnnlab.layers.registry import config_parameter_count
from cnnlab.layers.residual import Residual
from cnnlab.layers.sequential import Sequential
from cnnlab.models.zoo import resnet
from torch_compare import compare_with_torch


def _twin(torch, modules, run):
    """A torch module holding ``modules`` under the node names, computing ``run(self, x)``."""

    class Twin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            for name, module in modules.items():
                self.add_module(name, module)

        def forward(self, x):
            return run(self, x)

    torch.manual_seed(0)
    twin = Twin().double()
    for module in twin.modules():  # non-trivial running stats, for eval mode
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    return twin


def _load(graph, twin):
    graph.astype(np.float64)
    graph.load_state_dict({k: v.numpy() for k, v in twin.state_dict().items()})
    return graph


# ---- three architectures, each against torch and gradcheck ----------------------------------
def _inception(torch=None):
    """GoogLeNet's block: 1x1 | 1x1->3x3 | 1x1->5x5 | pool->1x1, joined by Concat, then ReLU."""
    g = Graph("x")
    g.add("b1", Conv2D(4, 3, 1), "x")
    g.add("b2", Sequential(Conv2D(4, 2, 1), ReLU(), Conv2D(2, 3, 3, padding=1)), "x")
    g.add("b3", Sequential(Conv2D(4, 2, 1), ReLU(), Conv2D(2, 2, 5, padding=2)), "x")
    g.add("b4", Sequential(MaxPool2D(3, stride=1, padding=1), Conv2D(4, 2, 1)), "x")
    g.add("cat", Concat(), ["b1", "b2", "b3", "b4"])
    g.add("act", ReLU(), "cat")
    g.output("act")
    if torch is None:
        return g
    nn = torch.nn
    modules = {
        "b1": nn.Conv2d(4, 3, 1),
        "b2": nn.Sequential(nn.Conv2d(4, 2, 1), nn.ReLU(), nn.Conv2d(2, 3, 3, padding=1)),
        "b3": nn.Sequential(nn.Conv2d(4, 2, 1), nn.ReLU(), nn.Conv2d(2, 2, 5, padding=2)),
        "b4": nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(4, 2, 1)),
    }

    def run(m, x):
        return torch.relu(torch.cat([m.b1(x), m.b2(x), m.b3(x), m.b4(x)], dim=1))

    return g, _twin(torch, modules, run)


def _dense_block(torch=None, layers=3, channels=4, growth=3):
    """DenseNet's block: each BN-ReLU-Conv reads the concatenation of the input and all earlier outputs."""
    g = Graph("x")
    last, c = "x", channels
    for i in range(layers):
        g.add(f"l{i}", Sequential(BatchNorm2D(c), ReLU(), Conv2D(c, growth, 3, padding=1)), last)
        last = g.add(f"c{i}", Concat(), [last, f"l{i}"])
        c += growth
    g.output(last)
    if torch is None:
        return g
    nn = torch.nn
    modules, c = {}, channels
    for i in range(layers):
        modules[f"l{i}"] = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, growth, 3, padding=1))
        c += growth

    def run(m, x):
        for i in range(layers):
            x = torch.cat([x, getattr(m, f"l{i}")(x)], dim=1)
        return x

    return g, _twin(torch, modules, run)


def _fan_out(torch=None):
    """stem feeds three nodes (a residual branch, a 1x1 branch, the sum).

    y = relu(stem + a(stem) + b(stem))
    """
    g = Graph("x")
    g.add("stem", Conv2D(3, 4, 3, padding=1), "x")
    g.add(
        "a",
        Sequential(Conv2D(4, 4, 3, padding=1), BatchNorm2D(4), ReLU(), Conv2D(4, 4, 3, padding=1)),
        "stem",
    )
    g.add("b", Residual(Sequential(Conv2D(4, 4, 1))), "stem")
    g.add("sum", Add(), ["stem", "a", "b"])
    g.add("act", ReLU(), "sum")
    g.output("act")
    if torch is None:
        return g
    nn = torch.nn

    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.Sequential(nn.Conv2d(4, 4, 1))

        def forward(self, x):
            return self.block(x) + x

    modules = {
        "stem": nn.Conv2d(3, 4, 3, padding=1),
        "a": nn.Sequential(
            nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1)
        ),
        "b": Res(),
    }

    def run(m, x):
        s = m.stem(x)
        return torch.relu(s + m.a(s) + m.b(s))

    return g, _twin(torch, modules, run)


ARCHITECTURES = {"inception": (_inception, 4), "dense": (_dense_block, 4), "fan_out": (_fan_out, 3)}


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
@pytest.mark.parametrize("training", [True, False])
def test_architectures_match_torch(torch, rng, arch, training):
    build, channels = ARCHITECTURES[arch]
    graph, twin = build(torch)
    _load(graph, twin).train(training)
    twin.train(training)
    assert set(graph.state_dict()) == {k for k in twin.state_dict() if "num_batches" not in k}
    x = rng.standard_normal((3, channels, 7, 6))
    dy = rng.standard_normal(graph.output_shape(x.shape))
    compare_with_torch(torch, graph, twin, x, dy, atol=1e-10, where=f"{arch} training={training}")


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_architectures_gradcheck(rng, arch):
    build, channels = ARCHITECTURES[arch]
    graph = build().eval()  # eval: BatchNorm's batch statistics would couple the examples
    result = gradcheck(graph, rng.standard_normal((2, channels, 5, 4)))
    assert result.ok(1e-6), str(result)
    assert set(result.errors) == {"input", *(p.path for p in graph.parameters())}


def test_gradcheck_in_training_mode(rng):
    graph = _dense_block(layers=2, channels=2, growth=2)  # BatchNorm with batch statistics
    result = gradcheck(graph, rng.standard_normal((3, 2, 4, 4)))
    assert result.ok(1e-6), str(result)


# ---- fan-out: the gradients of every use add up ---------------------------------------------
def test_fan_out_sums_gradients_by_hand():
    g = Graph("x")
    g.add("a", Dense(2, 3, rng=0), "x")
    g.add("b", Dense(2, 3, rng=1), "x")
    g.add("s", Add(), ["a", "b"])
    g.add("cat", Concat(), ["s", "x", "x"])  # x read three times: by a, b and twice by cat
    g.output("cat")
    g.astype(np.float64)
    x = np.array([[1.0, -2.0]])
    dy = np.arange(1.0, 8.0).reshape(1, 7)
    y = g.forward(x)
    np.testing.assert_array_equal(y[:, 3:], [[1.0, -2.0, 1.0, -2.0]])
    dx = g.backward(dy)
    wa, wb = g["a"].params["weight"], g["b"].params["weight"]
    expected = dy[:, :3] @ wa + dy[:, :3] @ wb + dy[:, 3:5] + dy[:, 5:7]
    np.testing.assert_allclose(dx, expected, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(g["a"].grads["weight"], dy[:, :3].T @ x)  # Add passes dy to both


def test_backward_does_not_change_dy_or_earlier_gradients(rng):
    g = _fan_out()
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    dy = rng.standard_normal(g.output_shape(x.shape)).astype(np.float32)
    g.forward(x)
    kept = dy.copy()
    first = g.backward(dy)
    np.testing.assert_array_equal(dy, kept)
    g.forward(x)
    np.testing.assert_array_equal(g.backward(dy), first)  # nothing accumulates across calls


# ---- several inputs ----------------------------------------------------------------------------
def test_two_inputs_match_torch(torch, rng):
    g = Graph(["x", "y"])
    g.add("fx", Conv2D(2, 3, 3, padding=1, rng=0), "x")
    g.add("cat", Concat(), ["fx", "y"])
    g.add("out", Conv2D(5, 2, 1, rng=1), "cat")
    g.output("out")
    g.astype(np.float64)
    x, y = rng.standard_normal((2, 2, 4, 4)), rng.standard_normal((2, 2, 4, 4))
    dy = rng.standard_normal((2, 2, 4, 4))
    out = g.forward(x, y)
    dx, dyy = g.backward(dy)
    xt, yt = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
    w = {k: torch.tensor(v) for k, v in g.state_dict().items()}
    h = torch.nn.functional.conv2d(xt, w["fx.weight"], w["fx.bias"], padding=1)
    ref = torch.nn.functional.conv2d(torch.cat([h, yt], 1), w["out.weight"], w["out.bias"])
    ref.backward(torch.tensor(dy))
    np.testing.assert_allclose(out, ref.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(dyy, yt.grad.numpy(), rtol=0, atol=1e-12)
    assert g.output_shape((2, 2, 4, 4), (2, 2, 4, 4)) == (2, 2, 4, 4)
    assert g.num_inputs == 2


def test_graph_inside_sequential_and_graph_inside_graph(torch, rng):
    inner, twin_inner = _fan_out(torch)
    net = Sequential(inner, GlobalAvgPool2D(), Dense(4, 2))
    nn = torch.nn

    class Gap(nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    twin = nn.Sequential(twin_inner, Gap(), nn.Linear(4, 2)).double()
    _load(net, twin)
    assert "0.a.1.running_mean" in net.state_dict()
    x = rng.standard_normal((2, 3, 5, 5))
    compare_with_torch(torch, net, twin, x, rng.standard_normal((2, 2)), atol=1e-10)

    outer = Graph("img")
    outer.add("body", _inception(), "img")
    outer.add("head", Conv2D(10, 1, 1, rng=0), "body")
    outer.output("head")
    assert "body.b2.2.weight" in outer.state_dict()
    assert gradcheck(outer.eval(), rng.standard_normal((1, 4, 4, 4))).ok(1e-6)

    res = Residual(_fan_out().eval(), Conv2D(3, 4, 1, rng=0))  # a Graph as a Residual's block
    assert "block.a.1.running_var" in res.state_dict()
    assert gradcheck(res, rng.standard_normal((1, 3, 4, 4))).ok(1e-6)


def test_first_conv_without_input_gradient_gives_none(rng):
    g = _fan_out()
    g["stem"].needs_input_grad = False
    x = rng.standard_normal((1, 3, 4, 4))
    g.forward(x)
    assert g.backward(rng.standard_normal((1, 4, 4, 4))) is None
    assert g["stem"].grads["weight"].shape == (4, 3, 3, 3)
    # x also read by a node that does give its share: the sum would lack the conv's, so None.
    two = Graph("x")
    two.add("conv", Conv2D(3, 3, 1, rng=0), "x")
    two.output(two.add("sum", Add(), ["conv", "x"]))
    two["conv"].needs_input_grad = False
    two.forward(x)
    assert two.backward(np.ones((1, 3, 4, 4))) is None
    # A node whose output a skipping layer reads would get a wrong gradient: refused.
    g["a"][0].needs_input_grad = False
    g.forward(x)
    with pytest.raises(CnnlabError, match=r"Graph: node 'stem' has no complete gradient: a node reading it"):
        g.backward(rng.standard_normal((1, 4, 4, 4)))


# ---- shapes, FLOPs, summary, modes, dtype -----------------------------------------------------
def test_shapes_flops_and_summary_against_a_chain():
    layers = [Conv2D(1, 4, 3, rng=0), ReLU(), MaxPool2D(2), Conv2D(4, 2, 3, padding=1, rng=1)]
    seq = Sequential(*layers)
    g = Graph("x")
    last = "x"
    for i, layer in enumerate(layers):
        last = g.add(f"n{i}", layer, last)
    g.output(last)
    assert g.output_shape((5, 1, 10, 10)) == seq.output_shape((5, 1, 10, 10)) == (5, 2, 4, 4)
    assert g.flops((1, 1, 10, 10)) == seq.flops((1, 1, 10, 10))
    lines = []
    rows = g.summary((1, 10, 10), print_fn=lines.append)
    assert [r["output_shape"] for r in rows] == [r["output_shape"] for r in seq.summary((1, 10, 10), None)]
    assert rows[1]["layer"] == "n1 <- n0: ReLU()" and rows[1]["inputs"] == ["n0"]
    assert (
        "total parameters: 114" in lines[0] and "n3 <- n2: Conv2D(4, 2, kernel_size=3, padding=1)" in lines[0]
    )


def test_summary_and_flops_of_branches():
    g = _inception()
    rows = g.summary((4, 6, 6), print_fn=None)
    assert rows[4]["layer"] == "cat <- b1, b2, b3, b4: Concat()" and rows[4]["output_shape"] == (10, 6, 6)
    assert rows[4]["flops"] == 0
    assert g.flops((1, 4, 6, 6)) == sum(r["flops"] for r in rows)
    assert rows[0]["flops"] == g["b1"].flops((1, 4, 6, 6))
    assert sum(r["params"] for r in rows) == sum(p.value.size for p in g.parameters())
    two = Graph(["x", "y"])
    two.add("s", Add(), ["x", "y"])
    two.output("s")
    lines = []
    two.summary([(3, 2, 2), (3, 2, 2)], print_fn=lines.append)
    assert lines[0].startswith("inputs: x 3x2x2, y 3x2x2\n")
    assert two.flops((1, 3, 2, 2), (1, 3, 2, 2)) == 12


def test_train_eval_astype_and_parameters_reach_every_node():
    g = _dense_block()
    assert all(layer.training for _, layer in g.named_layers())
    g.eval()
    assert not any(layer.training for _, layer in g.named_layers())
    g.astype(np.float64)
    assert g.dtype == np.float64 and all(p.value.dtype == np.float64 for p in g.parameters())
    assert [p.path for p in g.parameters()][:3] == ["l0.0.weight", "l0.0.bias", "l0.2.weight"]
    assert "l2.0.running_var" in g.state_dict()
    assert list(g.children()) == ["l0", "c0", "l1", "c1", "l2", "c2"]


# ---- config, save and load --------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_save_load_round_trip(tmp_path, rng, suffix):
    if suffix == ".safetensors":
        pytest.importorskip("safetensors")
    g = _fan_out().astype(np.float64)
    g.forward(rng.standard_normal((4, 3, 5, 5)))  # running stats move away from 0 / 1
    g.eval()
    path = cnnlab.save(g, tmp_path / f"g{suffix}")
    back = cnnlab.load(path).eval()
    assert isinstance(back, Graph) and repr(back) == repr(g)
    x = rng.standard_normal((2, 3, 5, 5))
    np.testing.assert_array_equal(back.forward(x), g.forward(x))
    dy = rng.standard_normal((2, 4, 5, 5))
    np.testing.assert_array_equal(back.backward(dy), g.backward(dy))


def test_config_is_plain_json_and_any_node_order_rebuilds(rng):
    g = _inception()
    config = json.loads(json.dumps(to_config(g)))
    assert config["type"] == "Graph" and config["args"]["output"] == "act"
    assert config["args"]["nodes"][4] == {
        "name": "cat",
        "layer": {"type": "Concat", "args": {"axis": 1}},
        "inputs": ["b1", "b2", "b3", "b4"],
    }
    config["args"]["nodes"].reverse()  # a hand-written file may list nodes in any order
    back = from_config(config)
    assert list(back.nodes) == ["b4", "b3", "b2", "b1", "cat", "act"]  # each after its inputs
    back.load_state_dict(g.state_dict())
    x = rng.standard_normal((1, 4, 5, 5)).astype(np.float32)
    np.testing.assert_array_equal(back.forward(x), g.forward(x))


def test_config_parameter_count_sees_the_nodes():
    g = _fan_out()
    assert config_parameter_count(to_config(g)) == sum(p.value.size for p in g.parameters()) == 112 + 304 + 20


def test_a_fresh_process_loads_a_saved_graph(tmp_path):
    """cnnlab.load knows Graph, Concat and Add without the caller importing their modules."""
    path = cnnlab.save(_inception(), tmp_path / "g.npz")
    code = f"import cnnlab; m = cnnlab.load({str(path)!r}); print(type(m).__name__, m['cat'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "Graph Concat()"


# ---- errors name the node ----------------------------------------------------------------------
def test_builder_errors():
    g = Graph("x")
    g.add("a", ReLU(), "x")
    with pytest.raises(ValueError, match=r"Graph.add\('a'\): the name is already a node.*nodes a"):
        g.add("a", ReLU(), "x")
    with pytest.raises(ValueError, match=r"Graph.add\('x'\): the name is already a graph input"):
        g.add("x", ReLU(), "a")
    with pytest.raises(
        ValueError, match=r"Graph.add\('b'\): unknown input 'c'.*no cycles.*graph inputs x; nodes a"
    ):
        g.add("b", ReLU(), ["a", "c"])
    with pytest.raises(ValueError, match=r"argument `name` must be an identifier.*Received: name='b.1'"):
        g.add("b.1", ReLU(), "a")
    with pytest.raises(
        ValueError, match=r"Graph.add\('b'\): Conv2D takes 1 input\(s\). Received: 2 inputs.*Concat or Add"
    ):
        g.add("b", Conv2D(1, 1, 1), ["x", "a"])
    with pytest.raises(ValueError, match=r"Graph.add\('b'\): argument `layer` must be a cnnlab Layer"):
        g.add("b", lambda x: x, "a")
    with pytest.raises(ValueError, match=r"argument `inputs` must be a tensor name or a non-empty list"):
        g.add("b", ReLU(), [])
    with pytest.raises(ValueError, match=r"argument `inputs` must be a name"):
        Graph(["x", "y.z"])


def test_weight_sharing_is_refused():
    g = Graph("x")
    conv = Conv2D(2, 2, 1)
    g.add("a", Sequential(ReLU(), conv), "x")
    with pytest.raises(
        ValueError, match=r"Graph.add\('b'\): this Conv2D instance is already used by node 'a' \(as 1\)"
    ):
        g.add("b", conv, "a")
    with pytest.raises(ValueError, match="a graph cannot be a node of itself"):
        g.add("b", g, "a")


def test_output_errors():
    g = Graph("x")
    g.add("a", ReLU(), "x")
    with pytest.raises(
        CnnlabError, match=r"Graph: no output; call graph.output\(name\) with one of the nodes: a"
    ):
        g.forward(np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"Graph.output: 'b' is not a node. Nodes: a"):
        g.output("b")
    with pytest.raises(KeyError, match=r"Graph: no node named 'b'. Nodes: a"):
        g["b"]
    g.add("b", ReLU(), "x")
    with pytest.raises(CnnlabError, match=r"Graph: 'a' do\(es\) not lead to the output 'b'"):
        g.output("b")
    two = Graph(["x", "y"])
    two.add("a", ReLU(), "x")
    with pytest.raises(CnnlabError, match=r"'y' do\(es\) not lead to the output 'a'"):
        two.output("a")
    with pytest.raises(CnnlabError, match=r"Graph: backward\(\) called before forward\(\)"):
        _inception().backward(np.ones((1, 10, 2, 2)))


def test_config_errors():
    relu = {"type": "ReLU", "args": {}}
    cycle = [
        {"name": "a", "layer": relu, "inputs": ["x", "c"]},
        {"name": "b", "layer": relu, "inputs": ["a"]},
        {"name": "c", "layer": relu, "inputs": ["b"]},
    ]
    with pytest.raises(ValueError, match=r"Graph: the nodes form a cycle: a -> c -> b -> a"):
        Graph("x", cycle, "c")
    with pytest.raises(ValueError, match=r"Graph: node 'a' reads unknown input 'q'"):
        Graph("x", [{"name": "a", "layer": relu, "inputs": ["q"]}], "a")
    with pytest.raises(ValueError, match=r"node 'a' is listed twice"):
        Graph("x", [{"name": "a", "layer": relu, "inputs": "x"}] * 2, "a")
    with pytest.raises(
        ValueError, match=r"argument `nodes\[0\]` must be a dict with keys 'name', 'layer', 'inputs'"
    ):
        Graph("x", [{"name": "a", "inputs": "x"}], "a")


def test_forward_errors_name_the_node(rng):
    g = _inception()
    with pytest.raises(ShapeError, match=r"Graph node 'b1' \(Conv2D\(4, 3, kernel_size=1\)\): Conv2D"):
        g.forward(rng.standard_normal((1, 3, 5, 5)))
    with pytest.raises(ValueError, match=r"Graph: forward takes 1 input\(s\) \(x\). Received: 2"):
        g.forward(np.ones((1, 4, 5, 5)), np.ones((1, 4, 5, 5)))
    bad = Graph("x")
    bad.add("a", MaxPool2D(2), "x")
    bad.add("cat", Concat(), ["x", "a"])
    bad.output("cat")
    with pytest.raises(
        ShapeError,
        match=r"Graph node 'cat' \(Concat\(\)\): Concat: input 1 must match input 0 on every axis but axis 1 "
        r"\(axis 0, axis 2, axis 3\). Received: input 0 shape \(1, 2, 4, 4\), input 1 shape \(1, 2, 2, 2\)",
    ):
        bad.output_shape((1, 2, 4, 4))
    with pytest.raises(ShapeError, match=r"Graph node 'cat'.*input 1 must match input 0"):
        bad.forward(np.ones((1, 2, 4, 4)))


# ---- Concat and Add on their own --------------------------------------------------------------
class _Split:
    """Feeds pieces of one input (along axis 1) to a multi-input layer, so gradcheck can check it."""

    def __init__(self, layer, sizes):
        self.layer, self.sizes, self.params, self.grads = layer, sizes, {}, {}

    def forward(self, x):
        return self.layer.forward(*np.split(x, np.cumsum(self.sizes)[:-1], axis=1))

    def backward(self, dy):
        return np.concatenate(self.layer.backward(dy), axis=1)


@pytest.mark.parametrize(
    ("shapes", "axis"),
    [
        ([(2, 3, 4, 5), (2, 1, 4, 5), (2, 2, 4, 5)], 1),
        ([(2, 3, 4, 5), (2, 3, 4, 2)], -1),
        ([(2, 3, 4, 5), (2, 3, 1, 5)], 2),
        ([(2, 3), (2, 4)], 1),
        ([(2, 3), (1, 3)], 0),
        ([(2, 3, 4, 4)], 1),
    ],
)
def test_concat_matches_torch_cat(torch, rng, shapes, axis):
    xs = [rng.standard_normal(s) for s in shapes]
    cat = Concat(axis)
    y = cat.forward(*xs)
    assert y.shape == cat.output_shape(*shapes)
    dy = rng.standard_normal(y.shape)
    dxs = cat.backward(dy)
    ts = [torch.tensor(x, requires_grad=True) for x in xs]
    ref = torch.cat(ts, dim=axis)
    ref.backward(torch.tensor(dy))
    np.testing.assert_array_equal(y, ref.detach().numpy())
    assert len(dxs) == len(xs)
    for dx, t in zip(dxs, ts, strict=True):
        np.testing.assert_array_equal(dx, t.grad.numpy())


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_add_matches_torch_sum(torch, rng, count):
    xs = [rng.standard_normal((2, 3, 4, 4)) for _ in range(count)]
    add = Add()
    y = add.forward(*xs)
    dy = rng.standard_normal(y.shape)
    dxs = add.backward(dy)
    ts = [torch.tensor(x, requires_grad=True) for x in xs]
    ref = ts[0]
    for t in ts[1:]:
        ref = ref + t
    ref.backward(torch.tensor(dy))
    np.testing.assert_array_equal(y, ref.detach().numpy())
    for dx, t in zip(dxs, ts, strict=True):
        np.testing.assert_array_equal(dx, t.grad.numpy())
    assert add.flops((1, 3, 4, 4), *[(1, 3, 4, 4)] * (count - 1)) == (count - 1) * 48


def test_merge_gradcheck(rng):
    x = rng.standard_normal((2, 6, 3, 3))
    assert gradcheck(_Split(Concat(), [2, 3, 1]), x).ok(1e-8)
    assert gradcheck(_Split(Add(), [2, 2, 2]), x).ok(1e-8)


def test_merge_errors():
    with pytest.raises(
        ShapeError,
        match=r"Add: input 2 must have the shape of input 0 \(no broadcasting\). "
        r"Received: input 0 shape \(2, 3\), input 2 shape \(1, 3\)",
    ):
        Add().forward(np.ones((2, 3)), np.ones((2, 3)), np.ones((1, 3)))
    with pytest.raises(
        ShapeError,
        match=r"Concat: every input must have the same number of axes as input 0. "
        r"Received: input 0 shape \(2, 3\), input 1 shape \(2, 3, 1\)",
    ):
        Concat().forward(np.ones((2, 3)), np.ones((2, 3, 1)))
    with pytest.raises(ShapeError, match=r"Concat: axis 4 is out of range for inputs with 4 axes"):
        Concat(4).output_shape((1, 1, 1, 1))
    with pytest.raises(ValueError, match=r"Concat: argument `axis` must be an int. Received: axis=1.5"):
        Concat(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Add: input 1 must be a numpy.ndarray. Received: list"):
        Add().forward(np.ones(2), [1.0, 2.0])
    with pytest.raises(CnnlabError, match=r"Concat: backward\(\) called before forward\(\)"):
        Concat().backward(np.ones((1, 2)))
    assert (
        repr(Concat()) == "Concat()" and repr(Concat(axis=2)) == "Concat(axis=2)" and repr(Add()) == "Add()"
    )


# ---- training ----------------------------------------------------------------------------------
def test_fit_trains_a_graph(rng):
    """The numpy engine's step (forward, loss, backward, optimizer) works on a Graph; the loss drops."""
    x = rng.standard_normal((128, 1, 6, 6)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0).astype(np.int64)  # learnable through the skip path
    g = Graph("x")
    g.add("stem", Conv2D(1, 4, 3, padding=1, rng=0), "x")
    g.add("a", Sequential(ReLU(), Conv2D(4, 4, 3, padding=1, rng=1)), "stem")
    g.add("cat", Concat(), ["a", "stem"])
    g.output(g.add("head", Sequential(ReLU(), GlobalAvgPool2D(), Dense(8, 2, rng=2)), "cat"))
    optimizer = cnnlab.SGD(g.parameters(), lr=0.1, momentum=0.9)
    history = cnnlab.fit(
        g, cnnlab.SoftmaxCrossEntropy(), optimizer, (x, y), epochs=6, batch_size=32, verbose=False
    )
    assert history.rows[-1]["train_loss"] < history.rows[0]["train_loss"] - 0.03


# ---- the same net as Sequential/Residual and as a Graph ----------------------------------------
def test_resnet_as_graph_is_bit_identical_to_sequential(rng):
    """Residual blocks as block + skip + Add nodes: the same sums, so the same bits (float32)."""
    seq = resnet(in_channels=3, input_size=8, depth=3, width=4, rng=0)
    g = Graph("x")
    last = "x"
    for i, layer in enumerate(copy.deepcopy(seq).layers):
        if isinstance(layer, Residual):
            block = g.add(f"block{i}", layer.block, last)
            skip = last if layer.shortcut is None else g.add(f"shortcut{i}", layer.shortcut, last)
            last = g.add(f"add{i}", Add(), [block, skip])
        else:
            last = g.add(f"n{i}", layer, last)
    g.output(last)
    x = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    dy = rng.standard_normal((4, 10)).astype(np.float32)
    np.testing.assert_array_equal(g.forward(x), seq.forward(x))
    np.testing.assert_array_equal(g.backward(dy), seq.backward(dy))
    grads = [p.grad for p in g.parameters()]
    assert len(grads) == len(seq.parameters())
    for mine, theirs in zip(grads, seq.parameters(), strict=True):
        np.testing.assert_array_equal(mine, theirs.grad)


def test_merge_outputs_keep_the_memory_layout_of_their_first_input(rng):
    """Convs return channel-first (CNHW) memory; Concat and Add keep it for the next conv."""
    a, b = (np.ascontiguousarray(rng.standard_normal((c, 2, 3, 3))).transpose(1, 0, 2, 3) for c in (2, 3))
    cat = Concat().forward(a, b)
    assert cat.transpose(1, 0, 2, 3).flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(cat, np.concatenate([a, b], axis=1))
    total = Add().forward(a, a, a)
    assert total.transpose(1, 0, 2, 3).flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(total, a + a + a)
    single = Add().forward(a)
    assert single is not a and single.transpose(1, 0, 2, 3).flags["C_CONTIGUOUS"]
