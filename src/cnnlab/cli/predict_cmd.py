"""``cnnlab predict MODEL IMAGE...``: the top-k classes with probabilities for each image.

Any PNG/JPEG works: grayscale, RGB, palette, with transparency, 16-bit, any size. Each is
converted to the model's input shape (stored with the model, or worked out from its layers);
a conversion that loses information is reported in one line.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from cnnlab.cli.common import class_names, load_image, load_model, model_input_shape, normalize, positive_int


def add_parser(sub: Any) -> None:
    p = sub.add_parser("predict", help="classify PNG/JPEG images with a saved model", description=__doc__)
    p.add_argument("model", help="run folder or model file")
    p.add_argument("images", nargs="+", help="PNG or JPEG files")
    p.add_argument("--top-k", type=positive_int, default=3, help="how many classes to show (at least 1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cnnlab.functional.activations import softmax

    model, extra = load_model(args.model)
    channels, height, width = model_input_shape(model, extra)
    size = None if height is None or width is None else (height, width)
    for path in args.images:
        x = load_image(path, channels, size)[None]  # (1, C, H, W)
        probs = softmax(model.predict(normalize(x, extra)).astype(np.float64))[0]  # (K,)
        classes = class_names(extra, len(probs))
        top = np.argsort(-probs, kind="stable")[: min(args.top_k, len(probs))]
        print(f"{path}: " + ", ".join(f"{classes[i]} {probs[i]:.3f}" for i in top))
    return 0
