"""Stateless embedding kernels: look up rows of a table, and add gradients back into rows.

Forward is a gather, ``weight[indices]``. Backward is the reverse, a scatter-add: the
gradient of table row ``v`` is the sum of dy over every position where token ``v``
occurs (a word used five times in a batch gets five contributions). Rows of tokens that do
not occur get zero.

Three ways to do the scatter-add, all giving the same sums (up to float rounding order):

- ``np.add.at(dW, indices, rows)``: the textbook one-liner (``embedding_backward_add_at``,
  the readable reference);
- sort the positions by token, then one ``np.add.reduceat`` sums each run of equal tokens
  (``embedding_backward_sort``);
- one ``np.bincount`` per embedding dimension, with dy as weights (``embedding_backward``).

``benchmarks/bench_text_layers.py`` times the three on (64, 200) tokens, a 10,000-word
vocabulary and 300 dimensions, float32, on 2 shared cores (medians of interleaved rounds,
three runs): bincount took 0.41-0.49x the time of add.at (e.g. 39 vs 85 ms), the sort
0.56-0.69x on Zipf-distributed tokens but 1.25-1.58x on uniform ones. The layer uses bincount.
"""

from __future__ import annotations

import numpy as np


def embedding_forward(weight: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Rows of ``weight`` (V, D) for ``indices`` (N, L), channels-first: (N, D, L).

    The result is a transposed view of (N, L, D) memory (PyTorch's ``nn.Embedding`` output).

    Example:
        >>> w = np.arange(6.0).reshape(3, 2)  # 3 tokens, 2 dimensions
        >>> embedding_forward(w, np.array([[2, 0, 2]])).tolist()
        [[[4.0, 0.0, 4.0], [5.0, 1.0, 5.0]]]
    """
    return np.take(weight, indices, axis=0).transpose(0, 2, 1)  # (N, L, D) -> (N, D, L), a view


def _rows(dy: np.ndarray) -> np.ndarray:
    """dy (N, D, L) as one row per position: (N*L, D)."""
    N, D, L = dy.shape
    return dy.transpose(0, 2, 1).reshape(N * L, D)  # (N*L, D); a copy unless dy is (N, L, D) memory


def embedding_backward(
    dy: np.ndarray, indices: np.ndarray, num_embeddings: int, padding_idx: int | None = None
) -> np.ndarray:
    """dL/dweight (V, D) from dy (N, D, L): dy summed per token; the padding row stays 0.

    For each embedding dimension d, ``np.bincount(indices, weights=dy[:, d, :])`` is the
    per-token sum of that dimension: D vectorized calls over the N*L positions, written as
    the rows of a (D, V) array and transposed once into the (V, D) gradient. Channels-first
    dy is already one contiguous (N*L,) run per dimension after one cheap copy. The sums are
    accumulated in float64 (bincount's) and rounded once.

    Example:
        >>> dy = np.array([[[1.0, 2.0, 4.0]]])  # (N=1, D=1, L=3)
        >>> embedding_backward(dy, np.array([[2, 0, 2]]), 3).ravel().tolist()
        [2.0, 0.0, 5.0]
    """
    N, D, L = dy.shape
    flat = indices.reshape(-1)  # (N*L,)
    per_dim = np.ascontiguousarray(dy.transpose(1, 0, 2)).reshape(D, N * L)  # (D, N*L)
    dW_t = np.empty((D, num_embeddings), dtype=dy.dtype)  # (D, V)
    for d in range(D):
        dW_t[d] = np.bincount(flat, weights=per_dim[d], minlength=num_embeddings)
    if padding_idx is not None:
        dW_t[:, padding_idx] = 0  # the padding token's vector is not trained (as in PyTorch)
    return np.ascontiguousarray(dW_t.T)  # (V, D)


def embedding_backward_sort(
    dy: np.ndarray, indices: np.ndarray, num_embeddings: int, padding_idx: int | None = None
) -> np.ndarray:
    """Sort the positions by token; ``np.add.reduceat`` then sums each run of equal tokens.

    Example:
        >>> dy = np.array([[[1.0, 2.0, 4.0]]])
        >>> embedding_backward_sort(dy, np.array([[2, 0, 2]]), 3).ravel().tolist()
        [2.0, 0.0, 5.0]
    """
    flat = indices.reshape(-1)  # (N*L,)
    order = np.argsort(flat, kind="stable")  # positions grouped by token id
    tokens = flat[order]  # (N*L,), sorted
    starts = np.flatnonzero(np.r_[True, tokens[1:] != tokens[:-1]])  # first position of each run
    rows = _rows(dy)[order]  # (N*L, D), in token order
    dW = np.zeros((num_embeddings, dy.shape[1]), dtype=dy.dtype)  # (V, D)
    dW[tokens[starts]] = np.add.reduceat(rows, starts, axis=0)  # one sum per distinct token
    if padding_idx is not None:
        dW[padding_idx] = 0
    return dW


def embedding_backward_add_at(
    dy: np.ndarray, indices: np.ndarray, num_embeddings: int, padding_idx: int | None = None
) -> np.ndarray:
    """The readable reference: ``np.add.at`` adds each position's dy to its token's row.

    ``np.add.at`` (unlike ``dW[indices] += rows``) adds repeated indices once per occurrence.

    Example:
        >>> dy = np.array([[[1.0, 2.0, 4.0]]])
        >>> embedding_backward_add_at(dy, np.array([[2, 0, 2]]), 3).ravel().tolist()
        [2.0, 0.0, 5.0]
    """
    dW = np.zeros((num_embeddings, dy.shape[1]), dtype=dy.dtype)  # (V, D)
    np.add.at(dW, indices.reshape(-1), _rows(dy))
    if padding_idx is not None:
        dW[padding_idx] = 0
    return dW
