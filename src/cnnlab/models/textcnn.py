"""``textcnn``: Kim's (2014) convolutional network for sentence classification, as a Graph.

    tokens (N, L) -> Embedding(V, D) -> (N, D, L)
        -> for each width k in widths: Conv1D(D, maps, k) -> ReLU -> GlobalMaxPool1D -> (N, maps)
        -> Concat -> (N, maps * len(widths)) -> Dropout(0.5) -> Dense(.., num_classes)

Each filter of width k detects one k-word phrase pattern; max-over-time pooling keeps its
strongest match anywhere in the text (Y. Kim, "Convolutional Neural Networks for Sentence
Classification", EMNLP 2014: widths 3, 4, 5 with 100 maps each, dropout 0.5).

Max over time skips padding: each pooling node reads its branch's feature maps and the
token ids (a two-input node, ``MaskedMaxPool1D``), so only windows that start at a real
token compete; a window of padding alone, which sees just the filter's bias, cannot win.
``mask_padding=False`` pools over all L positions, padding included, as the usual PyTorch
port of Kim's model does (``GlobalMaxPool1D``; the models of runs trained before this
option load as they were).

Node names (``embed``, ``conv3``, ``relu3``, ``pool3``, ..., ``cat``, ``dropout``, ``fc``)
are what ``cnnlab.explain.text_cam`` reads for "which words decided".
"""

from __future__ import annotations

from collections.abc import Sequence

from cnnlab.errors import arg_error, check_int
from cnnlab.init import RngLike, make_rng
from cnnlab.layers.activations import ReLU
from cnnlab.layers.conv1d import Conv1D
from cnnlab.layers.dense import Dense
from cnnlab.layers.dropout import Dropout
from cnnlab.layers.embedding import Embedding
from cnnlab.layers.graph import Graph
from cnnlab.layers.masked_pool1d import MaskedMaxPool1D
from cnnlab.layers.merge import Concat
from cnnlab.layers.pooling1d import GlobalMaxPool1D
from cnnlab.models.word_vectors import WordVectors

DEFAULT_WIDTHS = (3, 4, 5)
DEFAULT_EMBEDDING_DIM = 128


def textcnn(
    vocab_size: int,
    max_len: int,
    num_classes: int,
    rng: RngLike = None,
    embedding_dim: int | None = None,
    widths: Sequence[int] = DEFAULT_WIDTHS,
    maps: int = 100,
    dropout: float = 0.5,
    vectors: WordVectors | None = None,
    mask_padding: bool = True,
) -> Graph:
    """Kim's text CNN for token ids of length ``max_len`` from a vocabulary of ``vocab_size``.

    Args:
        vocab_size: V, rows of the embedding (id 0 is padding: its row stays zero).
        max_len: L, the padded text length; must be at least the widest filter.
        num_classes: K, outputs of the last Dense layer.
        rng: seed or Generator for every initial weight (in node order).
        embedding_dim: D (default 128, or the dimension of ``vectors``).
        widths: filter widths, one branch each (default 3, 4, 5).
        maps: filters per width (default 100).
        dropout: before the last layer (default 0.5).
        vectors: pretrained rows (``cnnlab.models.word_vectors.read_word_vectors``) copied
            into the embedding; the other rows keep their N(0, 1) draws.
        mask_padding: pool only over windows that start at a real token (id != 0; default),
            or over every position (False).

    Shape:
        - Input: (N, L) int token ids
        - Output: (N, K) scores

    Example:
        >>> import numpy as np
        >>> model = textcnn(vocab_size=50, max_len=12, num_classes=3, rng=0, embedding_dim=8, maps=4)
        >>> model.forward(np.ones((2, 12), dtype=np.int64)).shape
        (2, 3)
        >>> model.output_shape((2, 12))
        (2, 3)
    """
    V = check_int("textcnn", "vocab_size", vocab_size)
    L = check_int("textcnn", "max_len", max_len)
    K = check_int("textcnn", "num_classes", num_classes)
    check_int("textcnn", "maps", maps)
    if vectors is not None and embedding_dim is not None and embedding_dim != vectors.dim:
        raise arg_error(
            "textcnn",
            "embedding_dim",
            f"{vectors.dim}, the dimension of the word vectors {vectors.path}",
            embedding_dim,
        )
    D = check_int(
        "textcnn", "embedding_dim", embedding_dim or (vectors.dim if vectors else DEFAULT_EMBEDDING_DIM)
    )
    widths = list(widths)
    if not widths or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in widths):
        raise arg_error("textcnn", "widths", "a non-empty list of positive ints, e.g. [3, 4, 5]", widths)
    if len(set(widths)) != len(widths):
        raise arg_error("textcnn", "widths", "distinct widths (one branch each)", widths)
    if max(widths) > L:
        expected = f"widths <= max_len ({L}, the padded text length: raise it with text:PATH?max_len=N)"
        raise arg_error("textcnn", "widths", expected, widths)
    gen = make_rng(rng)
    g = Graph(inputs="tokens")
    embed = Embedding(V, D, padding_idx=0, rng=gen)
    if vectors is not None and len(vectors.ids):
        embed.params["weight"][vectors.ids] = vectors.rows  # (M, D) into (V, D)
    g.add("embed", embed, "tokens")  # (N, D, L)
    for k in widths:
        g.add(f"conv{k}", Conv1D(D, maps, kernel_size=k, rng=gen), "embed")  # (N, maps, L - k + 1)
        g.add(f"relu{k}", ReLU(), f"conv{k}")
        if mask_padding:  # the ids say where the padding is
            g.add(f"pool{k}", MaskedMaxPool1D(pad_id=0), [f"relu{k}", "tokens"])  # (N, maps)
        else:
            g.add(f"pool{k}", GlobalMaxPool1D(), f"relu{k}")  # (N, maps)
    g.add("cat", Concat(axis=1), [f"pool{k}" for k in widths])  # (N, maps * len(widths))
    g.add("dropout", Dropout(dropout, rng=gen), "cat")
    g.add("fc", Dense(maps * len(widths), K, rng=gen), "dropout")  # (N, K)
    g.output("fc")
    return g
