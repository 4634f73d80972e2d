"""Grad-CAM, saliency and feature maps at a Graph's named nodes, checked against torch hooks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import cnnlab
from cnnlab.cli.main import main
from cnnlab.errors import ShapeError
from cnnlab.interop.torch import to_torch
from cnnlab.layers.activations import ReLU
from cnnlab.layers.batchnorm import BatchNorm2D
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.dense import Dense
from cnnlab.layers.graph import Graph
from cnnlab.layers.merge import Add, Concat
from cnnlab.layers.pooling import GlobalAvgPool2D, MaxPool2D
from cnnlab.layers.reshape import Flatten
from cnnlab.layers.sequential import Sequential
from cnnlab.models.probe import feature_maps, penultimate_features
from cnnlab.viz.gradcam import grad_cam, graph_default_node, saliency


def inception_net() -> Graph:
    """Three branches, Concat, a fan-out of ``cat`` (read by ``mix`` and ``res``), a head."""
    g = Graph("x")
    g.add("b1", Conv2D(2, 3, 1, rng=0), "x")
    g.add("b2", Sequential(Conv2D(2, 4, 3, padding=1, rng=1), BatchNorm2D(4), ReLU()), "x")
    g.add("b3", Sequential(MaxPool2D(3, stride=1, padding=1), Conv2D(2, 3, 1, rng=2)), "x")
    g.add("cat", Concat(), ["b1", "b2", "b3"])  # (N, 10, 8, 8)
    g.add("mix", Sequential(Conv2D(10, 10, 3, padding=1, rng=3), ReLU()), "cat")
    g.add("res", Add(), ["cat", "mix"])
    g.add("pool", MaxPool2D(2), "res")  # (N, 10, 4, 4)
    g.output(g.add("head", Sequential(GlobalAvgPool2D(), Flatten(), Dense(10, 4, rng=4)), "pool"))
    state = g.state_dict()  # running statistics that are not the identity: eval mode is tested
    state["b2.1.running_mean"] = np.linspace(-0.5, 0.5, 4)
    state["b2.1.running_var"] = np.linspace(0.5, 2.0, 4)
    g.load_state_dict(state)
    return g.astype(np.float64)


def torch_cam(torch: Any, graph: Graph, x: np.ndarray, node: str, target: np.ndarray) -> tuple[Any, Any]:
    """Grad-CAM the textbook way: a forward hook on the node's module keeps A, autograd gives dA."""
    module = to_torch(graph).eval()
    kept: dict[str, Any] = {}

    def hook(_module: Any, _inputs: Any, output: Any) -> None:
        output.retain_grad()
        kept["A"] = output

    handle = module[node].register_forward_hook(hook)
    x_t = torch.tensor(x, requires_grad=True)
    logits = module(x_t)
    handle.remove()
    logits[torch.arange(len(x)), torch.tensor(target)].sum().backward()
    A, dA = kept["A"].detach(), kept["A"].grad
    cam = torch.relu((dA.mean(dim=(2, 3))[:, :, None, None] * A).sum(dim=1))
    peak = cam.amax(dim=(1, 2), keepdim=True)
    return torch.where(peak > 0, cam / peak, torch.zeros_like(cam)).numpy(), x_t.grad.abs().amax(
        dim=1
    ).numpy()


@pytest.mark.parametrize("node", ["b2", "cat", "mix", "res", "pool"])
def test_grad_cam_at_a_named_node_equals_torch_hooks(torch: Any, node: str) -> None:
    graph = inception_net().train()
    x = np.random.default_rng(0).normal(size=(3, 2, 8, 8))
    target = np.array([0, 2, 3])
    expected, expected_saliency = torch_cam(torch, graph, x, node, target)
    cam = grad_cam(graph, x, target=target, layer=node, resize=False)
    np.testing.assert_allclose(cam, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(saliency(graph, x, target=target), expected_saliency, rtol=0, atol=1e-12)
    assert graph.training and all(not layer.grads for _, layer in graph.named_layers())  # untouched


def test_the_default_node_is_the_last_map_with_more_than_one_pixel() -> None:
    graph = inception_net()
    assert graph_default_node(graph, (2, 8, 8)) == "pool"
    x = np.random.default_rng(1).normal(size=(2, 2, 8, 8))
    np.testing.assert_array_equal(
        grad_cam(graph, x, resize=False), grad_cam(graph, x, layer="pool", resize=False)
    )
    assert grad_cam(graph, x).shape == (2, 8, 8)  # upsampled to the input


def test_bad_nodes_are_named() -> None:
    graph = inception_net()
    x = np.zeros((1, 2, 8, 8))
    with pytest.raises(
        ValueError, match=r"grad_cam: argument `layer` must be a node name of the Graph \(b1, b2"
    ):
        grad_cam(graph, x, layer="nope")
    with pytest.raises(ValueError, match=r"argument `layer` must be a node name"):
        grad_cam(graph, x, layer=0)  # an index means nothing in a Graph
    with pytest.raises(
        ShapeError,
        match=r"node 'head' \(Sequential\) must output a 4-D feature map.*Received: shape \(1, 4\)",
    ):
        grad_cam(graph, x, layer="head")
    with pytest.raises(KeyError, match=r"forward_keep: `keep` must list tensor names.*unknown: 'nope'"):
        graph.forward_keep(x, keep=["nope"])


def test_feature_maps_of_a_graph_are_its_named_nodes(torch: Any) -> None:
    graph = inception_net()
    x = np.random.default_rng(2).normal(size=(2, 2, 8, 8))
    maps = feature_maps(graph, x)
    assert [label.split(":")[0] for label, _ in maps] == ["b1", "b2", "b3", "cat", "mix", "res", "pool"]
    assert maps[0][0] == "b1: Conv2D(2, 3, kernel_size=1)"
    module = to_torch(graph).eval()
    with torch.no_grad():
        cat = module["cat"](*(module[n](torch.tensor(x)) for n in ("b1", "b2", "b3")))
    assert maps[3][0] == "cat: Concat()"
    np.testing.assert_allclose(maps[3][1], cat.numpy(), rtol=0, atol=1e-12)
    assert [label for label, _ in feature_maps(graph, x, nodes=["mix"])] == ["mix: Sequential"]
    with pytest.raises(ValueError, match=r"feature_maps: `nodes` must be a list of node names"):
        feature_maps(graph, x, nodes=["nope"])
    assert graph.training  # eval inside, the mode restored


def test_graph_keep_returns_the_summed_gradient_of_a_fanned_out_node() -> None:
    graph = inception_net().eval()
    x = np.random.default_rng(3).normal(size=(2, 2, 8, 8))
    y, kept = graph.forward_keep(x, keep=["x", "cat"])
    np.testing.assert_array_equal(kept["x"], x)
    dy = np.random.default_rng(4).normal(size=y.shape)
    dx, grads = graph.backward_keep(dy, keep=["cat", "mix", "x"])
    np.testing.assert_array_equal(grads["x"], dx)
    # cat is read by mix and res: dL/dcat = dL/dres (through Add) + dL/dmix through mix's layers.
    mix = graph["mix"]
    mix.forward(kept["cat"])
    np.testing.assert_allclose(grads["cat"], grads["mix"] + mix.backward(grads["mix"]), rtol=0, atol=1e-12)


def test_penultimate_features_of_a_graph_are_what_its_classifier_reads() -> None:
    graph = inception_net()
    x = np.random.default_rng(5).normal(size=(5, 2, 8, 8))
    feats = penultimate_features(graph, x, batch_size=2)  # the head: GlobalAvgPool2D, Flatten, Dense
    _, kept = graph.eval().forward_keep(x, keep=["pool"])
    np.testing.assert_allclose(feats, kept["pool"].mean(axis=(2, 3)), rtol=0, atol=1e-12)
    assert feats.shape == (5, 10)


def test_cnnlab_show_draws_the_cam_of_a_named_node(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    Image = pytest.importorskip("PIL.Image")
    g = Graph("x")
    g.add("a", Conv2D(1, 3, 3, padding=1, rng=0), "x")
    g.add("b", Conv2D(1, 2, 1, rng=1), "x")
    g.add("cat", Concat(), ["a", "b"])
    g.output(g.add("head", Sequential(GlobalAvgPool2D(), Dense(5, 3, rng=2)), "cat"))
    path = cnnlab.save(g, tmp_path / "graph.npz", extra={"input_shape": [1, 8, 8]})
    image = tmp_path / "img.png"
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(image)
    assert main(["show", str(path), str(image), "--cam-layer", "cat", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "img_gradcam.png").exists() and (tmp_path / "img_feature_maps.png").exists()
    assert main(["show", str(path), str(image), "--cam", "--out", str(tmp_path)]) == 0  # the default node
    capsys.readouterr()
    assert main(["show", str(path), str(image), "--cam-layer", "nope", "--out", str(tmp_path)]) != 0
    assert "`layer` must be a node name of the Graph (a, b, cat, head)" in capsys.readouterr().err
