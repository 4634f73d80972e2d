"""The loop reference and the im2col kernels: PyTorch parity and the pieces on their own."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.functional.conv import conv2d_backward, conv2d_forward
from cnnlab.functional.im2col import col2im_into, im2col, out_size
from cnnlab.functional.reference_conv import conv2d_backward_loop, conv2d_forward_loop


@pytest.mark.parametrize(
    "pads, stride, dilation",
    [((0, 0, 0, 0), (1, 1), (1, 1)), ((1, 2, 0, 1), (2, 1), (1, 2)), ((2, 2, 2, 2), (3, 2), (2, 1))],
)
def test_loop_reference_matches_pytorch(torch, pads, stride, dilation) -> None:
    F = torch.nn.functional
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    top, bottom, left, right = pads
    yt = F.conv2d(F.pad(xt, (left, right, top, bottom)), wt, bt, stride=stride, dilation=dilation)
    dy = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(
        conv2d_forward_loop(x, w, b, pads, stride, dilation), yt.detach().numpy(), atol=1e-10
    )
    dx, dW, db = conv2d_backward_loop(dy, x, w, pads, stride, dilation)
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(dW, wt.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(db, bt.grad.numpy(), atol=1e-10)


def test_functional_kernels_match_loop_reference() -> None:
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((3, 2, 8, 7)), rng.standard_normal((5, 2, 2, 3)), rng.standard_normal(5)
    pads, stride, dilation = (1, 0, 2, 1), (2, 3), (2, 1)
    y = conv2d_forward(x.astype(np.float64), w, b, pads, stride, dilation)
    np.testing.assert_allclose(y, conv2d_forward_loop(x, w, b, pads, stride, dilation), atol=1e-12)
    dy = rng.standard_normal(y.shape)
    for fast, slow in zip(
        conv2d_backward(dy, x, w, pads, stride, dilation),
        conv2d_backward_loop(dy, x, w, pads, stride, dilation),
        strict=True,
    ):
        np.testing.assert_allclose(fast, slow, atol=1e-12)


def test_im2col_columns_are_the_windows() -> None:
    xp = np.arange(2 * 1 * 4 * 5, dtype=float).reshape(2, 1, 4, 5)  # (C, N, H, W)
    cols = np.empty((2 * 2 * 2, 2 * 2))
    im2col(xp, (2, 2), (2, 2), (1, 2), cols)  # H_out = 3 // 2 + 1 = 2, W_out = (5 - 3) // 2 + 1 = 2
    # Column for output (r=1, s=1): rows 2..3, columns 2 and 4 of both channels.
    expected = np.concatenate([xp[c, 0, 2:4, 2:5:2].ravel() for c in range(2)])
    np.testing.assert_array_equal(cols[:, 3], expected)
    assert out_size(4, 0, 2, 2, 1) == 2 and out_size(5, 0, 2, 2, 2) == 2


def test_col2im_into_is_the_adjoint_of_im2col() -> None:
    # <im2col(x), c> == <x, col2im(c)>: the backward of a copy is the sum back into place.
    rng = np.random.default_rng(2)
    xp = rng.standard_normal((2, 3, 7, 6))  # (C, N, H, W)
    kernel, stride, dilation = (3, 2), (2, 1), (1, 2)
    cols = im2col(xp, kernel, stride, dilation, np.empty((2 * 3 * 2, 3 * 3 * 4)))
    c = rng.standard_normal(cols.shape)
    c6 = c.reshape(2, 3, 2, 3, 3, 4)  # (C, KH, KW, N, H_out, W_out)
    back = col2im_into(np.full_like(xp, np.nan), c6, (0, 0, 0, 0), stride, dilation)
    np.testing.assert_allclose(np.sum(cols * c), np.sum(xp * back), rtol=1e-12)
