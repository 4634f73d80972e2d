"""Named training recipes: tested starting points for `cnnlab train --recipe NAME`.

A recipe is a partial TrainConfig; flags given on the command line still win.

``fashion``: the network and training were chosen on validation accuracy (10% of the
training split held out; the test split never used for that choice) from a sweep of 26
configurations run with PyTorch on a GPU: a VGG-style network of two blocks of two 3x3
convolutions with BatchNorm, dropout 0.3, random shifts and horizontal flips, Adam with a
cosine schedule, 15 epochs. The final test evaluation averages the predictions of each
image and its mirror (``tta="flip"``); the plain accuracy is reported beside it.

``fashion-fast``: the same network and training cut to 10 epochs, which is what 15
minutes buy on a 2-core CPU with the NumPy engine.

Measured figures of both (accuracy, wall time, machine): docs/performance.md, "Recipes".
"""

from __future__ import annotations

from typing import Any

_FASHION: dict[str, Any] = {
    "data": "fashion-mnist",
    "model": "vgg",
    "model_args": {"depth": 2, "width": 32, "dropout": 0.3},
    "epochs": 15,
    "batch_size": 64,
    "optimizer": "adam",
    "lr": 2e-3,
    "schedule": "cosine",
    "augment": "shift,flip",
    "tta": "flip",
    "val_split": 0.1,
}

RECIPES: dict[str, dict[str, Any]] = {
    "fashion": _FASHION,
    "fashion-fast": {**_FASHION, "epochs": 10},
    "digits": {
        "data": "digits",
        "model": "small_bn",
        "epochs": 15,
        "batch_size": 32,
        "optimizer": "adam",
        "lr": 2e-3,
        "schedule": "cosine",
    },
}


def recipe(name: str) -> dict[str, Any]:
    """A copy of recipe ``name``; ValueError listing the valid names otherwise."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}. Valid recipes: {', '.join(RECIPES)}")
    values = dict(RECIPES[name])
    values["model_args"] = dict(values.get("model_args", {}))
    return values
