"""Learn mode prints the lecture's numbers, computed by the real layers."""

from __future__ import annotations

import pytest

from cnnlab.cli.main import main
from cnnlab.explain.activation_loss import explain_activation, explain_loss
from cnnlab.explain.backprop import Value, chain_rule_example, explain_backprop
from cnnlab.explain.conv import explain_conv
from cnnlab.explain.pool import explain_pool


def test_chain_rule_values_of_the_lecture() -> None:
    r = chain_rule_example()
    assert (r["q"], r["f"]) == (3.0, -12.0)
    assert (r["df/dz"], r["df/dq"], r["df/dx"], r["df/dy"]) == (3.0, -4.0, -4.0, -4.0)


def test_value_graph_accumulates_reused_nodes() -> None:
    a = Value(3.0)
    f = a * a + a  # df/da = 2a + 1 = 7
    f.backward()
    assert a.grad == 7.0


def test_backprop_text(capsys: pytest.CaptureFixture[str]) -> None:
    text, ok = explain_backprop()
    assert ok
    for line in (
        "q = x + y = -2 + 5 = 3",
        "f = q * z = 3 * -4 = -12",
        "df/dz = q = 3",
        "df/dq = z = -4",
        "df/dx = df/dq * dq/dx = -4 * 1 = -4",
        "df/dy = df/dq * dq/dy = -4 * 1 = -4",
    ):
        assert line in text
    assert "weights" in text and "deltas" in text and "agree" in text and "DISAGREE" not in text
    assert main(["explain", "backprop"]) == 0
    assert "f = q * z = 3 * -4 = -12" in capsys.readouterr().out


def test_conv_size_formula_and_dot_products() -> None:
    text, ok = explain_conv(5, 5, 1, kernel=3, stride=2, padding=1, values=[1.0] * 25)
    assert ok
    assert "height: floor((5 - 3 + 2*1) / 2) + 1 = 3" in text
    assert "width:  floor((5 - 3 + 2*1) / 2) + 1 = 3" in text
    assert "Same numbers as cnnlab.Conv2D.forward: yes" in text
    text1, _ = explain_conv(5, 5, 1, kernel=3, stride=1, padding=1)
    assert "floor((5 - 3 + 2*1) / 1) + 1 = 5" in text1
    assert text1.count("out[") == 25  # one dot product per output position


def test_conv_explains_a_kernel_that_does_not_fit(capsys: pytest.CaptureFixture[str]) -> None:
    text, ok = explain_conv(3, 3, 1, kernel=5, stride=1, padding=0)
    assert not ok
    assert "h + 2P = 3 + 2*0 = 3" in text and "floor((3 - 5 + 2*0) / 1) + 1 = -1 < 1" in text
    assert main(["explain", "conv", "--input", "3x3x1", "--kernel", "5"]) == 1


def test_pool_windows_and_gradient_routes() -> None:
    text, ok = explain_pool(4, 4, 2, mode="max")
    assert ok and "Output size: height floor((4 - 2 + 2*0) / 2) + 1 = 2" in text
    assert text.count("-> ") == 4
    text, ok = explain_pool(4, 4, 2, mode="avg")
    assert ok and "1/4 to every value" in text


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pool_ok_checks_the_layer_against_the_hand_computed_windows(monkeypatch, mode) -> None:
    text, ok = explain_pool(5, 6, 3, stride=1, mode=mode)  # overlapping windows
    assert ok and text.endswith("(forward and backward): yes")
    from cnnlab.layers.pooling import AvgPool2D, MaxPool2D

    layer = MaxPool2D if mode == "max" else AvgPool2D
    original = layer.backward
    monkeypatch.setattr(layer, "backward", lambda self, dy: 0.5 * original(self, dy))  # a wrong gradient
    text, ok = explain_pool(5, 6, 3, stride=1, mode=mode)
    assert not ok and text.endswith("(forward and backward): NO")


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "maxout"])
def test_activation_tables(name: str) -> None:
    text = explain_activation(name)
    rows = [line.split() for line in text.splitlines()[2:]]
    assert len(rows) == 13
    values = {float(r[0]): (float(r[1]), float(r[2])) for r in rows}
    if name == "relu":
        assert values[-1.0] == (0.0, 0.0) and values[2.0] == (2.0, 1.0)
    if name == "leaky_relu":
        assert values[-2.0] == (-0.2, 0.1)
    if name == "sigmoid":
        assert values[0.0] == (0.5, 0.25)


def test_loss_walkthrough() -> None:
    text, ok = explain_loss()
    assert ok and "L = (1/3) * (" in text and "same" in text
