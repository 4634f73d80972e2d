"""What decides a model's dtype, and the dtype of its input (token ids) in an ONNX export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.interop.onnx import to_onnx
from cnnlab.interop.torch import to_torch
from cnnlab.layers.activations import ReLU
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.conv1d import Conv1D
from cnnlab.layers.dense import Dense
from cnnlab.layers.embedding import Embedding
from cnnlab.layers.graph import Graph
from cnnlab.layers.pooling import MaxPool2D
from cnnlab.layers.pooling1d import GlobalMaxPool1D
from cnnlab.layers.residual import Residual
from cnnlab.layers.sequential import Sequential


def test_a_first_layer_without_parameters_does_not_decide_the_dtype(torch: Any) -> None:
    model = Sequential(MaxPool2D(2), Conv2D(1, 1, 1, rng=0)).astype(np.float64)
    assert model.dtype == np.float64
    assert to_torch(model)[1].weight.dtype == torch.float64  # was float32: MaxPool2D decided
    graph = Graph("x")
    graph.add("pool", MaxPool2D(2), "x")
    graph.output(graph.add("conv", Conv2D(1, 1, 1, rng=0), "pool"))
    assert graph.astype(np.float64).dtype == np.float64
    assert Sequential(ReLU()).dtype == np.float32  # no arrays at all: the default


def test_input_dtype_is_asked_of_the_layer_that_reads_the_input() -> None:
    text = Sequential(Embedding(10, 4, rng=0), Conv1D(4, 3, 3, rng=1))
    assert text.input_dtype() == np.int64
    assert Sequential(Conv2D(1, 1, 1, rng=0)).input_dtype() is None  # the model's float dtype
    assert Residual(Sequential(Embedding(10, 4, rng=0))).input_dtype() == np.int64
    graph = Graph("ids")
    graph.output(graph.add("embed", Embedding(10, 4, rng=0), "ids"))
    assert graph.input_dtype() == np.int64


def test_a_text_model_exports_to_onnx_with_int64_token_ids(
    torch: Any, onnxruntime: Any, tmp_path: Path
) -> None:
    model = Sequential(
        Embedding(20, 6, padding_idx=0, rng=0),
        Conv1D(6, 5, 3, padding="same", rng=1),
        ReLU(),
        GlobalMaxPool1D(),
        Dense(5, 3, rng=2),
    )
    for dynamo in (False, True):
        path = to_onnx(model, tmp_path / f"text-{dynamo}.onnx", (9,), dynamo=dynamo)
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert session.get_inputs()[0].type == "tensor(int64)"
        ids = np.random.default_rng(0).integers(0, 20, size=(4, 9))
        (out,) = session.run(None, {"input": ids})
        np.testing.assert_allclose(out, model.predict(ids), rtol=0, atol=1e-5)
