"""``MaskedMaxPool1D``: max over time that skips padding, told where it is by the token ids.

A batch of texts is padded to one length with the padding id (0, ``<pad>``). Plain max over
time (``GlobalMaxPool1D``) looks at every position, so a window made of padding, which sees
only the filter's bias, can win. This layer reads two tensors, the feature maps and the
token ids the graph started from, and lets only the positions of real tokens compete:

    features (N, C, L_out), token ids (N, L) -> (N, C)
    position t is real  <=>  ids[n, t] != pad_id          (t < L_out <= L)

Position t of a stride-1 Conv1D without left padding is the window that starts at token t,
so a window counts when its first token is real; the windows that run past the last token
see the padding row of the embedding (zeros) as a "same" convolution would. A text with no
real token at all (every id is ``pad_id``) keeps its first position, so every row has a max.

Inside ``textcnn`` each branch's pooling node reads ``[relu_k, "tokens"]`` (a two-input node
of the ``Graph``), so the lengths travel with the ids and the model stays one-input.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnnlab.errors import ShapeError, arg_error, is_int
from cnnlab.functional.fpstate import quiet_fp_method
from cnnlab.functional.pool1d import global_max_pool1d, global_max_pool1d_backward
from cnnlab.layers.base import Layer, TorchSpec


def real_positions(ids: np.ndarray, length: int, pad_id: int = 0) -> np.ndarray:
    """(N, L) token ids -> (N, length) boolean mask of the positions whose token is not padding.

    Rows with no real token keep position 0 (so a max exists).

    Example:
        >>> real_positions(np.array([[5, 7, 0, 0], [0, 0, 0, 0]]), 3).astype(int).tolist()
        [[1, 1, 0], [1, 0, 0]]
    """
    real = ids[:, :length] != pad_id  # (N, length)
    real[:, 0] |= ~real.any(axis=1)  # an empty text: its first window stands in
    return real


class MaskedMaxPool1D(Layer):
    """Max over time over the positions whose token is not ``pad_id``; reads (features, ids).

    Args:
        pad_id: the padding token id (0, ``<pad>``, in cnnlab's vocabularies).

    Shape:
        - Inputs: features (N, C, L_out) floats, token ids (N, L) ints with L_out <= L.
        - Output: (N, C)

    The gradient goes to the winning real position of each map (the first on ties); the ids
    get none (``backward`` returns ``(dx, None)``).

    Example:
        >>> x = np.array([[[1.0, 4.0, 9.0]], [[3.0, 2.0, 1.0]]])  # (N=2, C=1, L_out=3)
        >>> ids = np.array([[5, 6, 0, 0], [8, 0, 0, 0]])  # (N=2, L=4): lengths 2 and 1
        >>> MaskedMaxPool1D().forward(x, ids).tolist()  # the 9 sits on padding
        [[4.0], [3.0]]
    """

    torch = TorchSpec("cnnlab.interop.torch_modules.MaskedMaxPool1d", onnx_ops=("Where", "ReduceMax"))
    #: Two inputs (the Graph's multi-input contract, ``cnnlab.layers.merge``).
    num_inputs = 2

    def torch_args(self) -> dict[str, Any]:
        return {"pad_id": self.pad_id}

    @classmethod
    def from_torch_args(cls, module: Any) -> dict[str, Any]:
        return {"pad_id": int(module.pad_id)}

    def __init__(self, pad_id: int = 0) -> None:
        super().__init__()
        if not is_int(pad_id) or pad_id < 0:
            raise arg_error("MaskedMaxPool1D", "pad_id", "an int >= 0 (the padding token id)", pad_id)
        self.pad_id = int(pad_id)

    def __call__(self, x: np.ndarray, *more: np.ndarray) -> np.ndarray:
        return self.forward(x, *more)

    @quiet_fp_method
    def forward(self, x: np.ndarray, ids: np.ndarray) -> np.ndarray:  # type: ignore[override]
        self._check_input(x, ndims=(3,))
        if not isinstance(ids, np.ndarray) or ids.dtype.kind not in "iu":
            got = f"dtype {ids.dtype}" if isinstance(ids, np.ndarray) else type(ids).__name__
            raise TypeError(f"{self.name}: input 1 must be the integer token ids (N, L). Received: {got}")
        self.output_shape(x.shape, ids.shape)
        real = real_positions(ids, x.shape[2], self.pad_id)  # (N, L_out)
        y, arg = global_max_pool1d(x, real)  # (N, C)
        self._cache = (x.shape, arg)
        return y

    @quiet_fp_method
    def backward(self, dy: np.ndarray) -> tuple[np.ndarray, None]:  # type: ignore[override]
        x_shape, arg = self._cached()
        if dy.shape != tuple(x_shape[:2]):
            raise ShapeError(
                f"{self.name}: dy must have shape {tuple(x_shape[:2])}. Received: shape {dy.shape}"
            )
        return global_max_pool1d_backward(dy, arg, x_shape), None  # (N, C, L_out); ids: no gradient

    def output_shape(self, input_shape: tuple[int, ...], *more: tuple[int, ...]) -> tuple[int, ...]:
        if len(more) != 1:
            raise ShapeError(
                f"{self.name}: takes two inputs, the features (N, C, L_out) and the token ids (N, L). "
                f"Received: {1 + len(more)} input(s)"
            )
        shape, ids_shape = tuple(input_shape), tuple(more[0])
        if len(shape) != 3 or shape[2] < 1:
            raise ShapeError(f"{self.name}: input 0 must have shape (N, C, L_out). Received: shape {shape}")
        if len(ids_shape) != 2 or ids_shape[0] != shape[0] or ids_shape[1] < shape[2]:
            raise ShapeError(
                f"{self.name}: input 1 must be token ids of shape (N, L) with N = {shape[0]} and "
                f"L >= L_out = {shape[2]}. Received: shape {ids_shape}"
            )
        return shape[:2]

    def flops(self, input_shape: tuple[int, ...], *more: tuple[int, ...]) -> int:
        """One comparison per feature value (and one per id for the mask)."""
        return math.prod(input_shape[1:]) + (math.prod(more[0][1:]) if more else 0)
