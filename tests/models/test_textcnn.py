"""textcnn (Kim, 2014) as a Graph: parity with an equivalent PyTorch module in float64, options,
pretrained word vectors, and Grad-CAM over tokens (issue 27)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cnnlab.explain.text_cam import text_grad_cam
from cnnlab.interop import to_onnx, to_torch
from cnnlab.io import load, save
from cnnlab.models.textcnn import textcnn
from cnnlab.models.word_vectors import read_word_vectors


def torch_textcnn(
    torch: Any, V: int, D: int, widths: list[int], maps: int, K: int, masked: bool = True
) -> Any:
    nn = torch.nn

    class KimCNN(nn.Module):  # the usual PyTorch port of Kim's model
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(V, D, padding_idx=0)
            self.convs = nn.ModuleList([nn.Conv1d(D, maps, k) for k in widths])
            self.dropout = nn.Dropout(0.5)
            self.fc = nn.Linear(maps * len(widths), K)

        def forward(self, tokens: Any) -> Any:
            e = self.embed(tokens).transpose(1, 2)  # (N, D, L)
            maps = [torch.relu(conv(e)) for conv in self.convs]  # (N, maps, L - k + 1) each
            if masked:  # a window counts when its first token is real (not padding, id 0)
                maps = [m.masked_fill((tokens[:, None, : m.shape[2]] == 0), -torch.inf) for m in maps]
            pooled = [m.amax(dim=2) for m in maps]  # (N, maps) each
            return self.fc(self.dropout(torch.cat(pooled, dim=1)))

    return KimCNN().double()


@pytest.mark.parametrize("masked", [True, False])
def test_forward_and_backward_match_pytorch_float64(torch: Any, masked: bool) -> None:
    V, D, L, K, maps, widths = 30, 6, 11, 4, 5, [2, 3, 5]
    model = textcnn(V, L, K, rng=0, embedding_dim=D, widths=widths, maps=maps, mask_padding=masked)
    model = model.astype(np.float64).eval()
    ref = torch_textcnn(torch, V, D, widths, maps, K, masked).eval()
    state = model.state_dict()
    with torch.no_grad():
        ref.embed.weight.copy_(torch.from_numpy(state["embed.weight"]))
        for i, k in enumerate(widths):
            ref.convs[i].weight.copy_(torch.from_numpy(state[f"conv{k}.weight"]))
            ref.convs[i].bias.copy_(torch.from_numpy(state[f"conv{k}.bias"]))
        ref.fc.weight.copy_(torch.from_numpy(state["fc.weight"]))
        ref.fc.bias.copy_(torch.from_numpy(state["fc.bias"]))
    tokens = np.random.default_rng(1).integers(1, V, size=(7, L))
    for n, length in enumerate([11, 8, 5, 3, 2, 1, 6]):  # padding at the end, as the encoder writes it
        tokens[n, length:] = 0
    y = model.forward(tokens)
    t_tokens = torch.from_numpy(tokens)
    t_y = ref(t_tokens)
    np.testing.assert_allclose(y, t_y.detach().numpy(), rtol=0, atol=1e-12)
    dy = np.random.default_rng(2).standard_normal(y.shape)
    model.backward(dy)
    t_y.backward(torch.from_numpy(dy))
    grads = {f"{n}.{k}": layer.grads[k] for n, layer in model.children().items() for k in layer.grads}
    np.testing.assert_allclose(grads["embed.weight"], ref.embed.weight.grad.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(grads["fc.weight"], ref.fc.weight.grad.numpy(), rtol=0, atol=1e-12)
    for i, k in enumerate(widths):
        np.testing.assert_allclose(
            grads[f"conv{k}.weight"], ref.convs[i].weight.grad.numpy(), rtol=0, atol=1e-12
        )
        np.testing.assert_allclose(grads[f"conv{k}.bias"], ref.convs[i].bias.grad.numpy(), rtol=0, atol=1e-12)


def test_kim_defaults_and_round_trip(tmp_path: Path) -> None:
    model = textcnn(vocab_size=100, max_len=20, num_classes=3, rng=0)
    assert [n for n in model.nodes if n.startswith("conv")] == ["conv3", "conv4", "conv5"]
    assert model["conv3"].out_channels == 100 and model["dropout"].p == 0.5
    assert model["fc"].in_features == 300 and model.output_shape((2, 20)) == (2, 3)
    assert not model["embed"].params["weight"][0].any()  # the padding row
    x = np.random.default_rng(0).integers(0, 100, size=(4, 20))
    model.eval()
    loaded = load(save(model, tmp_path / "m.npz")).eval()
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_option_errors_are_named() -> None:
    with pytest.raises(ValueError, match=r"widths <= max_len \(4, the padded text length: raise it with"):
        textcnn(10, 4, 2, widths=[3, 5])
    with pytest.raises(ValueError, match=r"widths.*distinct"):
        textcnn(10, 8, 2, widths=[3, 3])


def test_pretrained_vectors_fill_rows_and_report_coverage(tmp_path: Path) -> None:
    path = tmp_path / "vec.txt"
    path.write_text("3 4\nthe 1 2 3 4\nCat 5 6 7 8\nzebra 0 0 0 1\n", encoding="utf-8")  # word2vec header
    tokens = ["<pad>", "<unk>", "the", "cat", "dog"]
    vectors = read_word_vectors(path, tokens)
    assert vectors.dim == 4 and vectors.ids.tolist() == [2, 3] and vectors.coverage == pytest.approx(2 / 3)
    assert "2 of 3 vocabulary tokens" in vectors.describe()
    model = textcnn(len(tokens), 8, 2, rng=0, vectors=vectors)
    weight = model["embed"].params["weight"]
    assert weight.shape == (5, 4)
    np.testing.assert_array_equal(weight[2:4], [[1, 2, 3, 4], [5, 6, 7, 8]])
    with pytest.raises(ValueError, match=r"embedding_dim.*dimension of the word vectors"):
        textcnn(len(tokens), 8, 2, embedding_dim=16, vectors=vectors)
    path.write_text("the 1 2\ncat 1 2 3\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 2 has 3 values; the first vector has 2"):
        read_word_vectors(path, tokens)


def test_grad_cam_points_at_the_deciding_token() -> None:
    V, L = 12, 10
    model = textcnn(V, L, 2, rng=0, embedding_dim=4, widths=[1], maps=1).astype(np.float64)
    embed = model["embed"].params["weight"]
    embed[:] = 0.0
    embed[7] = 1.0  # token 7 alone makes the one filter fire
    model["conv1"].params["weight"][:] = 1.0
    model["conv1"].params["bias"][:] = 0.0
    model["fc"].params["weight"][:] = np.array([[1.0], [-1.0]])
    ids = np.array([[3, 4, 7, 5, 0, 0, 0, 0, 0, 0]])
    weights = text_grad_cam(model, ids, target=0, length=4)
    assert weights.tolist() == [0.0, 0.0, 1.0, 0.0]
    assert model.training  # restored
    assert not text_grad_cam(model, ids, target=1, length=4).any()  # class 1 is against token 7


def test_to_torch_and_onnx_reproduce_textcnn(torch: Any, tmp_path: Path) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    model = textcnn(30, 12, 3, rng=0, embedding_dim=8, maps=4).eval()
    x = np.random.default_rng(0).integers(0, 30, size=(5, 12))
    module = to_torch(model.astype(np.float64)).eval()
    np.testing.assert_allclose(module(torch.from_numpy(x)).detach().numpy(), model.predict(x), atol=1e-12)
    model = model.astype(np.float32)
    path = to_onnx(model, tmp_path / "textcnn.onnx", (12,), dynamo=False)
    session = onnxruntime.InferenceSession(str(path))
    (y,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(y, model.predict(x), rtol=0, atol=1e-5)


def test_padding_never_wins_the_max_over_time() -> None:
    # A filter that fires on padding alone (its bias) decides a padded text only without the mask.
    V, L = 10, 8
    masked = textcnn(V, L, 2, rng=0, embedding_dim=3, widths=[2], maps=1).astype(np.float64).eval()
    plain = textcnn(V, L, 2, rng=0, embedding_dim=3, widths=[2], maps=1, mask_padding=False)
    plain = plain.astype(np.float64).eval()
    for model in (masked, plain):
        model["conv2"].params["weight"][:] = -1.0  # real tokens (positive rows) push it below 0
        model["conv2"].params["bias"][:] = 5.0  # a window of padding gives 5
        model["embed"].params["weight"][1:] = 10.0
        model["fc"].params["weight"][:] = np.array([[1.0], [0.0]])
        model["fc"].params["bias"][:] = 0.0
    ids = np.array([[3, 4, 5, 0, 0, 0, 0, 0]])
    assert plain.predict(ids)[0, 0] == 5.0  # the padding window won
    assert masked.predict(ids)[0, 0] == 0.0  # only windows starting at 3, 4, 5: ReLU(< 0) = 0
    assert masked["pool2"].name == "MaskedMaxPool1D" and masked.nodes["pool2"].inputs == ("relu2", "tokens")
