"""``cnnlab summary MODEL_OR_CONFIG``: the layer table with output shapes and size formulas."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cnnlab.init import dry_build
from cnnlab.jsonfile import read_json_object
from cnnlab.layers.graph import Graph
from cnnlab.layers.registry import MAX_PARAMETERS
from cnnlab.layers.summary_tree import print_expanded
from cnnlab.models import MODELS, build_model, model_from_file
from cnnlab.models.classic import CLASSIC
from cnnlab.models.zoo import model_options
from cnnlab.train.runs.config import TrainConfig, int_list
from cnnlab.train.runs.trained_model import load_model


def add_parser(sub: Any) -> None:
    p = sub.add_parser("summary", help="print a model's layers, shapes and formulas", description=__doc__)
    p.add_argument("model", help="zoo name, run folder, model file, or YAML/JSON architecture")
    p.add_argument(
        "--input-shape",
        default=None,
        help="C,H,W (default: the model's; 3,224,224 for the classic zoo; else 1,28,28)",
    )
    p.add_argument("--classes", type=int, default=10, help="number of classes (zoo names and files)")
    for option in ("depth", "width"):  # the zoo models that take it, e.g. "zoo option (vgg/resnet)"
        takers = "/".join(name for name in MODELS if option in model_options(name))
        p.add_argument(f"--{option}", type=int, default=None, help=f"zoo option ({takers})")
    p.add_argument("--widths", type=int_list, default=None, help="vgg: channels of each block, e.g. 16,64")
    p.set_defaults(func=run)


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"--input-shape must be C,H,W (e.g. 1,28,28). Received: {text!r}")
    return shape


def run(args: argparse.Namespace) -> int:
    shape = parse_shape(args.input_shape) if args.input_shape else None
    target = Path(args.model)
    if args.model not in MODELS and not target.exists():
        raise ValueError(
            f"unknown model {args.model!r}: not a file or folder, and not a zoo name ({', '.join(MODELS)})"
        )
    if args.model in MODELS:
        shape = shape or ((3, 224, 224) if args.model in CLASSIC else (1, 28, 28))
        options = (("depth", args.depth), ("width", args.width), ("widths", args.widths))
        kwargs = {k: v for k, v in options if v is not None}
        with dry_build(limit=MAX_PARAMETERS):  # shapes only: no weights drawn (VGG-16: 138M)
            model = build_model(
                args.model,
                in_channels=shape[0],
                input_size=(shape[1], shape[2]),
                num_classes=args.classes,
                rng=0,
                **kwargs,
            )
    elif target.suffix.lower() in (".yaml", ".yml") or (
        target.suffix.lower() == ".json" and "model_args" not in target.read_text()
    ):
        shape = shape or (1, 28, 28)
        model = model_from_file(target, shape[0], (shape[1], shape[2]), args.classes)
    elif target.suffix.lower() == ".json":  # a run's config.json
        cfg = TrainConfig.from_dict(dict(read_json_object(target)))  # an error names the file
        shape = shape or (1, 28, 28)
        model = build_model(
            cfg.model,
            in_channels=shape[0],
            input_size=(shape[1], shape[2]),
            num_classes=args.classes,
            rng=0,
            **cfg.model_args,
        )
    else:
        model, extra = load_model(args.model)
        shape = shape or tuple(extra.get("input_shape") or (1, 28, 28))
    if isinstance(model, Graph):  # one row per leaf layer: the branches of every block show
        print_expanded(model, shape)
    else:
        model.summary(shape)
    return 0
