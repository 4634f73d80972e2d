"""A Graph trains like a Sequential: fuse, both engines of ``fit``, the input-gradient skip."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from cnnlab.cli.main import main
from cnnlab.data.loader import DataLoader
from cnnlab.interop.torch import to_torch
from cnnlab.io import load
from cnnlab.layers.activations import ReLU
from cnnlab.layers.base import to_config
from cnnlab.layers.batchnorm import BatchNorm2D
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.dense import Dense
from cnnlab.layers.fuse import BatchNormReLU, ReLUMaxPool2D, fuse
from cnnlab.layers.graph import Graph
from cnnlab.layers.merge import Add, Concat
from cnnlab.layers.pooling import GlobalAvgPool2D, MaxPool2D
from cnnlab.layers.reshape import Flatten
from cnnlab.layers.sequential import Sequential
from cnnlab.losses import SoftmaxCrossEntropy
from cnnlab.optim import make_optimizer
from cnnlab.train.loop.engines.numpy_engine import NumpyEngine
from cnnlab.train.loop.engines.torch_engine import to_tensors, torch_optimizer, train_step
from cnnlab.train.loop.fit import fit
from cnnlab.train.runs.memory import activation_values


def inception_net(rng: int = 0, classes: int = 5) -> Graph:
    """A small GoogLeNet-like classifier on (1, 8, 8): a stem read by three branches,
    Concat, a residual Add (fan-out of ``cat``) and a pooled Dense head."""
    g = Graph("x")
    g.add("b1", Conv2D(1, 3, 1, rng=rng), "x")  # reads the data: skips dL/dx in training
    g.add("b2", Sequential(Conv2D(1, 4, 3, padding=1, rng=rng + 1), BatchNorm2D(4), ReLU()), "x")
    g.add("b3", Sequential(MaxPool2D(3, stride=1, padding=1), Conv2D(1, 3, 1, rng=rng + 2)), "x")
    g.add("cat", Concat(), ["b1", "b2", "b3"])  # (N, 10, 8, 8)
    g.add("mix", Sequential(Conv2D(10, 10, 3, padding=1, rng=rng + 3), BatchNorm2D(10)), "cat")
    g.add("res", Add(), ["cat", "mix"])
    g.add("pool", Sequential(ReLU(), MaxPool2D(2)), "res")  # (N, 10, 4, 4)
    g.output(g.add("head", Sequential(GlobalAvgPool2D(), Flatten(), Dense(10, classes, rng=rng + 4)), "pool"))
    return g


def _data(n: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    gen = np.random.default_rng(seed)
    return gen.normal(size=(n, 1, 8, 8)), gen.integers(0, 5, size=n)


def test_fuse_fuses_inside_each_node_and_is_bit_identical() -> None:
    graph = inception_net().astype(np.float64)
    view = fuse(graph)
    assert isinstance(view, Graph) and view is not graph
    assert list(view.nodes) == list(graph.nodes) and view.output_name == graph.output_name
    assert isinstance(view["b2"].layers[1], BatchNormReLU)  # type: ignore[attr-defined]
    assert isinstance(view["pool"].layers[0], ReLUMaxPool2D)  # type: ignore[attr-defined]
    assert view["b1"] is graph["b1"]  # the model's own leaf layers: shared arrays
    assert {id(p.value) for p in view.parameters()} == {id(p.value) for p in graph.parameters()}
    assert repr(graph) == repr(inception_net().astype(np.float64))  # the model is unchanged
    x = np.random.default_rng(1).normal(size=(4, 1, 8, 8))
    dy = np.random.default_rng(2).normal(size=(4, 5))
    y = graph.forward(x)
    dx = graph.backward(dy)
    grads = {p.path: p.grad.copy() for p in graph.parameters()}
    assert np.array_equal(view.forward(x), y)
    assert np.array_equal(view.backward(dy), dx)
    for p in graph.parameters():  # the view wrote the model's own grads
        assert np.array_equal(p.grad, grads[p.path]), p.path


def test_the_numpy_engine_skips_dx_of_the_layers_that_read_the_data() -> None:
    graph = inception_net()
    assert [type(layer).__name__ for layer in graph.input_layers()] == ["Conv2D", "Conv2D", "MaxPool2D"]
    engine = NumpyEngine(graph, SoftmaxCrossEntropy(), make_optimizer("sgd", graph.parameters(), lr=0.1))
    engine.begin()
    assert not graph["b1"].needs_input_grad and not graph["b2"][0].needs_input_grad  # type: ignore[attr-defined]
    assert graph["mix"][0].needs_input_grad  # type: ignore[attr-defined]  # reads a node
    x, y = _data(8)
    engine.train_step(x, y)  # the graph's dL/dx is None: no node needed it
    engine.end(True)
    assert graph["b1"].needs_input_grad and graph["b2"][0].needs_input_grad  # type: ignore[attr-defined]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_fit_trains_a_graph_with_both_engines(backend: str) -> None:
    if backend == "torch":
        pytest.importorskip("torch")
    graph = inception_net()
    before = graph.state_dict()
    x, y = _data()
    optimizer = make_optimizer("adam", graph.parameters(), lr=0.01)
    history = fit(
        graph,
        SoftmaxCrossEntropy(),
        optimizer,
        (x, y),
        epochs=1,
        batch_size=16,
        verbose=False,
        backend=backend,
    )
    assert len(history.rows) == 1 and np.isfinite(history.rows[0]["train_loss"])
    changed = [k for k, v in graph.state_dict().items() if not np.array_equal(v, before[k])]
    assert len(changed) == len(before)  # every weight and running statistic moved


def test_step_losses_and_weights_agree_between_engines_in_float64(torch: Any) -> None:
    graph = inception_net().astype(np.float64)
    module = to_torch(graph)  # the same initial weights
    optimizer = make_optimizer("sgd", graph.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    torch_opt = torch_optimizer(optimizer, module)
    step_model = fuse(graph)  # as the NumPy engine steps
    loss = SoftmaxCrossEntropy()
    x, y = _data(96)
    for xb, yb in list(DataLoader(x, y, 32, rng=0)):
        expected = loss.forward(step_model.forward(xb), yb)
        step_model.backward(loss.backward())
        optimizer.step()
        stats = train_step(module, torch_opt, *to_tensors(xb, yb, np.float64, "cpu"))
        assert abs(stats[0].item() / len(xb) - expected) < 1e-9
    got = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    for key, value in graph.state_dict().items():
        np.testing.assert_allclose(got[key], value, rtol=0, atol=1e-9, err_msg=key)


def test_the_memory_estimate_walks_the_graph() -> None:
    graph = inception_net()
    values, shape = activation_values(graph, (16, 1, 8, 8))
    assert shape == (16, 5)
    shapes = graph.shapes((16, 1, 8, 8))
    # Every node's output once, plus the outputs inside its Sequential (but its last one).
    inner = {
        "b2": [(16, 4, 8, 8)] * 2,
        "b3": [(16, 1, 8, 8)],
        "mix": [(16, 10, 8, 8)],
        "pool": [(16, 10, 8, 8)],
    }
    inner["head"] = [(16, 10), (16, 10)]
    expected = sum(int(np.prod(s)) for n, s in shapes.items() if n != "x")
    expected += sum(int(np.prod(s)) for sizes in inner.values() for s in sizes)
    assert values == expected


def test_the_cli_trains_shows_and_exports_a_graph_architecture_file(
    torch: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Graph's to_config in a file stays a Graph through train (both backends), summary,
    show --cam-layer NODE and export."""
    g = Graph("x")
    g.add("a", Conv2D(1, 4, 3, padding=1, rng=0), "x")
    g.add("b", Sequential(MaxPool2D(3, stride=1, padding=1), Conv2D(1, 4, 1, rng=1)), "x")
    g.add("cat", Concat(), ["a", "b"])
    g.output(g.add("head", Sequential(ReLU(), GlobalAvgPool2D(), Dense(8, 10, rng=2)), "cat"))
    arch = tmp_path / "graph.json"
    arch.write_text(json.dumps(to_config(g)))
    for backend in ("numpy", "torch"):
        run = tmp_path / backend
        argv = ["train", "--model", str(arch), "--data", "digits", "--epochs", "1", "--out", str(run)]
        assert main([*argv, "--backend", backend]) == 0
        assert isinstance(load(run / "model.npz"), Graph)
    capsys.readouterr()
    assert main(["summary", str(tmp_path / "numpy")]) == 0
    assert "cat <- a, b.1: Concat()" in capsys.readouterr().out  # the branches
    image = tmp_path / "img.png"
    Image = pytest.importorskip("PIL.Image")
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4).save(image)
    assert (
        main(["show", str(tmp_path / "torch"), str(image), "--cam-layer", "cat", "--out", str(tmp_path)]) == 0
    )
    assert (tmp_path / "img_gradcam.png").exists()
    assert main(["export", str(tmp_path / "numpy"), "--to", "torch", "--out", str(tmp_path / "t")]) == 0
