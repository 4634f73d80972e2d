"""The speed paths compute exactly what the plain paths compute (issue 4).

Covered: the 2x2 max-pool kernel (masks, memory layouts, odd sizes, threads), the fused
ReLU -> MaxPool2D step (``cnnlab.layers.fuse``), the first-layer shortcut (``needs_input_grad``),
the clipped col2im, the conv workspace reused across input sizes and dtypes, chunking.
No timings are asserted here (see benchmarks/ and docs/performance.md).
"""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab.functional.conv as fconv
import cnnlab.functional.pool as fpool
import cnnlab.utils as utils
from cnnlab.functional.im2col import col2im_into, out_size
from cnnlab.functional.reference_conv import conv2d_backward_loop, conv2d_forward_loop
from cnnlab.functional.reference_pool import max_pool2d_backward_loops, max_pool2d_loops
from cnnlab.layers.activations import ReLU
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.dense import Dense
from cnnlab.layers.fuse import ReLUMaxPool2D, fuse
from cnnlab.layers.pooling import MaxPool2D
from cnnlab.layers.reshape import Flatten
from cnnlab.layers.sequential import Sequential


def _inputs(rng, shape):
    """Continuous values, many ties, and many all-negative windows."""
    yield rng.standard_normal(shape)
    yield rng.integers(-2, 2, size=shape).astype(np.float64)
    yield -np.abs(rng.standard_normal(shape))


def _cnhw(x):
    """An NCHW view of channel-first memory, the layout Conv2D returns."""
    return np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


@pytest.fixture
def one_thread(monkeypatch):
    monkeypatch.setattr(utils, "_THREADS", 1)


# ---- 2x2 max pooling --------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 3, 6, 8), (1, 2, 7, 5), (3, 1, 2, 3)])
@pytest.mark.parametrize("layout", ["nchw", "cnhw"])
def test_pool_2x2_equals_loop_reference(rng, shape, layout):
    for x in _inputs(rng, shape):
        x = _cnhw(x) if layout == "cnhw" else x
        y, masks = fpool.max_pool2d_2x2(x)
        y_ref, where = max_pool2d_loops(x, 2)
        np.testing.assert_array_equal(y, y_ref)
        for dy_layout in ("nchw", "cnhw"):  # dy from Flatten (NCHW) or from a conv (CNHW)
            dy = rng.standard_normal(y.shape)
            dy = _cnhw(dy) if dy_layout == "cnhw" else dy
            dx = fpool.max_pool2d_2x2_backward(dy, masks, x.shape)
            assert dx.shape == x.shape
            np.testing.assert_array_equal(dx, max_pool2d_backward_loops(dy, where, x.shape))


def test_pool_2x2_keeps_the_memory_order_of_its_input(rng):
    x = _cnhw(rng.standard_normal((4, 3, 6, 6)))
    y, masks = fpool.max_pool2d_2x2(x)
    assert y.transpose(1, 0, 2, 3).flags.c_contiguous
    dx = fpool.max_pool2d_2x2_backward(np.ones_like(y), masks, x.shape)
    assert dx.transpose(1, 0, 2, 3).flags.c_contiguous


def test_pool_2x2_threaded_equals_inline(rng, monkeypatch):
    x = _cnhw(rng.standard_normal((16, 8, 40, 40)))  # above split_channels' inline threshold
    monkeypatch.setattr(utils, "_THREADS", 2)
    y2, m2 = fpool.max_pool2d_2x2(x, relu=True)
    dx2 = fpool.max_pool2d_2x2_backward(np.ones_like(y2), m2, x.shape, relu_y=y2)
    monkeypatch.setattr(utils, "_THREADS", 1)
    y1, m1 = fpool.max_pool2d_2x2(x, relu=True)
    dx1 = fpool.max_pool2d_2x2_backward(np.ones_like(y1), m1, x.shape, relu_y=y1)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(dx1, dx2)


# ---- ReLU -> MaxPool2D fused by cnnlab.layers.fuse ----------------------------------------------
def _ran_fused_kernel(net) -> bool:
    """True when the view's first layer is a ReLUMaxPool2D that ran the one-pass 2x2 kernel."""
    layer = net[0]
    return isinstance(layer, ReLUMaxPool2D) and layer._cache[1] is not None


@pytest.mark.parametrize("shape", [(2, 3, 6, 8), (2, 2, 7, 5)])
def test_fused_relu_pool_equals_separate_layers(rng, shape):
    for x in _inputs(rng, shape):
        fused, plain = fuse(Sequential(ReLU(), MaxPool2D(2))), Sequential(ReLU(), MaxPool2D(2))
        y = fused.forward(x)
        assert _ran_fused_kernel(fused) and plain.forward(x) is not None and len(plain) == 2
        np.testing.assert_array_equal(y, plain.forward(x))
        dy = rng.standard_normal(y.shape)
        np.testing.assert_array_equal(fused.backward(dy), plain.backward(dy))


def test_fusion_only_for_relu_then_2x2_pool(rng):
    x = rng.standard_normal((2, 3, 7, 7))
    for net in (
        fuse(Sequential(ReLU(), MaxPool2D(3))),
        fuse(Sequential(ReLU(), MaxPool2D(2, ceil_mode=True))),  # odd size: a partial window
        fuse(Sequential(MaxPool2D(2), ReLU())),
    ):
        net.forward(x)
        assert not _ran_fused_kernel(net)
    net = fuse(Sequential(ReLU(), MaxPool2D(2, ceil_mode=True)))
    net.forward(x[:, :, :6, :6])  # even size: ceil mode adds nothing
    assert _ran_fused_kernel(net)


def test_small_cnn_fused_matches_unfused_in_float64(rng):
    def build():
        return Sequential(
            Conv2D(1, 4, 3, padding=1, rng=0),
            ReLU(),
            MaxPool2D(2),
            Conv2D(4, 6, 3, padding=1, rng=1),
            ReLU(),
            MaxPool2D(2),
            Flatten(),
            Dense(6 * 2 * 2, 3, rng=2),
        ).astype(np.float64)

    plain = build()
    fused = fuse(build())
    x = rng.standard_normal((5, 1, 9, 8))
    np.testing.assert_allclose(fused.forward(x), plain.forward(x), rtol=0, atol=1e-12)
    dy = rng.standard_normal((5, 3))
    np.testing.assert_allclose(fused.backward(dy), plain.backward(dy), rtol=0, atol=1e-12)
    for (name, a), (_, b) in zip(fused.state_dict().items(), plain.state_dict().items(), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12, err_msg=name)
    for pa, pb in zip(fused.parameters(), plain.parameters(), strict=True):
        np.testing.assert_allclose(pa.grad, pb.grad, rtol=0, atol=1e-12, err_msg=pa.path)


# ---- first-layer shortcut ---------------------------------------------------------------------
def test_first_conv_without_input_grad_stops_backward(rng):
    def build():
        return Sequential(
            Conv2D(2, 3, 3, padding=1, rng=0), ReLU(), Flatten(), Dense(3 * 16, 2, rng=1)
        ).astype(np.float64)

    full, short = build(), build()
    short[0].needs_input_grad = False
    x, dy = rng.standard_normal((3, 2, 4, 4)), rng.standard_normal((3, 2))
    full.forward(x)
    short.forward(x)
    assert full.backward(dy).shape == x.shape
    assert short.backward(dy) is None
    for pa, pb in zip(full.parameters(), short.parameters(), strict=True):
        np.testing.assert_array_equal(pa.grad, pb.grad)


# ---- convolution internals --------------------------------------------------------------------
@pytest.mark.parametrize(
    "H, W, K, stride, dilation, pads",
    [
        (5, 6, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),  # full-cover offset: copy, no zero fill
        (7, 5, (3, 2), (2, 1), (1, 2), (2, 0, 1, 3)),
        (4, 4, (1, 1), (2, 2), (1, 1), (0, 0, 0, 0)),  # stride skips pixels: they get zero
        (3, 3, (5, 5), (1, 1), (1, 1), (2, 2, 2, 2)),
        (6, 6, (3, 3), (2, 2), (2, 1), (1, 1, 1, 1)),
    ],
)
def test_col2im_into_equals_padded_col2im(rng, H, W, K, stride, dilation, pads):
    top, bottom, left, right = pads
    H_out = out_size(H, top + bottom, K[0], stride[0], dilation[0])
    W_out = out_size(W, left + right, K[1], stride[1], dilation[1])
    d6 = rng.standard_normal((2, K[0], K[1], 3, H_out, W_out))  # (C, KH, KW, N, H_out, W_out)
    dxp = np.zeros((2, 3, H + top + bottom, W + left + right))
    for i in range(K[0]):  # the plain reverse: add each offset's block into the padded buffer
        for j in range(K[1]):
            rows = slice(i * dilation[0], i * dilation[0] + stride[0] * (H_out - 1) + 1, stride[0])
            cols = slice(j * dilation[1], j * dilation[1] + stride[1] * (W_out - 1) + 1, stride[1])
            dxp[:, :, rows, cols] += d6[:, i, j]
    got = col2im_into(np.full((2, 3, H, W), np.nan), d6, pads, stride, dilation)
    np.testing.assert_allclose(got, dxp[:, :, top : top + H, left : left + W], rtol=0, atol=1e-12)


def test_conv_workspace_reused_across_sizes_and_dtypes(rng):
    layer = Conv2D(3, 4, 3, padding=1, rng=0).astype(np.float64)
    w, b = layer.params["weight"], layer.params["bias"]
    for shape in [(2, 3, 8, 8), (5, 3, 6, 9), (2, 3, 8, 8), (1, 3, 3, 3)]:
        x = rng.standard_normal(shape)
        y = layer.forward(x)
        np.testing.assert_allclose(y, conv2d_forward_loop(x, w, b, (1, 1, 1, 1)), rtol=0, atol=1e-12)
        dy = rng.standard_normal(y.shape)
        ref = conv2d_backward_loop(dy, x, w, (1, 1, 1, 1))
        dx = layer.backward(dy)
        np.testing.assert_allclose(dx, ref[0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(layer.grads["weight"], ref[1], rtol=0, atol=1e-12)
    layer.astype(np.float32)  # same workspace, new dtype
    y32 = layer.forward(x.astype(np.float32))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, conv2d_forward_loop(x, w, b, (1, 1, 1, 1)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("threads", [1, 2])
def test_conv_chunked_equals_whole_batch(rng, monkeypatch, threads):
    monkeypatch.setattr(utils, "_THREADS", threads)
    layer = Conv2D(4, 5, 3, stride=(1, 2), padding=(1, 0), rng=0).astype(np.float64)
    x = rng.standard_normal((7, 4, 30, 31))
    y = layer.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    dW = layer.grads["weight"].copy()
    old = fconv.set_workspace_budget(3 * (4 * 9 * 30 * 15 + 4 * 32 * 31) * 8)  # 3 samples per chunk
    try:
        np.testing.assert_allclose(layer.forward(x), y, rtol=0, atol=1e-12)
        np.testing.assert_allclose(layer.backward(dy), dx, rtol=0, atol=1e-12)
        np.testing.assert_allclose(layer.grads["weight"], dW, rtol=0, atol=1e-10)
    finally:
        fconv.set_workspace_budget(old)


# ---- 1x1 convolution without im2col ------------------------------------------------------------
@pytest.mark.parametrize("stride", [(1, 1), (2, 2), (2, 1), (3, 2)])
@pytest.mark.parametrize("layout", ["nchw", "cnhw"])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_1x1_fast_path_equals_loop_and_torch(rng, torch, stride, layout, bias):
    x = rng.standard_normal((3, 4, 7, 6))
    x = _cnhw(x) if layout == "cnhw" else x
    w, b = rng.standard_normal((5, 4, 1, 1)), rng.standard_normal(5)
    ws = fconv.ConvWorkspace()
    y, saved = fconv.conv2d_forward_saving(x, w, b if bias else None, (0, 0, 0, 0), stride, (1, 1), ws)
    assert saved.cols is not None  # the input pixels the 1x1 kernel read, kept for backward
    np.testing.assert_allclose(
        y, conv2d_forward_loop(x, w, b if bias else None, (0, 0, 0, 0), stride), atol=1e-12
    )
    dy = rng.standard_normal(y.shape)
    dx, dW, db = fconv.conv2d_backward_saved(dy, saved, w, True)
    assert saved.cols is None  # the kept columns are released after backward
    xt, wt = torch.tensor(np.asarray(x), requires_grad=True), torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True) if bias else None
    yt = torch.nn.functional.conv2d(xt, wt, bt, stride=stride)
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-10)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(dW, wt.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(db, dy.sum(axis=(0, 2, 3)), atol=1e-10)
    # backward without the forward's columns (another input object) and without dx
    dx2, dW2, _ = fconv.conv2d_backward(dy, x.copy(), w, (0, 0, 0, 0), stride, (1, 1), False, ws)
    assert dx2 is None
    np.testing.assert_allclose(dW2, dW, atol=1e-12)


def test_conv_1x1_layer_float32_matches_padded_general_path(rng):
    # padding 1 takes the im2col path; its interior equals the 1x1 fast path's output
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    fast, general = Conv2D(3, 4, 1, rng=0), Conv2D(3, 4, 1, padding=1, rng=0)
    y = fast.forward(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, general.forward(x)[:, :, 1:-1, 1:-1], rtol=1e-5, atol=1e-6)


# ---- BatchNorm2D on channel-first data ---------------------------------------------------------
@pytest.mark.parametrize("layout", ["nchw", "cnhw"])
@pytest.mark.parametrize("threads", [1, 2])
def test_batchnorm2d_matches_torch_in_both_layouts(rng, torch, monkeypatch, layout, threads):
    from cnnlab.layers.batchnorm import BatchNorm2D

    monkeypatch.setattr(utils, "_THREADS", threads)
    # 8*5*64*64 elements are above split_channels' inline limit (2**17): two channel ranges
    x = rng.normal(3.0, 2.0, (8, 5, 64, 64) if threads == 2 else (6, 5, 16, 16))
    x = _cnhw(x) if layout == "cnhw" else x
    bn = BatchNorm2D(5, momentum=0.3).astype(np.float64)
    bn.params["weight"][:] = rng.standard_normal(5)
    bn.params["bias"][:] = rng.standard_normal(5)
    ref = torch.nn.BatchNorm2d(5, momentum=0.3).double()
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(bn.params["weight"]))
        ref.bias.copy_(torch.tensor(bn.params["bias"]))
    for training in (True, False):
        bn.train(training)
        ref.train(training)
        xt = torch.tensor(np.asarray(x), requires_grad=True)
        yt = ref(xt)
        y = bn.forward(x)
        np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-10)
        dy = rng.standard_normal(y.shape)
        dy = _cnhw(dy) if layout == "cnhw" else dy
        yt.backward(torch.tensor(dy))
        dx = bn.backward(dy)
        np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-10)
        np.testing.assert_allclose(bn.grads["weight"], ref.weight.grad.numpy(), atol=1e-9)
        np.testing.assert_allclose(bn.grads["bias"], ref.bias.grad.numpy(), atol=1e-9)
        np.testing.assert_allclose(bn.buffers["running_mean"], ref.running_mean.numpy(), atol=1e-12)
        np.testing.assert_allclose(bn.buffers["running_var"], ref.running_var.numpy(), atol=1e-12)
        ref.weight.grad = ref.bias.grad = None


@pytest.mark.parametrize("K", [3, 8, 20])
def test_weight_grad_gemm_equals_plain_product_in_both_orientations(rng, K):
    dy2, cols = rng.standard_normal((8, 50)), rng.standard_normal((K, 50))
    np.testing.assert_allclose(fconv.weight_grad_gemm(dy2, cols), dy2 @ cols.T, atol=1e-12)


# ---- forward -> backward state: one SavedConv per call (issue 24) --------------------------------
def test_saved_conv_reuses_forward_columns_only_while_intact(rng):
    x, w = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    dy = rng.standard_normal((2, 4, 6, 6))
    expected = fconv.conv2d_backward(dy, x, w, (1, 1, 1, 1))
    ws = fconv.ConvWorkspace()
    _, saved = fconv.conv2d_forward_saving(x, w, None, (1, 1, 1, 1), (1, 1), (1, 1), ws)
    assert saved.columns(3 * 9 + 1, w.dtype) is not None  # the whole batch in one chunk: kept
    # Another call handed the same column buffer: the kept columns are stale, backward rebuilds them.
    _, other = fconv.conv2d_forward_saving(x + 1, w, None, (1, 1, 1, 1), (1, 1), (1, 1), ws)
    assert saved.columns(3 * 9 + 1, w.dtype) is None
    for a, b in zip(fconv.conv2d_backward_saved(dy, saved, w), expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    assert other.columns(3 * 9 + 1, w.dtype) is None  # that backward rebuilt them in the buffer
    # A backward consumes its call's columns (dL/dcols is written over them); a second one rebuilds.
    _, saved = fconv.conv2d_forward_saving(x, w, None, (1, 1, 1, 1), (1, 1), (1, 1), ws)
    first = fconv.conv2d_backward_saved(dy, saved, w)
    assert saved.cols is None
    for a, b, c in zip(fconv.conv2d_backward_saved(dy, saved, w), first, expected, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, c, rtol=0, atol=1e-12)


def test_workspace_holds_no_state_about_its_inputs():
    ws = fconv.ConvWorkspace()
    x, w = np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3))
    fconv.conv2d_forward(x, w, None, (1, 1, 1, 1), workspace=ws)
    held = [v for v in vars(ws).values() if v is x or (isinstance(v, tuple) and any(e is x for e in v))]
    assert held == []
    assert not hasattr(ws, "cols_for") and not hasattr(ws, "cols_1x1")
