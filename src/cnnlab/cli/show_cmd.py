"""``cnnlab show MODEL IMAGE``: feature maps and the top-k prediction for one of your images.

Writes ``<out>/<image name>_feature_maps.png`` (the image after every conv/pool layer) and
``<out>/<image name>_prediction.png`` (the top-k class probabilities), and prints the top-k.
With ``--cam`` also ``<out>/<image name>_gradcam.png``: the Grad-CAM heatmaps of the two most
probable classes laid over the image, and the saliency map of the most probable one.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.cli.common import class_names, load_image, model_input_shape, positive_int
from cnnlab.functional.activations import softmax
from cnnlab.layers.graph import Graph
from cnnlab.models.probe import feature_maps, layer_label
from cnnlab.train.runs.trained_model import load_model, normalize
from cnnlab.viz.cam_plots import plot_cam
from cnnlab.viz.gradcam import default_layer, grad_cam, graph_default_node, saliency
from cnnlab.viz.images import plot_feature_maps
from cnnlab.viz.prediction import plot_prediction


def add_parser(sub: Any) -> None:
    p = sub.add_parser("show", help="draw feature maps and the prediction for one image", description=__doc__)
    p.add_argument("model", help="run folder or model file")
    p.add_argument("image", help="a PNG or JPEG file")
    p.add_argument("--top-k", type=positive_int, default=5, help="how many classes to show (at least 1)")
    p.add_argument("--out", default=".", help="folder for the PNGs (default .)")
    p.add_argument(
        "--cam",
        action="store_true",
        help="also draw the Grad-CAM overlay and the saliency map (<image name>_gradcam.png)",
    )
    p.add_argument(
        "--cam-layer",
        type=_layer_arg,
        default=None,
        metavar="N",
        help="index of the layer for Grad-CAM, or a node name for a graph model (implies --cam; "
        "default: the last conv/pool output over 1x1)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model, extra = load_model(args.model)
    channels, height, width = model_input_shape(model, extra)
    size = None if height is None or width is None else (height, width)
    image = load_image(args.image, channels, size)  # (C, H, W)
    x = normalize(image[None], extra)  # (1, C, H, W)
    probs = softmax(model.predict(x).astype(np.float64))[0]  # (K,)
    classes = class_names(extra, len(probs))
    k = min(args.top_k, len(probs))
    top = np.argsort(-probs, kind="stable")[:k]
    print(f"{args.image}: " + ", ".join(f"{classes[i]} {probs[i]:.3f}" for i in top))
    out, stem = Path(args.out), Path(args.image).stem
    maps = feature_maps(model, x)
    if maps:
        print(
            plot_feature_maps(
                image,
                maps,
                out / f"{stem}_feature_maps.png",
                title=f"Feature maps of {Path(args.image).name}",
            )
        )
    print(plot_prediction(image, probs, classes, out / f"{stem}_prediction.png", top_k=k))
    if args.cam or args.cam_layer is not None:  # --cam-layer alone implies --cam
        print(_draw_cam(model, x, image, probs, classes, args.cam_layer, out / f"{stem}_gradcam.png"))
    return 0


def _layer_arg(text: str) -> int | str:
    """``--cam-layer``: an index (``3``, ``-1``) or a Graph node name (``inception3a``)."""
    return int(text) if text.removeprefix("-").isdigit() else text


def _draw_cam(
    model: Any,
    x: np.ndarray,
    image: np.ndarray,
    probs: np.ndarray,
    classes: list[str],
    layer: int | str | None,
    path: Path,
) -> Path:
    """Grad-CAM of the two most probable classes and the saliency of the first, in one PNG."""
    top = np.argsort(-probs, kind="stable")[:2]
    cams = [
        (f"Grad-CAM: {classes[c]} ({probs[c]:.1%})", grad_cam(model, x, target=int(c), layer=layer)[0])
        for c in top
    ]
    if isinstance(model, Graph):  # grad_cam checked the name
        node = graph_default_node(model, x.shape[1:]) if layer is None else str(layer)
        title = f"Grad-CAM at node {layer_label(node, model[node])}"
    else:
        index = default_layer(model, x.shape[1:]) if layer is None else int(layer) % len(model.layers)
        title = f"Grad-CAM at layer {layer_label(index, model.layers[index])}"
    return plot_cam(image, cams, path, saliency_map=saliency(model, x, target=int(top[0]))[0], title=title)
