"""Embedding: a learned vector per token id, the first layer of a text CNN.

The input is a batch of token ids (integers); the output holds, for every position, the
row of the ``weight`` table for that token. cnnlab is channels-first, so the embedding
dimension comes out as the channel axis, ready for ``Conv1D`` without a transpose:

    indices (N, L)  ->  Embedding  ->  (N, D, L)  ->  Conv1D(D, ...)  ->  (N, C_out, L_out)

PyTorch's ``nn.Embedding`` returns (N, L, D), and text CNNs in PyTorch transpose it with
``.transpose(1, 2)`` before ``nn.Conv1d``; cnnlab's output equals that transposed tensor.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.errors import ShapeError, arg_error, check_int, is_int
from cnnlab.functional.embedding import embedding_backward, embedding_forward
from cnnlab.functional.fpstate import quiet_fp_method
from cnnlab.init import RngLike, make_rng
from cnnlab.layers.base import Layer, TorchSpec, config_int, unsupported_torch
from cnnlab.utils import DEFAULT_DTYPE


class Embedding(Layer):
    """A lookup table: token id ``v`` becomes the learned vector ``weight[v]`` (D numbers).

    Args:
        num_embeddings: size of the vocabulary (V); ids run from 0 to V - 1.
        embedding_dim: length of each vector (D), the channels of the output.
        padding_idx: the id of the padding token, or None. Its row starts at zeros and gets
            no gradient, so it stays zero (as in PyTorch). A negative value counts from
            the end (-1 is V - 1).
        rng: seed or Generator for the initial weights.

    Weights: ``weight`` (V, D), float32, drawn from N(0, 1) (PyTorch's default).

    Backward: the gradient of row v is dy summed over every position holding token v
    (``cnnlab.functional.embedding``: one ``np.bincount`` per dimension, about 2x faster
    than ``np.add.at``); rows of absent tokens get zero. There is no gradient for the
    integer input: ``backward`` returns None.

    Shape:
        - Input: (N, L) integer token ids in [0, V)
        - Output: (N, D, L), channels-first: PyTorch's (N, L, D) transposed

    Example:
        >>> import numpy as np
        >>> from cnnlab.layers.embedding import Embedding
        >>> emb = Embedding(10_000, 300, padding_idx=0, rng=0)
        >>> emb
        Embedding(10000, 300, padding_idx=0)
        >>> tokens = np.array([[5, 42, 7, 0, 0], [9, 3, 3, 3, 1]])  # (N=2, L=5), 0 pads
        >>> emb.forward(tokens).shape
        (2, 300, 5)
        >>> bool(emb.forward(tokens)[0, :, 3].any())  # the padding row is zeros
        False
    """

    # nn.Embedding returns (N, L, D): ChannelsFirstEmbedding is nn.Embedding + transpose(1, 2).
    torch = TorchSpec("cnnlab.interop.torch_modules.ChannelsFirstEmbedding", onnx_ops=("Gather", "Transpose"))

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        rng: RngLike = None,
    ) -> None:
        super().__init__()
        V = check_int("Embedding", "num_embeddings", num_embeddings)
        check_int("Embedding", "embedding_dim", embedding_dim)
        if padding_idx is not None and (not is_int(padding_idx) or not -V <= padding_idx < V):
            raise arg_error("Embedding", "padding_idx", f"None or an int in [-{V}, {V - 1}]", padding_idx)
        self.num_embeddings, self.embedding_dim = V, int(embedding_dim)
        self.padding_idx = None if padding_idx is None else int(padding_idx)
        self._pad = None if padding_idx is None else int(padding_idx) % V  # the row, counted from 0
        weight = make_rng(rng).standard_normal((V, self.embedding_dim)).astype(DEFAULT_DTYPE)
        if self._pad is not None:
            weight[self._pad] = 0
        self.params["weight"] = weight

    # ---- the PyTorch table entry --------------------------------------------------------
    def torch_args(self) -> dict[str, Any]:
        return {
            "num_embeddings": self.num_embeddings,
            "embedding_dim": self.embedding_dim,
            "padding_idx": self.padding_idx,
        }

    @classmethod
    def from_torch_args(cls, module: Any) -> dict[str, Any]:
        if module.max_norm is not None or module.scale_grad_by_freq:
            raise unsupported_torch(module, "max_norm and scale_grad_by_freq are not supported")
        return {
            "num_embeddings": module.num_embeddings,
            "embedding_dim": module.embedding_dim,
            "padding_idx": module.padding_idx,
        }

    def input_dtype(self) -> np.dtype | None:
        """Token ids: int64 (what ``to_onnx`` feeds the exported model)."""
        return np.dtype(np.int64)

    # ---- sizes --------------------------------------------------------------------------
    def _check_indices(self, x: Any) -> np.ndarray:
        """Return ``x`` as (N, L) integers in [0, V), or raise the error that says what is wrong."""
        if not isinstance(x, np.ndarray):
            raise TypeError(f"Embedding: input must be a numpy.ndarray. Received: {type(x).__name__}")
        if x.ndim != 2:
            raise ShapeError(
                f"Embedding: input must have shape (N, L) (token ids). Received: shape {x.shape}"
            )
        if x.dtype.kind not in "iu":
            raise TypeError(
                f"Embedding: input must hold integer token ids (an int dtype). Received: dtype {x.dtype}"
            )
        if x.size:
            lo, hi = int(x.min()), int(x.max())
            if lo < 0 or hi >= self.num_embeddings:
                bad = lo if lo < 0 else hi
                where = tuple(int(i) for i in np.argwhere(x == bad)[0])
                raise IndexError(
                    f"Embedding: token ids must be in [0, {self.num_embeddings - 1}] "
                    f"(num_embeddings={self.num_embeddings}). Received: {bad} at position {where} "
                    f"of input shape {x.shape}"
                )
        return x

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(input_shape) != 2:
            raise ShapeError(
                f"Embedding: input must have shape (N, L) (token ids). Received: shape {tuple(input_shape)}"
            )
        N, L = input_shape
        return (N, self.embedding_dim, L)

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """0: a lookup copies rows and computes nothing."""
        return 0

    @classmethod
    def config_parameters(cls, args: dict[str, Any]) -> int:
        """V * D table entries."""
        return config_int(args.get("num_embeddings")) * config_int(args.get("embedding_dim"))

    # ---- the two phases ---------------------------------------------------------------
    @quiet_fp_method
    def forward(self, x: np.ndarray) -> np.ndarray:
        """y[n, :, t] = weight[x[n, t]]: the rows for the tokens, channels-first."""
        indices = self._check_indices(x)
        self._cache = indices
        return embedding_forward(self.params["weight"], indices)  # (N, D, L), a view of (N, L, D)

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> None:  # type: ignore[override]
        """Write grads["weight"] (dy summed per token, the padding row 0); return None."""
        indices = self._cached()
        N, L = indices.shape
        if dy.shape != (N, self.embedding_dim, L):
            raise ShapeError(
                f"Embedding: dy must have shape {(N, self.embedding_dim, L)} (the output's). "
                f"Received: shape {dy.shape}"
            )
        dy = dy.astype(self.params["weight"].dtype, copy=False)
        self.grads["weight"] = embedding_backward(dy, indices, self.num_embeddings, self._pad)  # (V, D)
        return None  # integer ids have no gradient
