"""``cnnlab evaluate RUN_DIR_OR_MODEL --data NAME``: accuracy, loss, per-class metrics."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cnnlab.cli.common import load_model, normalize


def add_parser(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="evaluate a saved model on a test split", description=__doc__)
    p.add_argument("model", help="run folder or model file")
    p.add_argument("--data", default=None, help="dataset (default: the one the model was trained on)")
    p.add_argument("--data-dir", default=None, help="where the dataset files are")
    p.add_argument(
        "--tta", default="none", help="test-time augmentation: none or flip (average of image and mirror)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cnnlab.data import load_dataset
    from cnnlab.train.evaluate import evaluate_arrays
    from cnnlab.train.metrics import classification_report

    model, extra = load_model(args.model)
    name = args.data or extra.get("dataset")
    if not name:
        raise ValueError("--data is required: the model file does not say which dataset it was trained on")
    test = load_dataset(name, root=args.data_dir).test
    classes = extra.get("classes") or test.classes
    metrics = evaluate_arrays(model, normalize(test.x, extra), test.y, classes, tta=args.tta)
    if args.json:
        print(json.dumps(metrics))
        return 0
    import numpy as np

    print(
        f"accuracy: {metrics['accuracy']:.4f}  loss: {metrics['test_loss']:.4f}  "
        f"({metrics['num_examples']} test images of {name})"
        + (f"; {args.tta} TTA, without: {metrics['accuracy_without_tta']:.4f}" if args.tta != "none" else "")
    )
    print(classification_report(np.array(metrics["confusion_matrix"]), classes))
    print("confusion matrix (rows: true, columns: predicted):")
    for row_name, row in zip(classes, metrics["confusion_matrix"], strict=True):
        print(f"  {row_name[:12]:>12} " + " ".join(f"{v:5d}" for v in row))
    return 0
