"""``cnnlab export RUN_DIR_OR_MODEL --to torch|onnx``: hand a model to PyTorch or ONNX.

``--to torch`` writes a folder with ``model.pt`` (the state_dict, plain tensors) and a
readable ``model.py`` whose ``build()`` returns the equivalent ``nn.Module``;
``--to onnx`` writes ``model.onnx`` with a dynamic batch axis.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cnnlab.atomic import atomic_write, write_text_atomic
from cnnlab.cli.summary_cmd import parse_shape
from cnnlab.errors import CnnlabError
from cnnlab.interop.codegen import torch_source
from cnnlab.interop.onnx import to_onnx
from cnnlab.interop.torch import to_torch
from cnnlab.interop.torch_modules import import_torch
from cnnlab.models import MODELS, build_model
from cnnlab.train.runs.trained_model import load_model


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="export a model to PyTorch (model.py + weights) or ONNX",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "model",
        metavar="RUN_DIR_OR_MODEL",
        help="run folder, model file (.npz/.safetensors), or zoo name (untrained weights)",
    )
    p.add_argument("--to", required=True, choices=("torch", "onnx"), help="target framework")
    p.add_argument(
        "--out",
        default=None,
        help="torch: output folder (default RUN_DIR/torch); onnx: .onnx file (default RUN_DIR/model.onnx; "
        "a folder gets FOLDER/model.onnx, a name without .onnx gets it added)",
    )
    p.add_argument(
        "--input-shape",
        default=None,
        help="C,H,W of one input (default: the shape saved with the model, for zoo names 1,28,28)",
    )
    p.add_argument("--classes", type=int, default=10, help="number of classes (zoo names)")
    p.set_defaults(func=run)


def _load(target: str, input_shape: tuple[int, ...] | None, classes: int) -> tuple[Any, dict[str, Any], Path]:
    """The model, its saved extra facts, and the default output stem (without suffix)."""
    path = Path(target)
    if not path.exists() and target in MODELS:
        shape = input_shape or (1, 28, 28)
        if len(shape) != 3:
            raise ValueError(f"--input-shape must be C,H,W for zoo model {target!r}. Received: {shape}")
        model = build_model(
            target, in_channels=shape[0], input_size=(shape[1], shape[2]), num_classes=classes, rng=0
        )
        return model, {"input_shape": list(shape)}, Path(target)

    model, extra = load_model(target)
    if input_shape:
        extra = {**extra, "input_shape": list(input_shape)}
    stem = path / "model" if path.is_dir() else path.with_suffix("")
    return model, extra, stem


def run(args: argparse.Namespace) -> int:
    shape = parse_shape(args.input_shape) if args.input_shape else None
    model, extra, stem = _load(args.model, shape, args.classes)
    if args.to == "torch":
        out = (
            Path(args.out)
            if args.out
            else (stem.parent / "torch" if stem.name == "model" else stem.with_name(stem.name + "_torch"))
        )
        weights, source = export_torch(model, out, extra)
        print(f"wrote {weights} and {source}")
        print(
            f'load it with:  cd {out} && python -c "import torch; from model import build; '
            "m = build(); m.load_state_dict(torch.load('model.pt')); print(m)\""
        )
    else:
        if not extra.get("input_shape"):
            raise ValueError("--to onnx needs the input shape: pass --input-shape C,H,W (e.g. 1,28,28)")
        out = onnx_path(args.out, stem)
        to_onnx(model, out, tuple(extra["input_shape"]))
        print(f"wrote {out} (input 'input': batch x {'x'.join(map(str, extra['input_shape']))})")
    if extra.get("normalization"):
        norm = extra["normalization"]
        print(f"note: normalize inputs as in training, per channel: mean {norm['mean']}, std {norm['std']}")
    return 0


def onnx_path(out: str | None, stem: Path) -> Path:
    """Where ``--to onnx`` writes: ``out`` as given when it ends in .onnx, else made an .onnx file.

    Example:
        >>> [str(onnx_path(o, Path("runs/a/model"))) for o in (None, "m.onnx", "m", "m.ONNX")]
        ['runs/a/model.onnx', 'm.onnx', 'm.onnx', 'm.ONNX']
    """
    if out is None:
        return stem.with_suffix(".onnx")
    path = Path(out)
    if path.is_dir() or out.endswith(("/", "\\")):  # a folder: the model's own file name inside
        return path / (stem.name + ".onnx")
    return path if path.suffix.lower() == ".onnx" else path.with_name(path.name + ".onnx")


def export_torch(model: Any, out: Path, extra: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``out/model.pt`` (``torch.save`` of the state_dict) and ``out/model.py``."""
    torch = import_torch()
    if out.exists() and not out.is_dir():
        raise CnnlabError(f"export --to torch writes a folder (model.pt, model.py); --out {out} is a file")
    out.mkdir(parents=True, exist_ok=True)
    weights, source = out / "model.pt", out / "model.py"
    state = to_torch(model).state_dict()
    atomic_write(weights, lambda f: torch.save(state, f))
    write_text_atomic(source, torch_source(model, extra))
    return weights, source
