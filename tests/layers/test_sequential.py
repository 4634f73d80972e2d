"""Sequential: a whole CNN with BatchNorm and Residual blocks against PyTorch; summary()."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.errors import ShapeError
from cnnlab.layers.activations import ReLU
from cnnlab.layers.batchnorm import BatchNorm2D
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.dense import Dense
from cnnlab.layers.pooling import MaxPool2D
from cnnlab.layers.reshape import Flatten
from cnnlab.layers.residual import Residual
from cnnlab.layers.sequential import Sequential, _human, format_summary
from torch_compare import compare_with_torch


def _cnnlab_net() -> Sequential:
    # (N, 1, 8, 8) -> conv 8x8 -> residual 8x8 -> residual with stride 2 -> 4x4 -> pool 2x2
    return Sequential(
        Conv2D(1, 4, 3, padding=1, rng=0),
        BatchNorm2D(4),
        ReLU(),
        Residual(
            Sequential(
                Conv2D(4, 4, 3, padding=1, bias=False, rng=1),
                BatchNorm2D(4),
                ReLU(),
                Conv2D(4, 4, 3, padding=1, bias=False, rng=2),
                BatchNorm2D(4),
            )
        ),
        ReLU(),
        Residual(
            Sequential(Conv2D(4, 8, 3, stride=2, padding=1, rng=3), BatchNorm2D(8)),
            Sequential(Conv2D(4, 8, 1, stride=2, rng=4), BatchNorm2D(8)),
        ),
        MaxPool2D(2),
        Flatten(),
        Dense(8 * 2 * 2, 3, rng=5),
    )


def _torch_net(torch):
    nn = torch.nn

    class TorchResidual(nn.Module):
        def __init__(self, block, shortcut=None):
            super().__init__()
            self.block = block
            self.shortcut = shortcut

        def forward(self, x):
            return self.block(x) + (x if self.shortcut is None else self.shortcut(x))

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        TorchResidual(
            nn.Sequential(
                nn.Conv2d(4, 4, 3, padding=1, bias=False),
                nn.BatchNorm2d(4),
                nn.ReLU(),
                nn.Conv2d(4, 4, 3, padding=1, bias=False),
                nn.BatchNorm2d(4),
            )
        ),
        nn.ReLU(),
        TorchResidual(
            nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8)),
            nn.Sequential(nn.Conv2d(4, 8, 1, stride=2), nn.BatchNorm2d(8)),
        ),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 2 * 2, 3),
    ).double()
    with torch.no_grad():  # non-trivial BatchNorm affine params and running statistics
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return net


@pytest.mark.parametrize("training", [True, False])
def test_cnn_with_residual_blocks_matches_torch(torch, rng, training):
    ref = _torch_net(torch)
    ours = _cnnlab_net().astype(np.float64)
    ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    assert list(ours.state_dict()) == [k for k in ref.state_dict() if not k.endswith("num_batches_tracked")]
    ours.train(training)
    ref.train(training)
    for _ in range(2):  # two steps: running statistics (train) or their reuse (eval)
        x = rng.standard_normal((3, 1, 8, 8))
        dy = rng.standard_normal((3, 3))
        compare_with_torch(torch, ours, ref, x, dy)


def test_predict_uses_eval_mode_and_restores_training(torch, rng):
    ref = _torch_net(torch).eval()
    ours = _cnnlab_net().astype(np.float64)
    ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    x = rng.standard_normal((5, 1, 8, 8))
    before = ours.state_dict()
    out = ours.predict(x, batch_size=2)
    np.testing.assert_allclose(out, ref(torch.from_numpy(x)).detach().numpy(), rtol=0, atol=1e-10)
    assert ours.training and ours[3].block[1].training
    for key, value in ours.state_dict().items():  # eval mode left the running stats alone
        np.testing.assert_array_equal(value, before[key])


def _mnist_net() -> Sequential:
    return Sequential(
        Conv2D(1, 8, 3, padding=1, rng=0),
        BatchNorm2D(8),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        Dense(8 * 14 * 14, 10, rng=1),
    )


def test_summary_rows():
    rows = _mnist_net().summary((1, 28, 28), print_fn=None)
    assert [r["output_shape"] for r in rows] == [
        (8, 28, 28),
        (8, 28, 28),
        (8, 28, 28),
        (8, 14, 14),
        (1568,),
        (10,),
    ]
    assert [r["params"] for r in rows] == [8 * 9 + 8, 16, 0, 0, 0, 1568 * 10 + 10]
    assert rows[0]["formula"] == "floor((28 - 3 + 2*1) / 1) + 1 = 28"
    assert rows[3]["formula"] == "floor((28 - 2 + 2*0) / 2) + 1 = 14"
    assert [r["formula"] for r in rows[1:3] + rows[4:]] == [None, None, None, None]
    assert rows[1]["layer"] == "1: BatchNorm2D(8)"
    assert rows[0]["layer"].startswith("0: Conv2D(1, 8, ")


def test_summary_printed_table():
    printed: list[str] = []
    rows = _mnist_net().summary((1, 28, 28), print_fn=printed.append)
    assert len(printed) == 1
    lines = printed[0].splitlines()
    assert printed[0] == format_summary(rows, (1, 28, 28))
    assert lines[0] == "input: 1x28x28"
    assert lines[1].split() == ["layer", "output", "shape", "params", "FLOPs", "size", "formula"]
    assert set(lines[2].replace(" ", "")) == {"-"}
    assert len(lines) == 3 + len(rows) + 2
    conv = lines[3]
    assert conv.startswith("0: Conv2D(1, 8, ") and conv.endswith("floor((28 - 3 + 2*1) / 1) + 1 = 28")
    assert "8x28x28" in conv and " 80 " in conv
    assert lines[6].endswith("8x14x14       0       6.27k  floor((28 - 2 + 2*0) / 2) + 1 = 14")
    # columns line up: every row's output shape starts where the header's does
    column = lines[1].index("output shape")
    assert all(line[column - 2 : column] == "  " and line[column] != " " for line in lines[3:-2])
    assert lines[-2] == f"total parameters: {80 + 16 + 15690:,}" == "total parameters: 15,786"
    assert lines[-1].startswith(f"forward FLOPs per example: {_human(sum(r['flops'] for r in rows))} (")


def test_summary_counts_flops_of_conv_and_dense():
    rows = _mnist_net().summary((1, 28, 28), print_fn=None)
    assert rows[0]["flops"] == 2 * 1 * 3 * 3 * 8 * 28 * 28 + 8 * 28 * 28  # multiply-adds + bias
    assert rows[3]["flops"] == 8 * 14 * 14 * 2 * 2  # one op per window element
    assert rows[5]["flops"] == 2 * 1568 * 10 + 10


def test_summary_shape_error_names_the_layer():
    net = Sequential(Conv2D(1, 4, 3, rng=0), Flatten(), Dense(10, 2, rng=0))
    with pytest.raises(ShapeError, match=r"^layer 2 \(Dense\(10, 2\)\): Dense: input must have shape"):
        net.summary((1, 8, 8), print_fn=None)


def test_summary_of_residual_counts_nested_params():
    net = Sequential(Residual(Sequential(Conv2D(8, 8, 3, padding=1, rng=0), BatchNorm2D(8))), Flatten())
    rows = net.summary((8, 14, 14), print_fn=None)
    assert rows[0]["params"] == 8 * 8 * 9 + 8 + 16
    assert rows[0]["output_shape"] == (8, 14, 14)


def test_summary_rows_of_containers_are_one_line():
    net = Sequential(Residual(Sequential(Conv2D(8, 8, 3, padding=1, rng=0), BatchNorm2D(8))), Flatten())
    rows = net.summary((8, 14, 14), print_fn=None)
    assert "\n" not in rows[0]["layer"]
    assert rows[0]["layer"].startswith("0: Residual(Sequential(Conv2D(8, 8, ")
