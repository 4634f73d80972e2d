"""fuse(model): ReLU -> MaxPool2D and BatchNorm -> ReLU as one layer, the same numbers as the two layers."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.errors import ShapeError
from cnnlab.io import load, save
from cnnlab.layers.activations import ReLU
from cnnlab.layers.batchnorm import BatchNorm1D, BatchNorm2D
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.dense import Dense
from cnnlab.layers.dropout import Dropout
from cnnlab.layers.fuse import BatchNormReLU, ReLUMaxPool2D, fuse
from cnnlab.layers.pooling import MaxPool2D
from cnnlab.layers.registry import import_all_layers
from cnnlab.layers.reshape import Flatten
from cnnlab.layers.residual import Residual
from cnnlab.layers.sequential import Sequential
from cnnlab.losses import SoftmaxCrossEntropy
from cnnlab.optim import SGD
from torch_compare import compare_with_torch


def _inputs(rng, shape):
    """Continuous values, many ties, and many all-negative windows."""
    yield rng.standard_normal(shape)
    yield rng.integers(-2, 2, size=shape).astype(np.float64)
    yield -np.abs(rng.standard_normal(shape))


def _cnn(seed: int = 0) -> Sequential:
    return Sequential(
        Conv2D(1, 4, 3, padding=1, rng=seed),
        ReLU(),
        MaxPool2D(2),
        Residual(Sequential(Conv2D(4, 4, 3, padding=1, rng=seed + 1), ReLU(), MaxPool2D(1))),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Dropout(0.25, rng=seed + 2),
        Dense(4 * 2 * 2, 3, rng=seed + 3),
    ).astype(np.float64)


@pytest.mark.parametrize(
    ("pool", "shape"),
    [
        (MaxPool2D(2), (2, 3, 6, 8)),
        (MaxPool2D(2), (2, 2, 7, 5)),  # odd sizes: the last row/column is in no window
        (MaxPool2D(2, ceil_mode=True), (2, 2, 7, 5)),  # a partial window: the two layers run
        (MaxPool2D(3, stride=2, padding=1), (2, 2, 7, 6)),  # not 2x2: the two layers run
    ],
    ids=repr,
)
def test_fused_layer_equals_relu_then_pool_and_torch(torch, rng, pool, shape):
    fused = ReLUMaxPool2D(ReLU(), pool)
    plain = Sequential(ReLU(), MaxPool2D(**pool.get_config()))
    K, S, P = pool._kernel, pool._step, pool._pad
    for x in _inputs(rng, shape):
        y = fused.forward(x)
        dy = rng.standard_normal(y.shape)
        np.testing.assert_array_equal(y, plain.forward(x))
        np.testing.assert_array_equal(fused.backward(dy), plain.backward(dy))
        compare_with_torch(
            torch,
            fused,
            lambda t: torch.nn.functional.max_pool2d(torch.relu(t), K, S, P, ceil_mode=pool.ceil_mode),
            x,
            dy,
        )


def test_fuse_replaces_each_relu_pool_pair_and_nothing_else():
    model = Sequential(ReLU(), MaxPool2D(2), MaxPool2D(2), ReLU(), ReLU(), MaxPool2D(3), MaxPool2D(2), ReLU())
    view = fuse(model)
    kinds = [type(layer).__name__ for layer in view.layers]
    assert kinds == ["ReLUMaxPool2D", "MaxPool2D", "ReLU", "ReLUMaxPool2D", "MaxPool2D", "ReLU"]
    assert view.layers[0].relu is model.layers[0] and view.layers[0].pool is model.layers[1]
    assert [type(layer).__name__ for layer in model.layers].count("ReLUMaxPool2D") == 0  # unchanged
    nested = fuse(_cnn())
    assert isinstance(nested.layers[1], ReLUMaxPool2D) and isinstance(nested.layers[2], Residual)
    assert isinstance(nested.layers[2].block.layers[1], ReLUMaxPool2D)  # inside the residual block
    assert fuse(Dense(2, 2)) is not None and isinstance(fuse(Dense(2, 2)), Dense)


def _train_side_by_side(view, model, reference, rng, shape):
    """Three SGD steps of ``model`` through its fused ``view`` and of an unfused twin."""
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt_ref = SGD(reference.parameters(), lr=0.1, momentum=0.9)
    loss, loss_ref = SoftmaxCrossEntropy(), SoftmaxCrossEntropy()
    for _ in range(3):
        x, y = rng.standard_normal(shape), rng.integers(0, 3, shape[0])
        loss.forward(view.forward(x), y)
        view.backward(loss.backward())
        loss_ref.forward(reference.forward(x), y)
        reference.backward(loss_ref.backward())
        opt.step()
        opt_ref.step()


def test_fused_view_trains_the_models_own_arrays(tmp_path, rng):
    model, reference = _cnn(), _cnn()
    view = fuse(model)
    assert {id(p.value) for p in view.parameters()} == {id(p.value) for p in model.parameters()}
    _train_side_by_side(view, model, reference, rng, (5, 1, 8, 8))
    for (key, a), (_, b) in zip(model.state_dict().items(), reference.state_dict().items(), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12, err_msg=key)
    # Saving the model writes the unfused architecture, which loads into the same numbers.
    path = save(model, tmp_path / "m.npz")
    loaded = load(path)
    assert "ReLUMaxPool2D" not in repr(loaded)
    x = rng.standard_normal((2, 1, 8, 8))
    np.testing.assert_array_equal(loaded.eval().forward(x), model.eval().forward(x))


def test_fused_view_keeps_the_train_and_eval_mode():
    model = _cnn().eval()
    view = fuse(model)
    assert not view.training and not view.layers[2].training and not view.layers[3].training
    view.train()
    assert all(
        layer.training for _, layer in model.named_layers() if not layer.children()
    )  # the shared leaves


def test_fused_layer_is_not_a_saved_layer_type():
    assert "ReLUMaxPool2D" not in import_all_layers()
    assert repr(ReLUMaxPool2D(ReLU(), MaxPool2D(2))) == "ReLUMaxPool2D(ReLU(), MaxPool2D(2))"
    layer = ReLUMaxPool2D(ReLU(), MaxPool2D(2))
    assert layer.output_shape((1, 2, 7, 6)) == (1, 2, 3, 3)
    assert layer.flops((1, 2, 8, 8)) == ReLU().flops((1, 2, 8, 8)) + MaxPool2D(2).flops((1, 2, 8, 8))


def test_sequential_forward_and_backward_are_a_plain_chain():
    # No fusion inside Sequential: each layer's forward and backward runs, in order.
    calls: list[str] = []

    class Spy(ReLU, register=False):  # a test double, not a layer type
        def forward(self, x):
            calls.append("forward")
            return super().forward(x)

        def backward(self, dy):
            calls.append("backward")
            return super().backward(dy)

    net = Sequential(Spy(), MaxPool2D(2))
    x = np.random.default_rng(0).standard_normal((1, 1, 4, 4))
    net.backward(np.ones_like(net.forward(x)))
    assert calls == ["forward", "backward"]


def test_fit_trains_through_the_fused_view(monkeypatch, rng):
    from cnnlab.train.loop.fit import fit

    calls = []
    original = ReLUMaxPool2D.forward

    def counting(self, x):
        calls.append(x.shape)
        return original(self, x)

    monkeypatch.setattr(ReLUMaxPool2D, "forward", counting)
    model = _cnn()
    x, y = rng.standard_normal((12, 1, 8, 8)), rng.integers(0, 3, 12)
    before = model.state_dict()
    fit(
        model,
        SoftmaxCrossEntropy(),
        SGD(model.parameters(), lr=0.1),
        (x, y),
        epochs=1,
        batch_size=6,
        verbose=False,
    )
    assert len(calls) == 3 * 2  # three fused pairs (one in the residual block) per batch, two batches
    assert any(not np.array_equal(before[k], v) for k, v in model.state_dict().items())  # trained
    assert [type(layer).__name__ for layer in model.layers].count("ReLUMaxPool2D") == 0


# ---- BatchNorm -> ReLU ----------------------------------------------------------------------


def _bn_relu_pairs(kind, shape, dtype):
    """A fused BatchNormReLU and an unfused BatchNorm -> ReLU with equal parameters."""
    rng = np.random.default_rng(1)
    pairs = []
    weight, bias = rng.uniform(-1.5, 1.5, shape[1]), rng.uniform(-0.5, 0.5, shape[1])
    for _ in range(2):
        bn = kind(shape[1], momentum=0.3).astype(dtype)
        bn.params["weight"][:] = weight  # some negative: ReLU zeroes whole channels' tops
        bn.params["bias"][:] = bias
        pairs.append((bn, ReLU()))
    (bn, relu), (bn_ref, relu_ref) = pairs
    return BatchNormReLU(bn, relu), Sequential(bn_ref, relu_ref)


@pytest.mark.parametrize(
    ("kind", "shape"),
    [
        (BatchNorm2D, (4, 3, 5, 6)),
        (BatchNorm2D, (32, 4, 32, 32)),  # 2**17 values: the channel rows run on two threads
        (BatchNorm1D, (16, 5)),
        (BatchNorm1D, (4, 3, 7)),
    ],
    ids=repr,
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batchnorm_relu_equals_the_two_layers(rng, kind, shape, dtype):
    fused, plain = _bn_relu_pairs(kind, shape, dtype)
    # Bit for bit on conv-shaped input. For BatchNorm1D the unfused ReLU hands BatchNorm a
    # gradient in another memory order, so its per-feature sums add in another order.
    same = np.testing.assert_array_equal
    if kind is BatchNorm1D:
        tol = 1e-13 if dtype == np.float64 else 1e-5

        def same(a, b, err_msg=""):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=err_msg)

    for training in (True, False, True):
        fused.train(training)
        plain.train(training)
        for x in _inputs(rng, shape):
            x = (x * 2 + 0.3).astype(dtype)
            y = fused.forward(x)
            np.testing.assert_array_equal(y, plain.forward(x))
            dy = rng.standard_normal(y.shape).astype(dtype)
            same(fused.backward(dy), plain.backward(dy))
            for key in ("weight", "bias"):
                same(fused.bn.grads[key], plain.layers[0].grads[key], err_msg=key)
            for key, value in fused.bn.buffers.items():  # running statistics, updated in training
                np.testing.assert_array_equal(value, plain.layers[0].buffers[key])
            assert (y >= 0).all() and y.dtype == dtype


def test_batchnorm_relu_matches_torch(torch, rng):
    fused, _ = _bn_relu_pairs(BatchNorm2D, (6, 3, 4, 5), np.float64)
    x = rng.standard_normal((6, 3, 4, 5))
    dy = rng.standard_normal(x.shape)
    y, dx = fused.forward(x), fused.backward(dy)
    module = torch.nn.Sequential(torch.nn.BatchNorm2d(3, momentum=0.3), torch.nn.ReLU()).double()
    with torch.no_grad():
        module[0].weight.copy_(torch.from_numpy(fused.bn.params["weight"]))
        module[0].bias.copy_(torch.from_numpy(fused.bn.params["bias"]))
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = module(xt)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(fused.bn.grads["weight"], module[0].weight.grad.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(fused.bn.grads["bias"], module[0].bias.grad.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(fused.bn.buffers["running_var"], module[0].running_var.numpy(), atol=1e-12)


def test_fuse_pairs_batchnorm_with_a_relu_unless_the_relu_goes_with_a_pool():
    model = Sequential(
        BatchNorm2D(2),
        ReLU(),
        MaxPool2D(2),
        BatchNorm2D(2),
        ReLU(),
        ReLU(),
        BatchNorm2D(2),
        Flatten(),
        BatchNorm1D(2),
        ReLU(),
    )
    view = fuse(model)
    kinds = [type(layer).__name__ for layer in view.layers]
    assert kinds == [
        "BatchNorm2D",
        "ReLUMaxPool2D",
        "BatchNormReLU",
        "ReLU",
        "BatchNorm2D",
        "Flatten",
        "BatchNormReLU",
    ]
    assert view.layers[2].bn is model.layers[3] and view.layers[2].relu is model.layers[4]
    assert "BatchNormReLU" not in import_all_layers()
    layer = view.layers[2]
    assert layer.output_shape((1, 2, 3, 3)) == (1, 2, 3, 3)
    assert layer.flops((1, 2, 3, 3)) == BatchNorm2D(2).flops((1, 2, 3, 3)) + ReLU().flops((1, 2, 3, 3))
    with pytest.raises(ShapeError, match=r"BatchNormReLU: dy must have shape \(1, 2, 3, 3\)"):
        layer.forward(np.ones((1, 2, 3, 3)))
        layer.backward(np.ones((1, 2, 3, 4)))


def test_fused_batchnorm_view_trains_like_the_model(rng):
    def net(seed):
        return Sequential(
            Conv2D(1, 3, 3, padding=1, rng=seed),
            BatchNorm2D(3),
            ReLU(),
            Residual(Sequential(Conv2D(3, 3, 3, padding=1, rng=seed + 1), BatchNorm2D(3), ReLU())),
            Flatten(),
            Dense(3 * 6 * 6, 3, rng=seed + 2),
        ).astype(np.float64)

    model, reference = net(0), net(0)
    view = fuse(model)
    assert [type(layer).__name__ for layer in view.layers][1] == "BatchNormReLU"
    assert type(view.layers[2].block.layers[1]).__name__ == "BatchNormReLU"
    _train_side_by_side(view, model, reference, rng, (5, 1, 6, 6))
    for (key, a), (_, b) in zip(model.state_dict().items(), reference.state_dict().items(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=key)


# ---- Residual -> ReLU -----------------------------------------------------------------------


@pytest.mark.parametrize("shortcut", [False, True], ids=["identity", "conv-shortcut"])
def test_residual_relu_is_bit_identical_to_the_two_layers(rng, shortcut):
    def net():
        block = Sequential(
            Conv2D(4, 4, 3, padding=1, rng=1), BatchNorm2D(4), ReLU(), Conv2D(4, 4, 3, padding=1, rng=2)
        )
        skip = Conv2D(4, 4, 1, rng=3) if shortcut else None
        return Sequential(Residual(block, skip), ReLU()).astype(np.float64)

    model, reference = net(), net()
    view = fuse(model)
    assert [type(layer).__name__ for layer in view.layers] == ["ResidualReLU"]
    assert type(view.layers[0].residual.block.layers[1]).__name__ == "BatchNormReLU"
    x = rng.standard_normal((32, 4, 32, 32))  # 2**17 values per map: the passes run on threads
    y = view.forward(x)
    np.testing.assert_array_equal(y, reference.forward(x))
    assert (y == 0).any() and (y > 0).any()
    dy = rng.standard_normal(y.shape)
    np.testing.assert_array_equal(view.backward(dy), reference.backward(dy))
    for (key, a), (_, b) in zip(model.state_dict().items(), reference.state_dict().items(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=key)
    grads = {p.path: p.grad for p in model.parameters()}
    for p in reference.parameters():
        np.testing.assert_array_equal(grads[p.path], p.grad, err_msg=p.path)
    layer = view.layers[0]
    assert layer.output_shape(x.shape) == x.shape
    assert layer.flops(x.shape) == model.layers[0].flops(x.shape) + ReLU().flops(x.shape)
    with pytest.raises(ShapeError, match=r"ResidualReLU: dy must have shape \(32, 4, 32, 32\)"):
        layer.backward(dy[:, :2])


def test_residual_relu_keeps_residuals_shape_error():
    view = fuse(Sequential(Residual(Sequential(Conv2D(2, 3, 1, rng=0))), ReLU()))
    with pytest.raises(
        ShapeError, match=r"Residual: block output and input \(identity shortcut\) must have the same shape"
    ):
        view.forward(np.ones((1, 2, 4, 4), np.float32))
