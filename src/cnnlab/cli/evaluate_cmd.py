"""``cnnlab evaluate RUN_DIR_OR_MODEL --data NAME``: accuracy, loss, per-class metrics.

The data's classes are matched to the model's by name (a folder may hold some of them), and
images are converted to the model's input shape (a note says so).
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any

from cnnlab.cli.common import model_input_shape
from cnnlab.cli.notices import note
from cnnlab.data import load_dataset
from cnnlab.data.datasets import DATASETS, ArrayDataset
from cnnlab.data.folder import load_folder_arrays
from cnnlab.data.images import convert_batch
from cnnlab.train.evaluation.evaluate import align_labels, evaluate_arrays, tta_warning
from cnnlab.train.evaluation.metrics import classification_report
from cnnlab.train.runs.run import is_folder_path
from cnnlab.train.runs.trained_model import load_model, normalize, run_config
from cnnlab.viz.confusion_summary import confusion_table, is_large, summary_lines


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


def load_test_split(name: str, data_dir: str | None, shape: tuple[int, int | None, int | None]) -> Any:
    """The test split of ``name``; a folder is read straight at the model's input ``shape``."""
    channels, height, width = shape
    size = None if height is None or width is None else (height, width)
    if name.lower() not in DATASETS and Path(name).is_dir():
        # The folder's one warning says how many images were resized or lost colour.
        _, _, x, y, classes = load_folder_arrays(
            name, size=size, channels=channels, min_classes=1, size_reason="the model's input size"
        )
        return ArrayDataset(x, y, classes, name=f"{name}/test")
    return load_dataset(name, root=data_dir).test


def to_model_shape(x: Any, shape: tuple[int, int | None, int | None], name: str) -> Any:
    """Images ``x`` (N, C, H, W) converted to the model's (C, H, W), with a note when they change."""
    channels, height, width = shape
    x, changes = convert_batch(x, channels, None if height is None or width is None else (height, width))
    if changes:
        C, H, W = x.shape[1:]
        note(f"{name} images converted to the model's input {C}x{H}x{W}: {', '.join(changes)}")
    return x


def run(args: argparse.Namespace) -> int:
    model, extra = load_model(args.model)
    name = args.data or extra.get("dataset")
    if not name:
        raise ValueError("--data is required: the model file does not say which dataset it was trained on")
    if not args.data and is_folder_path(str(name)) and not Path(str(name)).is_dir():
        raise FileNotFoundError(  # issue 23 item 5: a run's folder dataset moved or deleted
            f"{args.model} was trained on the folder {name}, which no longer exists (moved or "
            "deleted?). Give the test images with --data FOLDER"
        )
    shape = model_input_shape(model, extra)
    test = load_test_split(str(name), args.data_dir, shape)
    stored = extra.get("classes")
    num_outputs = len(stored) if stored else None
    if num_outputs is None:
        channels, height, width = shape
        num_outputs = model.output_shape((1, channels, height or test.x.shape[2], width or test.x.shape[3]))[
            1
        ]
    y, classes = align_labels(test.y, test.classes, stored, num_outputs)
    x = to_model_shape(test.x, shape, str(name))
    metrics = evaluate_arrays(model, normalize(x, extra), y, classes, tta=args.tta)
    config = run_config(args.model)
    augment = None if config is None else str(config.get("augment", "none"))
    warning = tta_warning(args.tta, augment, metrics, str(name))
    if warning:
        warnings.warn(warning, UserWarning, stacklevel=1)
    if args.json:
        print(json.dumps(metrics))
        return 0
    import numpy as np

    print(
        f"accuracy: {metrics['accuracy']:.4f}  loss: {metrics['test_loss']:.4f}  "
        f"({metrics['num_examples']} test images of {name})"
        + (f"; {args.tta} TTA, without: {metrics['accuracy_without_tta']:.4f}" if args.tta != "none" else "")
    )
    if is_large(classes):  # a million cells for 1000 classes: the summary, the cells in --json
        print("\n".join(summary_lines(metrics["confusion_matrix"], classes)))
        print(f"({len(classes)} classes: per-class metrics and the full confusion matrix with --json)")
        return 0
    print(classification_report(np.array(metrics["confusion_matrix"]), classes))
    print("confusion matrix (rows: true, columns: predicted):")
    print("\n".join(confusion_table(metrics["confusion_matrix"], classes)))
    return 0
