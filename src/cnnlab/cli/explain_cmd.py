"""``cnnlab explain conv|pool|backprop|activation|loss``: the lecture with real numbers."""

from __future__ import annotations

import argparse
from typing import Any

from cnnlab.explain.activation_loss import explain_activation, explain_loss
from cnnlab.explain.backprop import explain_backprop
from cnnlab.explain.conv import explain_conv
from cnnlab.explain.format import parse_volume
from cnnlab.explain.pool import explain_pool


def add_parser(sub: Any) -> None:
    p = sub.add_parser("explain", help="walk through a lecture formula with numbers", description=__doc__)
    topics = p.add_subparsers(dest="topic", metavar="TOPIC", required=True)

    conv = topics.add_parser("conv", help="output size and every dot product of a convolution")
    conv.add_argument("--input", default="5x5x1", help="HxWxD (default 5x5x1)")
    conv.add_argument("--kernel", type=int, default=3)
    conv.add_argument("--stride", type=int, default=1)
    conv.add_argument("--padding", type=int, default=0)
    conv.add_argument("--filters", type=int, default=1)
    conv.add_argument("--seed", type=int, default=0)
    conv.add_argument("--values", default=None, help="comma-separated input values (h*w*d of them)")

    pool = topics.add_parser("pool", help="pooling windows and where gradients go")
    pool.add_argument("--input", default="4x4", help="HxW (default 4x4)")
    pool.add_argument("--kernel", type=int, default=2)
    pool.add_argument("--stride", type=int, default=None)
    pool.add_argument("--mode", choices=("max", "avg"), default="max")
    pool.add_argument("--seed", type=int, default=0)

    bp = topics.add_parser("backprop", help="the chain rule on f = (x + y) * z, then a conv layer")
    bp.add_argument("--x", type=float, default=-2.0)
    bp.add_argument("--y", type=float, default=5.0)
    bp.add_argument("--z", type=float, default=-4.0)

    act = topics.add_parser("activation", help="value and derivative table")
    act.add_argument("name", help="sigmoid, tanh, relu, leaky_relu, elu or maxout")

    topics.add_parser("loss", help="softmax cross-entropy on a tiny batch")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ok = True
    if args.topic == "conv":
        for flag in ("kernel", "stride", "filters"):
            if getattr(args, flag) < 1:
                raise ValueError(f"--{flag} must be a positive int. Received: {getattr(args, flag)}")
        if args.padding < 0:
            raise ValueError(f"--padding must be >= 0. Received: {args.padding}")
        h, w, d = parse_volume(args.input)
        values = [float(v) for v in args.values.split(",")] if args.values else None
        text, ok = explain_conv(
            h, w, d, args.kernel, args.stride, args.padding, args.filters, args.seed, values
        )
    elif args.topic == "pool":
        h, w, _ = parse_volume(args.input)
        text, ok = explain_pool(h, w, args.kernel, args.stride, args.mode, args.seed)
    elif args.topic == "backprop":
        text, ok = explain_backprop(args.x, args.y, args.z)
    elif args.topic == "activation":
        text = explain_activation(args.name)
    else:
        text, ok = explain_loss()
    print(text)
    return 0 if ok else 1
