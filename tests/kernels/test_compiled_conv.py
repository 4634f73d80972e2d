"""The compiled conv tier against the NumPy engine and PyTorch (issue 14).

Sizes and channel counts are chosen so that no block size divides them (the kernel blocks 4
output channels x 32 flat pixels): remainders are where an unchecked numba kernel would
write out of bounds.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from cnnlab.kernels import check, dispatch
from cnnlab.kernels import conv as compiled
from cnnlab.layers.conv import Conv2D

# (C_in, C_out, kernel, stride, padding, (H, W), batch)
CASES = [
    (1, 5, 3, 1, 1, (7, 9), 3),
    (3, 7, 3, 2, 1, (9, 8), 2),
    (6, 3, 3, 2, 0, (11, 7), 1),
    (5, 9, (2, 3), (1, 2), (1, 0), (6, 9), 2),
    (2, 6, 5, 1, 2, (5, 5), 2),
    (17, 13, 3, 1, "same", (10, 7), 2),
    (4, 4, 3, 2, "same", (7, 10), 3),
]


def _layer(C_in, C_out, kernel, stride, padding, dtype, seed=0):
    layer = Conv2D(C_in, C_out, kernel, stride=stride, padding=padding, rng=seed).astype(dtype)
    layer.params["bias"][:] = np.linspace(-1, 1, C_out)
    return layer


def _run(layer, x, dy):
    y = np.array(layer.forward(x))
    dx = layer.backward(dy)
    return y, np.array(dx), layer.grads["weight"].copy(), layer.grads["bias"].copy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=[str(c[:5]) for c in CASES])
def test_compiled_matches_numpy_and_torch(monkeypatch, torch, case, dtype):
    C_in, C_out, kernel, stride, padding, (H, W), N = case
    rng = np.random.default_rng(7)
    x = rng.standard_normal((N, C_in, H, W)).astype(dtype)
    layer = _layer(C_in, C_out, kernel, stride, padding, dtype)
    dy = rng.standard_normal(layer.output_shape(x.shape)).astype(dtype)

    monkeypatch.setenv("CNNLAB_KERNELS", "numpy")
    ref = _run(layer, x, dy)
    monkeypatch.setenv("CNNLAB_KERNELS", "compiled")
    pads = layer._pads(H, W)
    # The case must really run compiled (not a silent fallback that would pass trivially).
    assert dispatch.use_compiled(x.shape, layer.params["weight"], pads, layer._stride, (1, 1))
    ours = _run(layer, x, dy)

    tol = 2e-5 if dtype == np.float32 else 1e-12
    for name, a, b in zip(("y", "dx", "dW", "db"), ours, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * 10, err_msg=name)

    # PyTorch, float64, as the oracle.
    F = torch.nn.functional
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    wt = torch.tensor(layer.params["weight"].astype(np.float64), requires_grad=True)
    bt = torch.tensor(layer.params["bias"].astype(np.float64), requires_grad=True)
    top, bottom, left, right = pads
    yt = F.conv2d(F.pad(xt, (left, right, top, bottom)), wt, bt, stride=layer._stride)
    yt.backward(torch.tensor(dy.astype(np.float64)))
    tol_t = 1e-4 if dtype == np.float32 else 1e-10
    for name, a, b in zip(("y", "dx", "dW", "db"), ours, (yt, xt.grad, wt.grad, bt.grad), strict=True):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=tol_t, atol=tol_t, err_msg=name)


def test_first_layer_skips_dx_and_backward_without_saved_forward(monkeypatch):
    monkeypatch.setenv("CNNLAB_KERNELS", "compiled")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    layer = _layer(3, 5, 3, 1, 1, np.float32)
    layer.needs_input_grad = False
    y = layer.forward(x)
    assert layer.backward(np.ones_like(y)) is None
    # backward of a compiled forward whose saved input is gone (another input) repacks x
    dx, dW, _ = compiled.backward(
        np.ones(y.shape, np.float32), x, layer.params["weight"], (1, 1, 1, 1), (1, 1), True, None
    )
    monkeypatch.setenv("CNNLAB_KERNELS", "numpy")
    layer.needs_input_grad = True
    layer.forward(x)
    ref_dx = layer.backward(np.ones_like(y))
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dW, layer.grads["weight"], rtol=1e-5, atol=1e-5)


def test_mismatch_falls_back_to_numpy_with_a_notice(monkeypatch, capsys):
    """A kernel that computes a wrong result is caught by the first-use check."""
    monkeypatch.setenv("CNNLAB_KERNELS", "compiled")
    monkeypatch.setattr(check, "_verdicts", {})
    real_forward = compiled.forward

    def wrong_forward(*args, **kwargs):
        y, saved = real_forward(*args, **kwargs)
        return y + 1e-2, saved

    monkeypatch.setattr(compiled, "forward", wrong_forward)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    layer = _layer(3, 6, 3, 1, 1, np.float32)
    y = layer.forward(x)
    assert "disagrees with the NumPy kernels; using NumPy for it" in capsys.readouterr().err
    assert not dispatch.use_compiled(x.shape, layer.params["weight"], (1, 1, 1, 1), (1, 1), (1, 1))
    monkeypatch.setenv("CNNLAB_KERNELS", "numpy")
    np.testing.assert_array_equal(y, layer.forward(x))


def test_unsupported_convolutions_stay_on_numpy(monkeypatch):
    monkeypatch.setenv("CNNLAB_KERNELS", "compiled")
    w = np.zeros((4, 3, 3, 3), np.float32)
    assert not dispatch.use_compiled((2, 3, 8, 8), w, (1, 1, 1, 1), (1, 1), (2, 2))  # dilation
    assert not dispatch.use_compiled((2, 3, 8, 8), w, (3, 3, 3, 3), (1, 1), (1, 1))  # pad > kernel-1
    assert not dispatch.use_compiled(
        (2, 3, 8, 8), np.zeros((4, 3, 1, 1), np.float32), (0,) * 4, (1, 1), (1, 1)
    )
    assert not dispatch.use_compiled((2, 3, 8, 8), w.astype(np.float16), (1, 1, 1, 1), (1, 1), (1, 1))


def test_auto_compiles_only_where_it_measured_faster(monkeypatch):
    """The default ("auto"): 16 -> 16 at stride 1 on a large batch compiled; a small batch,
    64 channels, stride 2, 1-3 input channels not."""
    monkeypatch.delenv("CNNLAB_KERNELS", raising=False)
    pads = (1, 1, 1, 1)

    def w(C_out, C_in):
        return np.zeros((C_out, C_in, 3, 3), np.float32)

    big = 64  # 64 x 28 x 28 = 50,176 pixels per channel: above dispatch.AUTO_MIN_POSITIONS
    assert dispatch.use_compiled((big, 16, 28, 28), w(16, 16), pads, (1, 1), (1, 1))
    assert not dispatch.use_compiled((32, 16, 28, 28), w(16, 16), pads, (1, 1), (1, 1))  # 25,088
    assert not dispatch.use_compiled((big, 64, 28, 28), w(64, 64), pads, (1, 1), (1, 1))
    assert not dispatch.use_compiled((big, 16, 28, 28), w(16, 16), pads, (2, 2), (1, 1))
    assert not dispatch.use_compiled((big, 1, 28, 28), w(16, 1), pads, (1, 1), (1, 1))
    monkeypatch.setenv("CNNLAB_KERNELS", "compiled")
    assert dispatch.use_compiled((2, 64, 9, 9), w(64, 64), pads, (1, 1), (1, 1))


def test_results_do_not_depend_on_the_thread_count(monkeypatch):
    """Fixed blocks and chunk-ordered sums: bit-identical with 1 and 2 numba threads."""
    import numba

    monkeypatch.setenv("CNNLAB_KERNELS", "compiled")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 5, 13, 11)).astype(np.float32)
    layer = _layer(5, 6, 3, 1, 1, np.float32)
    dy = rng.standard_normal(layer.output_shape(x.shape)).astype(np.float32)
    old = numba.get_num_threads()
    results = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            results.append(_run(layer, x, dy))
    finally:
        numba.set_num_threads(old)
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("stride", [1, 2])
def test_reused_buffers_never_leak_between_steps_or_shapes(monkeypatch, stride):
    """A layer keeps its packed input, dy copy and dx planes between steps: a later step
    (new data, another batch size, then the first size again) must equal a fresh layer's."""
    monkeypatch.setenv("CNNLAB_KERNELS", "compiled")
    rng = np.random.default_rng(4)
    layer = _layer(6, 5, 3, stride, 1, np.float64)
    for N, H, W in [(3, 9, 11), (3, 9, 11), (2, 9, 11), (3, 7, 8), (3, 9, 11)]:
        x = rng.standard_normal((N, 6, H, W))
        dy = rng.standard_normal(layer.output_shape(x.shape))
        ours = _run(layer, x, dy)
        fresh = _layer(6, 5, 3, stride, 1, np.float64)
        monkeypatch.setenv("CNNLAB_KERNELS", "numpy")
        ref = _run(fresh, x, dy)
        monkeypatch.setenv("CNNLAB_KERNELS", "compiled")
        for name, a, b in zip(("y", "dx", "dW", "db"), ours, ref, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=f"{name} at {(N, H, W)}")


def test_a_kernel_one_wide_at_stride_two_gives_zero_dx_on_unread_columns(monkeypatch, torch):
    """Kernel (3, 1) at stride 2: the odd columns are read by no tap; their dx plane is zeros."""
    monkeypatch.setenv("CNNLAB_KERNELS", "compiled")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 9, 9))
    layer = _layer(3, 4, (3, 1), 2, (1, 0), np.float64)
    dy = rng.standard_normal(layer.output_shape(x.shape))
    pads = layer._pads(9, 9)
    assert dispatch.use_compiled(x.shape, layer.params["weight"], pads, layer._stride, (1, 1))
    _, dx, _, _ = _run(layer, x, dy)
    assert np.all(dx[:, :, :, 1::2] == 0) and np.any(dx[:, :, :, ::2] != 0)
    F = torch.nn.functional
    xt = torch.tensor(x, requires_grad=True)
    top, bottom, left, right = pads
    yt = F.conv2d(F.pad(xt, (left, right, top, bottom)), torch.tensor(layer.params["weight"]), stride=2)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-10)
