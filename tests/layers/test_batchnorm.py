"""BatchNorm1D/2D: PyTorch parity in float64, running statistics, gradcheck, errors."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.errors import CnnlabError, ShapeError
from cnnlab.functional.batchnorm import batchnorm_backward, batchnorm_forward
from cnnlab.gradcheck import gradcheck
from cnnlab.layers.batchnorm import BatchNorm1D, BatchNorm2D
from torch_compare import compare_with_torch

# (cnnlab class, torch class name, input shape)
CASES = [
    (BatchNorm2D, "BatchNorm2d", (4, 3, 5, 6)),
    (BatchNorm2D, "BatchNorm2d", (2, 1, 3, 3)),
    (BatchNorm1D, "BatchNorm1d", (7, 5)),
    (BatchNorm1D, "BatchNorm1d", (3, 4, 6)),
]


def _pair(torch, cls, torch_name, shape, rng, momentum=0.1, eps=1e-5):
    """A cnnlab layer and a torch layer with the same random affine params, in float64."""
    C = shape[1]
    ours = cls(C, eps=eps, momentum=momentum).astype(np.float64)
    ref = getattr(torch.nn, torch_name)(C, eps=eps, momentum=momentum).double()
    w, b = rng.normal(1.0, 0.5, C), rng.normal(0.0, 0.5, C)
    ours.load_state_dict({"weight": w, "bias": b, "running_mean": np.zeros(C), "running_var": np.ones(C)})
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(w))
        ref.bias.copy_(torch.from_numpy(b))
    return ours, ref


@pytest.mark.parametrize(("cls", "torch_name", "shape"), CASES)
@pytest.mark.parametrize("momentum", [0.1, 0.5])
def test_train_matches_torch(torch, rng, cls, torch_name, shape, momentum):
    ours, ref = _pair(torch, cls, torch_name, shape, rng, momentum=momentum)
    for step in range(3):  # several steps: running statistics accumulate
        x = rng.normal(2.0 * step, 1.0 + step, shape)
        dy = rng.standard_normal(shape)
        # The module case also compares the state_dicts: the running statistics.
        compare_with_torch(torch, ours, ref, x, dy, where=f"step {step}")


@pytest.mark.parametrize(("cls", "torch_name", "shape"), CASES)
def test_eval_matches_torch(torch, rng, cls, torch_name, shape):
    ours, ref = _pair(torch, cls, torch_name, shape, rng)
    for _ in range(2):  # move running stats away from (0, 1)
        x = rng.normal(1.5, 3.0, shape)
        ours.forward(x)
        ref(torch.from_numpy(x))
    ours.eval()
    ref.eval()
    x = rng.normal(0.5, 2.0, shape)
    dy = rng.standard_normal(shape)
    compare_with_torch(torch, ours, ref, x, dy)
    # eval mode does not touch the running statistics
    before = ours.state_dict()
    ours.forward(x)
    for key, value in ours.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_load_torch_state_dict_ignores_num_batches_tracked(torch, rng):
    ref = torch.nn.BatchNorm2d(3).double()
    ref(torch.from_numpy(rng.normal(1.0, 2.0, (4, 3, 2, 2))))
    ours = BatchNorm2D(3).astype(np.float64)
    ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    np.testing.assert_array_equal(ours.buffers["running_var"], ref.running_var.numpy())


@pytest.mark.parametrize(
    ("cls", "shape"), [(BatchNorm2D, (3, 2, 3, 2)), (BatchNorm1D, (5, 3)), (BatchNorm1D, (2, 2, 3))]
)
@pytest.mark.parametrize("training", [True, False])
def test_gradcheck(rng, cls, shape, training):
    layer = cls(shape[1]).astype(np.float64)
    layer.params["weight"] = rng.normal(1.0, 0.5, shape[1])
    layer.params["bias"] = rng.normal(0.0, 0.5, shape[1])
    layer.buffers["running_mean"] = rng.normal(0.0, 1.0, shape[1])
    layer.buffers["running_var"] = rng.uniform(0.5, 2.0, shape[1])
    layer.train(training)
    result = gradcheck(layer, rng.normal(1.0, 2.0, shape))
    assert result.ok(1e-7), str(result)


def test_hand_computed_tiny_case():
    # one channel, values 1 and 3: mean 2, biased var 1, unbiased var 2
    bn = BatchNorm1D(1, eps=1e-12, momentum=0.5).astype(np.float64)
    y = bn.forward(np.array([[1.0], [3.0]]))
    np.testing.assert_allclose(y, [[-1.0], [1.0]])
    np.testing.assert_allclose(bn.buffers["running_mean"], [0.5 * 0 + 0.5 * 2])
    np.testing.assert_allclose(bn.buffers["running_var"], [0.5 * 1 + 0.5 * 2])
    # dy equal to x_hat: dbias = 0, dweight = 2, dx = 0 (the normalization absorbs it)
    dx = bn.backward(np.array([[-1.0], [1.0]]))
    np.testing.assert_allclose(bn.grads["bias"], [0.0])
    np.testing.assert_allclose(bn.grads["weight"], [2.0])
    np.testing.assert_allclose(dx, [[0.0], [0.0]], atol=1e-10)


def test_kernels_are_shared_by_1d_and_2d(rng):
    # a (N, C, H, W) batch norm equals a (N*H*W, C) one on the transposed data
    x = rng.normal(size=(2, 3, 4, 5))
    x2 = x.transpose(0, 2, 3, 1).reshape(-1, 3)  # (N*H*W, C)
    w, b = rng.normal(size=3), rng.normal(size=3)
    mean, var = x2.mean(axis=0), x2.var(axis=0)
    y4, xh4, s4 = batchnorm_forward(x, w, b, mean, var, 1e-5)
    y2, xh2, s2 = batchnorm_forward(x2, w, b, mean, var, 1e-5)
    np.testing.assert_allclose(y4.transpose(0, 2, 3, 1).reshape(-1, 3), y2)
    dy = rng.normal(size=x.shape)
    dx4, dw4, db4 = batchnorm_backward(dy, xh4, w, s4, True)
    dx2, dw2, db2 = batchnorm_backward(dy.transpose(0, 2, 3, 1).reshape(-1, 3), xh2, w, s2, True)
    np.testing.assert_allclose(dx4.transpose(0, 2, 3, 1).reshape(-1, 3), dx2)
    np.testing.assert_allclose(dw4, dw2)
    np.testing.assert_allclose(db4, db2)


def test_defaults_and_names():
    bn = BatchNorm2D(4)
    assert list(bn.params) == ["weight", "bias"]
    assert list(bn.buffers) == ["running_mean", "running_var"]
    np.testing.assert_array_equal(bn.params["weight"], np.ones(4))
    np.testing.assert_array_equal(bn.params["bias"], np.zeros(4))
    np.testing.assert_array_equal(bn.buffers["running_mean"], np.zeros(4))
    np.testing.assert_array_equal(bn.buffers["running_var"], np.ones(4))
    assert all(v.dtype == np.float32 for v in bn.state_dict().values())
    assert bn.get_config() == {"num_features": 4, "eps": 1e-5, "momentum": 0.1}
    assert repr(bn) == "BatchNorm2D(4)"
    assert repr(BatchNorm1D(8, eps=1e-3, momentum=0.01)) == "BatchNorm1D(8, eps=0.001, momentum=0.01)"
    assert bn.output_shape((2, 4, 7, 7)) == (2, 4, 7, 7)


def test_float32_compute_stays_float32(rng):
    bn = BatchNorm2D(3)
    x = rng.normal(size=(4, 3, 2, 2)).astype(np.float32)
    y = bn.forward(x)
    dx = bn.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == np.float32
    assert bn.grads["weight"].dtype == bn.buffers["running_var"].dtype == np.float32


def test_astype(rng):
    bn = BatchNorm2D(3)
    bn.forward(rng.normal(size=(4, 3, 2, 2)).astype(np.float32))
    bn.backward(np.ones((4, 3, 2, 2), dtype=np.float32))
    assert bn.astype(np.float64) is bn
    for store in (bn.params, bn.grads, bn.buffers):
        assert all(v.dtype == np.float64 for v in store.values())
    y = bn.forward(rng.normal(size=(4, 3, 2, 2)))
    assert y.dtype == np.float64 and bn.buffers["running_mean"].dtype == np.float64


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda: BatchNorm2D(0),
            r"BatchNorm2D: argument `num_features` must be a positive int\. Received: num_features=0",
        ),
        (lambda: BatchNorm2D(2.5), r"`num_features` must be a positive int\. Received: num_features=2\.5"),
        (
            lambda: BatchNorm1D(3, eps=0),
            r"BatchNorm1D: argument `eps` must be a positive finite float\. Received: eps=0",
        ),
        (lambda: BatchNorm1D(3, eps=-1e-5), r"Received: eps=-1e-05"),
        (
            lambda: BatchNorm1D(3, eps=float("inf")),
            r"`eps` must be a positive finite float\. Received: eps=inf",
        ),
        (
            lambda: BatchNorm2D(3, momentum=1.5),
            r"`momentum` must be a float in \[0, 1\]\. Received: momentum=1\.5",
        ),
        (lambda: BatchNorm2D(3, momentum=None), r"Received: momentum=None"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_shape_errors():
    with pytest.raises(
        ShapeError,
        match=r"BatchNorm2D: input must have 3 channels/features at axis 1 "
        r"\(num_features=3\)\. Received: shape \(2, 4, 5, 5\)",
    ):
        BatchNorm2D(3).forward(np.zeros((2, 4, 5, 5), dtype=np.float32))
    with pytest.raises(
        ShapeError, match=r"BatchNorm2D: input must have shape \(N, C, H, W\)\. Received: shape \(2, 3\)"
    ):
        BatchNorm2D(3).forward(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(
        ShapeError,
        match=r"BatchNorm1D: input must have shape \(N, F\) or \(N, C, L\)\. "
        r"Received: shape \(2, 3, 4, 4\)",
    ):
        BatchNorm1D(3).forward(np.zeros((2, 3, 4, 4), dtype=np.float32))
    with pytest.raises(ShapeError, match=r"num_features=5\)\. Received: shape \(1, 6\)"):
        BatchNorm1D(5).output_shape((1, 6))
    with pytest.raises(ShapeError, match=r"more than 1 value per channel\. Received: shape \(1, 3\)"):
        BatchNorm1D(3).forward(np.zeros((1, 3), dtype=np.float32))
    # a single example is fine in eval mode
    assert BatchNorm1D(3).eval().forward(np.zeros((1, 3), dtype=np.float32)).shape == (1, 3)


def test_backward_before_forward():
    with pytest.raises(CnnlabError, match=r"BatchNorm2D: backward\(\) called before forward\(\)"):
        BatchNorm2D(2).backward(np.zeros((2, 2, 1, 1)))
