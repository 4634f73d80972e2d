"""``cnnlab import MODEL.onnx --out RUN``: an ONNX model as a run folder the other commands read.

The model is read with ``cnnlab.interop.from_onnx`` (an unsupported operator or attribute is
refused with one message that lists them all, before the folder is created). The folder
holds ``model.npz`` (the architecture and weights; the input shape and the class count from
the ONNX file; class names from ``--classes``; a final Softmax left out, since the commands
apply softmax to a model's logits) and a ``config.json`` with the ONNX file as its model, so
``cnnlab predict``, ``show``, ``evaluate``, ``summary`` and ``export`` accept it. A folder
that already holds a run is refused, as ``cnnlab train`` refuses it.

Example::

    cnnlab import resnet18.onnx --out runs/resnet18 --classes imagenet_classes.txt
    cnnlab predict runs/resnet18 photo.jpg
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from cnnlab.atomic import write_text_atomic
from cnnlab.errors import CnnlabError
from cnnlab.interop.onnx_import import import_onnx
from cnnlab.io import save
from cnnlab.layers.activations import Softmax
from cnnlab.layers.activations_extra import LogSoftmax
from cnnlab.layers.base import Layer
from cnnlab.layers.graph import Graph
from cnnlab.layers.sequential import Sequential
from cnnlab.train.runs.config import TrainConfig
from cnnlab.train.runs.files import CONFIG_FILE, MODEL_FILE
from cnnlab.train.runs.runfolder import check_run_folder, claim_run_folder, existing_run_files


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "import",
        help="import an ONNX model as a run folder (predict, show, evaluate, export it)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("onnx_file", metavar="MODEL.onnx", help="the ONNX model to import")
    p.add_argument("--out", required=True, help="the run folder to write (refused if it holds a run)")
    p.add_argument(
        "--classes", default=None, help="a text file with one class name per line, in output order"
    )
    p.set_defaults(func=run)


def read_classes(path: str, count: int | None) -> list[str]:
    """The class names of ``--classes`` (one per line, blank lines skipped), ``count`` of them."""
    try:
        names = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise CnnlabError(f"--classes {path}: cannot read it: {exc}") from None
    if count is not None and len(names) != count:
        raise CnnlabError(
            f"--classes {path}: the model has {count} outputs, the file names {len(names)} classes "
            "(one name per line, in the order of the model's outputs)"
        )
    return names


def run(args: argparse.Namespace) -> int:
    source = Path(args.onnx_file).resolve()
    out = Path(args.out)
    found = existing_run_files(out) if out.is_dir() else []
    if found:  # before the (slow) import; claim_run_folder checks again under the lock
        raise CnnlabError(
            f"--out {out} already holds a run ({', '.join(found)}); cnnlab import writes a new run "
            "folder: choose another --out"
        )
    check_run_folder(out)  # a file is refused too
    imported = import_onnx(str(source))
    model, dropped = without_final_softmax(imported.model)
    shape = imported.input_shape
    outputs = imported.output_shape
    classes = outputs[-1] if len(outputs) == 1 else None
    extra: dict[str, Any] = {
        "onnx": {"file": str(source), "opset": imported.opset, "input": imported.input_name}
    }
    if len(shape) == 3 and all(isinstance(s, int) for s in shape):
        extra["input_shape"] = list(shape)
    if args.classes is not None:
        extra["classes"] = read_classes(args.classes, classes)
    config = TrainConfig(model=str(source), out=str(out.resolve()))
    with claim_run_folder(out) as run_dir:
        save(model, run_dir / MODEL_FILE, extra=extra)
        values = dataclasses.asdict(config)
        del values["data"]  # no dataset: evaluate asks for --data, the dashboard for an image
        write_text_atomic(run_dir / CONFIG_FILE, json.dumps(values, indent=2) + "\n")
    kind = type(model).__name__
    size = "x".join("?" if s is None else str(s) for s in shape)
    count = f"{classes} classes" if classes is not None else f"output {outputs}"
    print(f"imported {source.name} (opset {imported.opset}) as a {kind}: input {size}, {count} -> {run_dir}")
    if dropped:
        print(
            f"  its final {dropped} is left out: a cnnlab model outputs logits "
            "(predict and evaluate apply softmax)"
        )
    return 0


def without_final_softmax(model: Layer) -> tuple[Layer, str | None]:
    """``model`` without a final Softmax/LogSoftmax (and that layer's name), else ``(model, None)``.

    cnnlab's commands apply softmax to a model's output themselves; many ONNX classifiers end
    in Softmax, and twice would flatten the probabilities.
    """
    if isinstance(model, Sequential) and len(model) > 1 and isinstance(model[len(model) - 1], FINAL):
        layers = list(model.children().values())
        return Sequential(*layers[:-1]), layers[-1].name
    if isinstance(model, Graph) and model.output_name is not None:
        last = model.nodes[model.output_name]
        if isinstance(last.layer, FINAL) and last.inputs[0] in model.nodes:
            nodes = [
                {"name": n.name, "layer": n.layer, "inputs": list(n.inputs)}
                for n in model.nodes.values()
                if n.name != last.name
            ]
            graph = Graph(inputs=list(model.inputs), nodes=nodes, output=last.inputs[0])
            return graph.train(model.training), last.layer.name
    return model, None


#: The output layers ``without_final_softmax`` leaves out.
FINAL = (Softmax, LogSoftmax)
