"""``cnnlab predict MODEL IMAGE...``: the top-k classes with probabilities for each image."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from cnnlab.cli.common import load_image, load_model, normalize


def add_parser(sub: Any) -> None:
    p = sub.add_parser("predict", help="classify PNG/JPEG images with a saved model", description=__doc__)
    p.add_argument("model", help="run folder or model file")
    p.add_argument("images", nargs="+", help="PNG or JPEG files")
    p.add_argument("--top-k", type=int, default=3, help="how many classes to show")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cnnlab.functional.activations import softmax

    model, extra = load_model(args.model)
    channels, height, width = extra.get("input_shape") or (1, 28, 28)
    classes = extra.get("classes") or [str(i) for i in range(10)]
    x = np.stack([load_image(path, channels, (height, width)) for path in args.images])  # (N, C, H, W)
    probs = softmax(model.predict(normalize(x, extra)).astype(np.float64))  # (N, K)
    k = max(1, min(args.top_k, probs.shape[1]))
    for path, p in zip(args.images, probs, strict=True):
        top = np.argsort(-p, kind="stable")[:k]
        print(f"{path}: " + ", ".join(f"{classes[i]} {p[i]:.3f}" for i in top))
    return 0
