"""``cnnlab predict MODEL IMAGE...``: the top-k classes with probabilities for each image.

Any PNG/JPEG works: grayscale, RGB, palette, with transparency, 16-bit, any size. Each is
converted to the model's input shape (stored with the model, or worked out from its layers);
a conversion that loses information is reported in one line. A folder stands for the
PNG/JPEG files directly in it, in name order. An image that cannot be read is reported on
stderr and the others are still classified; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.cli.common import class_names, load_image, model_input_shape, positive_int
from cnnlab.cli.notices import error_lines
from cnnlab.data.folder import IMAGE_SUFFIXES
from cnnlab.errors import CnnlabError
from cnnlab.functional.activations import softmax
from cnnlab.train.runs.trained_model import load_model, normalize


def add_parser(sub: Any) -> None:
    p = sub.add_parser("predict", help="classify PNG/JPEG images with a saved model", description=__doc__)
    p.add_argument("model", help="run folder or model file")
    p.add_argument("images", nargs="+", help="PNG or JPEG files, or folders of them")
    p.add_argument("--top-k", type=positive_int, default=3, help="how many classes to show (at least 1)")
    p.set_defaults(func=run)


def image_paths(names: list[str]) -> list[str]:
    """``names`` with each folder replaced by the PNG/JPEG files directly in it (name order).

    Example:
        >>> image_paths(["a.png", "b.jpg"])
        ['a.png', 'b.jpg']
    """
    paths: list[str] = []
    for name in names:
        folder = Path(name)
        if not folder.is_dir():
            paths.append(name)  # a file, or a missing one: reported when it is read
            continue
        found = sorted(str(f) for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise CnnlabError(
                f"no PNG/JPEG files directly in the folder {name} (its subfolders are not searched: "
                "name them instead)"
            )
        paths += found
    return paths


def run(args: argparse.Namespace) -> int:
    paths = image_paths(args.images)
    model, extra = load_model(args.model)
    channels, height, width = model_input_shape(model, extra)
    size = None if height is None or width is None else (height, width)
    failed = 0
    for path in paths:
        try:
            x = load_image(path, channels, size)[None]  # (1, C, H, W)
        except CnnlabError as exc:  # one unreadable image: say so, classify the others
            sys.stdout.flush()  # keep the lines in order when both go to one terminal
            print("\n".join(error_lines("cnnlab predict", exc)), file=sys.stderr, flush=True)
            failed += 1
            continue
        probs = softmax(model.predict(normalize(x, extra)).astype(np.float64))[0]  # (K,)
        classes = class_names(extra, len(probs))
        top = np.argsort(-probs, kind="stable")[: min(args.top_k, len(probs))]
        print(f"{path}: " + ", ".join(f"{classes[i]} {probs[i]:.3f}" for i in top))
    if failed and len(paths) > 1:
        sys.stdout.flush()
        print(f"cnnlab predict: {failed} of {len(paths)} images could not be read", file=sys.stderr)
    return 1 if failed else 0
