"""MaxPool2D/AvgPool2D with ONNX's asymmetric pads (top, left, bottom, right), ceil_mode and
count_include_pad: onnxruntime and the loop reference as oracles, gradchecks, the PyTorch
twins (PaddedMaxPool2d/PaddedAvgPool2d), hand cases, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from cnnlab.functional import reference_pool as R
from cnnlab.gradcheck import gradcheck
from cnnlab.layers.base import from_config, to_config
from cnnlab.layers.pooling import AvgPool2D, MaxPool2D

# (input shape, kernel_size, stride, pads (top, left, bottom, right), ceil_mode)
GRID = [
    ((2, 2, 7, 6), (3, 2), 2, (1, 0, 0, 1), True),
    ((2, 2, 7, 6), 3, (2, 3), (0, 2, 2, 1), False),
    ((2, 3, 9, 8), 3, 2, (2, 1, 0, 2), True),
    ((1, 2, 5, 5), 2, 2, (1, 1, 0, 0), True),  # TF-style "same" at stride 2: pads before only
    ((1, 2, 5, 6), 2, 2, (0, 0, 1, 1), False),  # pads after only
    ((2, 1, 2, 2), 3, 2, (0, 0, 2, 2), True),  # ceil's 2nd window would start in the bottom pad: dropped
    ((1, 2, 8, 7), (3, 3), 1, (2, 0, 1, 2), False),  # stride 1: overlapping windows
    ((2, 2, 6, 6), 2, 3, (1, 1, 1, 1), True),  # four equal pads: the symmetric path
]
LAYERS = [
    ("max", lambda k, s, p, c: MaxPool2D(k, s, p, c)),
    ("avg", lambda k, s, p, c: AvgPool2D(k, s, p, c, count_include_pad=True)),
    ("avg_exclude_pad", lambda k, s, p, c: AvgPool2D(k, s, p, c, count_include_pad=False)),
]


def loops(layer: Any, x: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The readable loop reference's (y, dx)."""
    args = (layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode)
    if isinstance(layer, MaxPool2D):
        y, where = R.max_pool2d_loops(x, *args)
        return y, R.max_pool2d_backward_loops(dy, where, x.shape)
    return (
        R.avg_pool2d_loops(x, *args, count_include_pad=layer.count_include_pad),
        R.avg_pool2d_backward_loops(dy, x.shape, *args, count_include_pad=layer.count_include_pad),
    )


@pytest.mark.parametrize(("kind", "make"), LAYERS, ids=[k for k, _ in LAYERS])
@pytest.mark.parametrize("case", GRID, ids=str)
def test_matches_the_loop_reference_and_gradcheck(case, kind, make, rng) -> None:
    shape, k, s, pads, ceil = case
    layer = make(k, s, pads, ceil)
    for x in (rng.standard_normal(shape), rng.integers(0, 3, shape).astype(np.float64)):  # ties too
        y = layer.forward(x)
        dy = rng.standard_normal(y.shape)
        y_ref, dx_ref = loops(layer, x, dy)
        np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-14)
        np.testing.assert_allclose(layer.backward(dy), dx_ref, rtol=0, atol=1e-14)
    assert gradcheck(layer, rng.standard_normal(shape)).ok(1e-7)


def onnx_pool(onnx: Any, layer: Any, shape: tuple[int, ...]) -> bytes:
    """A one-node ONNX model of ``layer`` (MaxPool or AveragePool with its pads), opset 19."""
    from onnx import TensorProto, helper

    attrs: dict[str, Any] = {
        "kernel_shape": list(layer._kernel),
        "strides": list(layer._step),
        "pads": list(layer._pads),
        "ceil_mode": int(layer.ceil_mode),
    }
    op = "MaxPool"
    if isinstance(layer, AvgPool2D):
        op, attrs["count_include_pad"] = "AveragePool", int(layer.count_include_pad)
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    graph = helper.make_graph(
        [node],
        "pool",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]).SerializeToString()


@pytest.mark.parametrize(("kind", "make"), LAYERS, ids=[k for k, _ in LAYERS])
@pytest.mark.parametrize("case", GRID, ids=str)
def test_matches_onnxruntime(case, kind, make, rng) -> None:
    """ONNX's own definition (its runtime): sizes, the ceil-mode rule and the divisors."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    shape, k, s, pads, ceil = case
    layer = make(k, s, pads, ceil)
    x = rng.standard_normal(shape).astype(np.float32)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # its shape inference predicts the dropped window; the run is right
    session = ort.InferenceSession(onnx_pool(onnx, layer, shape), options)
    (y_ort,) = session.run(None, {"x": x})
    y = layer.forward(x)
    assert y.shape == y_ort.shape
    np.testing.assert_allclose(y, y_ort, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("kind", "make"), LAYERS, ids=[k for k, _ in LAYERS])
@pytest.mark.parametrize("case", GRID, ids=str)
def test_torch_twin_and_back(torch, case, kind, make, rng) -> None:
    """to_torch gives PaddedMaxPool2d/PaddedAvgPool2d for asymmetric pads: same values and
    gradients in float64; from_torch and the generated model.py give the layer back."""
    from cnnlab.interop.codegen import torch_source
    from cnnlab.interop.torch import from_torch, to_torch
    from torch_compare import compare_with_torch

    shape, k, s, pads, ceil = case
    layer = make(k, s, pads, ceil)
    module = to_torch(layer.astype(np.float64))
    symmetric = pads[:2] == pads[2:]
    assert type(module).__name__.startswith("Padded") != symmetric
    x = rng.standard_normal(shape)
    dy = rng.standard_normal(layer.output_shape(shape))
    compare_with_torch(torch, layer, module, x, dy, atol=1e-12, where=f"{kind} {case}")
    back = from_torch(module)
    assert type(back) is type(layer) and back._pads == layer._pads and back.ceil_mode == layer.ceil_mode
    np.testing.assert_array_equal(back.forward(x), layer.forward(x))
    namespace: dict[str, Any] = {}
    exec(compile(torch_source(back), "model.py", "exec"), namespace)
    with torch.no_grad():
        np.testing.assert_allclose(
            namespace["build"]()(torch.tensor(x)).numpy(), layer.forward(x), atol=1e-12
        )


def test_hand_cases() -> None:
    x = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    # Pads after only (TF "same" at stride 2 puts the odd one there): windows [1, 2], [3, 4]+pad
    avg = AvgPool2D(2, stride=2, padding=(0, 0, 1, 1), ceil_mode=False, count_include_pad=False)
    assert avg.output_shape(x.shape) == (1, 1, 1, 1)  # floor((2 - 2 + 0 + 1) / 2) + 1 = 1
    assert avg.forward(x).ravel().tolist() == [2.5]
    # 3x3 windows, stride 2, pads (0, 0, 2, 2), ceil mode: a 2nd window would start at row 2, in the
    # bottom padding: PyTorch's and ONNX's rule drop it, so the output is 1x1.
    pool = MaxPool2D(3, stride=2, padding=(0, 0, 2, 2), ceil_mode=True)
    assert pool.output_shape(x.shape) == (1, 1, 1, 1)
    assert pool.formula(x.shape) == (
        "ceil((2 - 3 + 0 + 2) / 2) + 1 - 1 (the last window would start in the right padding) = 1"
    )
    # Pads before only, stride 1: 2x2 windows start at rows/columns -1 and 0.
    mean = AvgPool2D(2, stride=1, padding=(1, 1, 0, 0), count_include_pad=True)
    assert mean.forward(x).ravel().tolist() == [1 / 4, 3 / 4, 4 / 4, 10 / 4]  # every divisor 4
    mean_in = AvgPool2D(2, stride=1, padding=(1, 1, 0, 0), count_include_pad=False)
    assert mean_in.forward(x).ravel().tolist() == [1 / 1, 3 / 2, 4 / 2, 10 / 4]  # input cells only


def test_errors_and_config() -> None:
    with pytest.raises(
        ValueError,
        match=r"MaxPool2D: argument `padding` must be pads \(top, left, bottom, right\) each smaller than "
        r"kernel_size=2. Received: padding=\(0, 0, 2, 1\)",
    ):
        MaxPool2D(2, padding=(0, 0, 2, 1))
    with pytest.raises(
        ValueError,
        match=r"four \(top, left, bottom, right\) as ONNX's pads. Received: padding=\(0, -1, 0, 0\)",
    ):
        AvgPool2D(2, padding=(0, -1, 0, 0))
    with pytest.raises(ValueError, match=r"Received: padding=\(1, 1, 1\)"):
        AvgPool2D(3, padding=(1, 1, 1))
    with pytest.raises(
        ValueError, match=r"at most half of kernel_size=2 \(as in PyTorch\). Received: padding=\(2, 2, 2, 2\)"
    ):
        MaxPool2D(2, padding=(2, 2, 2, 2))  # four equal pads: PyTorch's symmetric rule
    layer = AvgPool2D(3, stride=2, padding=(1, 0, 2, 1), count_include_pad=False)
    assert repr(layer) == "AvgPool2D(3, stride=2, padding=(1, 0, 2, 1), count_include_pad=False)"
    config = to_config(layer)
    assert config["args"]["padding"] == [1, 0, 2, 1] or config["args"]["padding"] == (1, 0, 2, 1)
    assert repr(
        from_config({"type": "AvgPool2D", "args": {**config["args"], "padding": [1, 0, 2, 1]}})
    ) == repr(layer)
    assert (
        layer.formula((1, 1, 7, 8))
        == "H: floor((7 - 3 + 1 + 2) / 2) + 1 = 4, W: floor((8 - 3 + 0 + 1) / 2) + 1 = 4"
    )


def test_asymmetric_pools_export_to_onnx(torch, tmp_path, rng) -> None:
    """The PyTorch twins export (Pad + pool), and onnxruntime reproduces the layers."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from cnnlab.interop.onnx import to_onnx
    from cnnlab.layers.sequential import Sequential

    model = Sequential(
        MaxPool2D(3, stride=2, padding=(0, 1, 2, 1), ceil_mode=True),
        AvgPool2D(2, stride=1, padding=(1, 0, 0, 1), count_include_pad=False),
        AvgPool2D(3, stride=2, padding=(1, 1, 2, 0), ceil_mode=True),
    )
    x = rng.standard_normal((2, 3, 11, 10)).astype(np.float32)
    for dynamo in (False, True):
        path = to_onnx(model, tmp_path / f"pools{dynamo}.onnx", (3, 11, 10), dynamo=dynamo)
        (y,) = ort.InferenceSession(str(path)).run(None, {"input": x})
        np.testing.assert_allclose(y, model.forward(x), rtol=1e-5, atol=1e-6, err_msg=f"dynamo={dynamo}")
