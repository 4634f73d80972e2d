"""Issue 25: the memory-bound passes run block by block (in cache) with the same bits.

BatchNorm's row kernels, the 2x2 max pool and the elementwise optimizers split their work
into blocks; each test runs the same computation with blocks of one row/channel/few elements
and as one block, and asks for identical results (and that the split really happened).
"""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.functional import batchnorm as fbn
from cnnlab.functional import pool as fpool
from cnnlab.layers.activations import ReLU
from cnnlab.layers.base import Layer
from cnnlab.layers.batchnorm import BatchNorm2D
from cnnlab.layers.fuse import BatchNormReLU, ReLUMaxPool2D
from cnnlab.layers.pooling import MaxPool2D
from cnnlab.optim import SGD, Adam, AdamW, Optimizer
from cnnlab.optim import base as optim_base


def _cnhw(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)  # NCHW view, CNHW memory


def _bn_step(relu: bool, x: np.ndarray, dy: np.ndarray) -> list[np.ndarray]:
    bn = BatchNorm2D(x.shape[1])
    bn.params["weight"][:] = np.linspace(0.5, 1.5, x.shape[1], dtype=np.float32)
    layer = BatchNormReLU(bn, ReLU()) if relu else bn
    y = layer.forward(x)
    dx = layer.backward(dy)
    return [np.array(y), np.array(dx), bn.grads["weight"], bn.grads["bias"], *bn.buffers.values()]


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("layout", [np.ascontiguousarray, _cnhw])
def test_batchnorm_blocks_give_the_same_bits(monkeypatch, relu, layout):
    rng = np.random.default_rng(0)
    x = layout(rng.standard_normal((6, 5, 7, 9), dtype=np.float32) * 3 + 1)
    dy = layout(rng.standard_normal((6, 5, 7, 9), dtype=np.float32))
    monkeypatch.setattr(fbn, "BLOCK_BYTES", 2**40)
    whole = _bn_step(relu, x, dy)
    monkeypatch.setattr(fbn, "BLOCK_BYTES", 1)  # one row per block
    assert len(fbn.row_blocks(0, 5, 6 * 7 * 9 * 4)) == 5
    for a, b in zip(_bn_step(relu, x, dy), whole, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("layout", [np.ascontiguousarray, _cnhw])
def test_max_pool_2x2_blocks_give_the_same_bits(monkeypatch, fused, layout):
    rng = np.random.default_rng(1)
    x = layout(np.round(rng.standard_normal((4, 6, 9, 8), dtype=np.float32), 1))  # ties
    dy = layout(rng.standard_normal((4, 6, 4, 4), dtype=np.float32))
    calls: list[tuple[int, int]] = []
    original = fpool._in_blocks

    def counting(work, c0, c1, channel_bytes):
        calls.append((c0, c1))
        original(work, c0, c1, channel_bytes)

    monkeypatch.setattr(fpool, "_in_blocks", counting)

    def run() -> list[np.ndarray]:
        layer = ReLUMaxPool2D(ReLU(), MaxPool2D(2)) if fused else MaxPool2D(2)
        return [np.array(layer.forward(x)), np.array(layer.backward(dy))]

    monkeypatch.setattr(fpool, "BLOCK_BYTES", 2**40)
    whole = run()
    monkeypatch.setattr(fpool, "BLOCK_BYTES", 1)  # one channel per block
    for a, b in zip(run(), whole, strict=True):
        np.testing.assert_array_equal(a, b)
    assert calls  # the pooling passes went through the blocks


class _W(Layer):
    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        rng = np.random.default_rng(2)
        self.params["weight"] = rng.standard_normal(shape).astype(np.float32)
        self.params["bias"] = rng.standard_normal(shape[0]).astype(np.float32)


@pytest.mark.parametrize(
    "make",
    [
        lambda p: Adam(p, lr=1e-2),
        lambda p: Adam(p, lr=1e-2, weight_decay=0.1),
        lambda p: AdamW(p, lr=1e-2),
        lambda p: SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
        lambda p: SGD(p, lr=0.1),
    ],
)
def test_elementwise_optimizers_in_blocks_give_the_same_bits(monkeypatch, make):
    def run(block: int) -> list[np.ndarray]:
        monkeypatch.setattr(optim_base, "BLOCK_ELEMENTS", block)
        layer = _W((37, 11))
        opt = make(layer.parameters())
        rng = np.random.default_rng(3)
        for _ in range(3):
            layer.grads = {k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in layer.params.items()}
            opt.step()
        return [*layer.params.values(), *(a for s in opt.state.values() for a in s.values())]

    for a, b in zip(run(16), run(2**40), strict=True):
        np.testing.assert_array_equal(a, b)


def test_optimizer_blocks_only_when_elementwise(monkeypatch):
    monkeypatch.setattr(optim_base, "BLOCK_ELEMENTS", 10)
    layer = _W((5, 7))
    layer.grads = {k: np.ones_like(v) for k, v in layer.params.items()}
    seen: list[int] = []

    class Norm(Optimizer):  # reads the whole parameter (a norm): must not be split
        def _update(self, value, grad, state, work):
            seen.append(value.size)

    Norm(layer.parameters(), lr=1.0).step()
    assert sorted(seen) == [5, 35]
    seen.clear()
    sgd = SGD(layer.parameters(), lr=1.0)
    sgd._update = lambda value, grad, state, work: seen.append(value.size)  # type: ignore[method-assign]
    sgd.step()
    assert sorted(seen) == [5, 5, 10, 10, 10]  # 35 elements in blocks of 10; the bias whole
