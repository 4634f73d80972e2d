"""Channel shuffle (ShuffleNet), forward beside backward: a fixed permutation of the channels.

With C = groups * m channels, read as a (groups, m) grid, the output lists them column by
column: output channel ``i * groups + g`` is input channel ``g * m + i``. The next grouped
convolution then sees channels from every group. The gradient is the inverse permutation.
"""

from __future__ import annotations

import numpy as np


def channel_shuffle(x: np.ndarray, groups: int) -> np.ndarray:
    """Permute axis 1 of (N, C, ...) as ``torch.nn.ChannelShuffle(groups)`` (C divisible by groups).

    Example:
        >>> channel_shuffle(np.arange(6).reshape(1, 6), 2).tolist()
        [[0, 3, 1, 4, 2, 5]]
    """
    N, C, *rest = x.shape
    grid = x.reshape(N, groups, C // groups, *rest)  # (N, groups, m, ...)
    return np.ascontiguousarray(grid.swapaxes(1, 2)).reshape(x.shape)  # (N, m * groups, ...)


def channel_shuffle_backward(dy: np.ndarray, groups: int) -> np.ndarray:
    """The inverse permutation: dx channel ``g * m + i`` is dy channel ``i * groups + g``."""
    N, C, *rest = dy.shape
    grid = dy.reshape(N, C // groups, groups, *rest)  # (N, m, groups, ...)
    return np.ascontiguousarray(grid.swapaxes(1, 2)).reshape(dy.shape)  # (N, groups * m, ...)
