"""ONNX import of what torch.export writes decomposed (``cnnlab.interop.onnx_ops_decomposed``).

The graphs are built by hand the way torch.export writes them and checked against
``onnx.reference`` (ONNX's own evaluator); ``test_onnx_torchvision.py`` imports the real
exports (AlexNet's and VGG's adaptive pools, ShuffleNet's Split).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from cnnlab.errors import CnnlabError
from cnnlab.interop.onnx_import import from_onnx
from cnnlab.layers.adaptive_pool import AdaptiveAvgPool2D
from cnnlab.layers.channel_slice import ChannelSlice

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

RNG = np.random.default_rng(0)


def torch_cells(size: int, out: int) -> np.ndarray:
    """(out, K): the cells torch's adaptive_avg_pool2d decomposition gathers (equal windows)."""
    length = size // out + (0 if size % out == 0 else 1)
    return ((np.arange(out) * size) // out)[:, None] + np.arange(length)  # (out, K)


def pool_model(hw: tuple[int, int], out: tuple[int, int], opset: int, indices: Any = None) -> Any:
    """Transpose (2, 3, 0, 1) -> GatherND -> Transpose (4, 5, 0, 1, 2, 3) -> ReduceMean over KH, KW."""
    rows, cols = torch_cells(hw[0], out[0]), torch_cells(hw[1], out[1])
    if indices is None:
        indices = np.stack(np.broadcast_arrays(rows[:, :, None, None], cols[None, None]), axis=-1)
    inits = [numpy_helper.from_array(indices.astype(np.int64), "idx")]
    if opset >= 18:
        inits.append(numpy_helper.from_array(np.array([-3, -1], np.int64), "axes"))
        mean = helper.make_node("ReduceMean", ["b", "axes"], ["y"], keepdims=0)
    else:
        mean = helper.make_node("ReduceMean", ["b"], ["y"], axes=[-3, -1], keepdims=0)
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[2, 3, 0, 1]),
        helper.make_node("GatherND", ["t", "idx"], ["g"], batch_dims=0),
        helper.make_node("Transpose", ["g"], ["b"], perm=[4, 5, 0, 1, 2, 3]),
        mean,
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, *hw])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "pool", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize(
    "hw, out, opset",
    [((1, 1), (6, 6), 18), ((1, 1), (7, 7), 13), ((2, 3), (4, 6), 20), ((8, 3), (4, 6), 18)],
)
def test_decomposed_adaptive_pool_is_one_layer(hw, out, opset) -> None:
    model = pool_model(hw, out, opset)
    x = RNG.standard_normal((2, 3, *hw)).astype(np.float32)
    (expected,) = ReferenceEvaluator(model).run(None, {"x": x})
    ours = from_onnx(model)
    assert [type(m) for m in ours.children().values()] == [AdaptiveAvgPool2D]
    np.testing.assert_allclose(ours.forward(x), expected, rtol=1e-6, atol=1e-7)


def test_a_gather_of_other_cells_is_refused() -> None:
    model = pool_model((2, 2), (4, 4), 18)
    idx = numpy_helper.to_array(model.graph.initializer[0]).copy()
    idx[0, 0, 0, 0] = (1, 1)  # one window reads another cell: not an adaptive pool
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(idx, "idx"))
    with pytest.raises(CnnlabError, match=r"Transpose: perm=\[2, 3, 0, 1\].*\n.*GatherND: cnnlab reads"):
        from_onnx(model)


def split_model(sizes: list[int], axis: int) -> Any:
    """Split x (2, 5, 3, 3) into two parts along ``axis`` and join them in reverse order."""
    split = numpy_helper.from_array(np.array(sizes, np.int64), "sizes")
    nodes = [
        helper.make_node("Split", ["x", "sizes"], ["a", "b"], axis=axis),
        helper.make_node("Relu", ["a"], ["ra"]),
        helper.make_node("Concat", ["b", "ra"], ["y"], axis=axis),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, 3, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "split", [x], [y], [split])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_split_along_the_channels_is_channel_slices() -> None:
    model = split_model([2, 3], axis=1)
    x = RNG.standard_normal((2, 5, 3, 3)).astype(np.float32)
    (expected,) = ReferenceEvaluator(model).run(None, {"x": x})
    ours = from_onnx(model)
    slices = [(m.start, m.stop) for _, m in ours.named_layers() if isinstance(m, ChannelSlice)]
    assert sorted(slices) == [(0, 2), (2, 5)]
    np.testing.assert_array_equal(ours.forward(x), expected)


def test_split_along_another_axis_is_refused() -> None:
    with pytest.raises(CnnlabError, match=r"Split: axis=2 of a 4-D input \(cnnlab splits the channels"):
        from_onnx(split_model([1, 2], axis=2))
