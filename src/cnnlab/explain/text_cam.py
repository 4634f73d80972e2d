"""Which words decided: Grad-CAM over the token positions of a ``textcnn``'s Conv1D branches.

Grad-CAM (Selvaraju et al., 2017) in 1-D, per branch of filter width k:

    A        = conv_k output, (C, T) with T = L - k + 1 window positions
    dA       = d score_target / dA   (back through Dense, Concat, max-over-time and ReLU)
    alpha_c  = mean over t of dA[c, t]             (how much filter c counts for the class)
    cam_k(t) = ReLU(sum_c alpha_c * A[c, t])      (T,)

Window t covers tokens t .. t + k - 1, so each token gets the largest cam_k of the windows
that hold it; the branches' token maps are summed and scaled to [0, 1] (1: the token that
decided most). Padding positions get 0. The model runs in eval mode (no dropout).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.errors import CnnlabError


def branch_widths(model: Any) -> list[int]:
    """The filter widths of a textcnn Graph (its ``conv<k>`` nodes), or an error naming what is missing."""
    nodes = getattr(model, "nodes", {})
    widths = [int(name[4:]) for name in nodes if name.startswith("conv") and name[4:].isdigit()]
    needed = ["embed", "cat", "dropout", "fc"] + [f"{p}{k}" for k in widths for p in ("relu", "pool")]
    if not widths or any(name not in nodes for name in needed):
        raise CnnlabError(
            "text Grad-CAM needs a textcnn model (nodes embed, conv<k>, relu<k>, pool<k>, cat, dropout, fc)"
        )
    return widths


def text_grad_cam(model: Any, ids: np.ndarray, target: int, length: int) -> np.ndarray:
    """Token weights in [0, 1] for class ``target`` of one text: (length,) for its real tokens.

    Args:
        model: a ``textcnn`` Graph.
        ids: (1, L) token ids.
        target: the class whose score is explained.
        length: the real tokens (the rest is padding).
    """
    widths = branch_widths(model)
    was_training = model.training
    model.eval()
    try:
        convs = [f"conv{k}" for k in widths]
        scores, acts = model.forward_keep(ids, keep=convs)  # (1, K); conv<k>: (1, C, T)
        d_scores = np.zeros_like(scores)
        d_scores[0, target] = 1.0
        _, d_acts = model.backward_keep(d_scores, keep=convs)  # back through fc, cat, pools, ReLUs
        L = ids.shape[1]
        weights = np.zeros(L, dtype=np.float64)
        for k in widths:
            a, da = acts[f"conv{k}"], d_acts[f"conv{k}"]  # (1, C, T) each
            alpha = da[0].mean(axis=1)  # (C,)
            cam = np.maximum(alpha @ a[0], 0.0)  # (T,)
            per_token = np.zeros(L, dtype=np.float64)
            for t, value in enumerate(cam):  # window t covers tokens t .. t + k - 1
                np.maximum(per_token[t : t + k], value, out=per_token[t : t + k])
            weights += per_token
    finally:
        model.train(was_training)
    weights = weights[: max(length, 1)]
    top = weights.max()
    return weights / top if top > 0 else weights
