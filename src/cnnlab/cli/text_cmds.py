"""The CLI on text: ``train --data text:PATH``, and ``evaluate`` / ``predict`` / ``show`` of a text run.

``route(args)`` picks the text version of a command when its data or model is text (a run
folder with vocab.json, or a model file whose metadata holds the vocabulary); the image
commands' parsers are reused unchanged:

    cnnlab train --data text:reviews/ --epochs 5 --out runs/reviews
    cnnlab evaluate runs/reviews                      # its test split (or --data text:OTHER)
    cnnlab predict runs/reviews "what a lovely film" --top-k 2
    cnnlab show runs/reviews "what a lovely film" --cam   # which words decided
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.cli.train_cmd import (
    announce,
    diagnose_report_and_serve,
    open_dashboard,
    resolve_config,
    resume_config,
)
from cnnlab.data.text import TextEncoder, is_text_data, load_text
from cnnlab.explain.text_cam import text_grad_cam
from cnnlab.functional.activations import softmax
from cnnlab.train.evaluation.evaluate import align_labels, evaluate_arrays
from cnnlab.train.evaluation.metrics import classification_report
from cnnlab.train.loop.checkpoint import TrainingInterrupted
from cnnlab.train.runs.files import CONFIG_FILE, MODEL_FILE
from cnnlab.train.runs.text_run import VOCAB_FILE, train_text_run
from cnnlab.train.runs.trained_model import load_model
from cnnlab.viz.confusion_summary import confusion_table

Command = Callable[[argparse.Namespace], int]


def _saved_data(run: str) -> str:
    """The dataset named in a config.json, or a run folder's ('' if none)."""
    path = Path(run)
    try:
        config = json.loads((path / CONFIG_FILE if path.is_dir() else path).read_text(encoding="utf-8"))
        return str(config.get("data", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def is_text_model(name: str) -> bool:
    """A run folder with vocab.json, its model.npz, or a model file with a vocabulary in its metadata."""
    path = Path(name)
    folder = path if path.is_dir() else path.parent
    if (folder / VOCAB_FILE).is_file() and (path.is_dir() or path.name == MODEL_FILE):
        return True
    if not path.is_file():
        return False
    try:  # a text model copied elsewhere: its metadata holds the vocabulary
        return "text" in load_model(name)[1]
    except Exception:  # not a model file: the image command says what is wrong with it
        return False


def route(args: argparse.Namespace) -> Command:
    """``args.func``, or its text version when the command's data or model is text."""
    command = getattr(args, "command", None)
    if command == "train":
        if args.resume:
            data = _saved_data(args.resume)
        else:
            data = args.data or (_saved_data(args.config) if args.config else "")
        if is_text_data(data):
            return train
    elif command in ("evaluate", "predict", "show") and is_text_model(args.model):
        return {"evaluate": evaluate, "predict": predict, "show": show}[command]
    return args.func


# ---- train -----------------------------------------------------------------------------------
def train(args: argparse.Namespace) -> int:
    if not args.resume and args.model is None and not args.config and not args.recipe:
        args.model = "textcnn"  # the default model is an image CNN
    config = resume_config(args.resume, args) if args.resume else resolve_config(args)
    announce(config)
    # the live page of the runs folder; its try-it box takes text
    dashboard, default_dir = open_dashboard(config) if args.dashboard else (None, None)
    with contextlib.ExitStack() as hold:
        try:
            result = train_text_run(
                config,
                verbose=not args.quiet,
                resume=bool(args.resume),
                overwrite=args.overwrite,
                hold=hold,
                default_dir=default_dir,
            )
        except TrainingInterrupted as exc:
            print(str(exc), file=sys.stderr)
            return 130
    print(
        f"test accuracy: {result.test_accuracy:.4f}  test loss: {result.test_loss:.4f}  "
        f"({result.seconds:.1f} s)"
    )
    print(f"run folder: {result.run_dir}")
    # learning curves, confusion matrix, the most confident mistakes with their words
    return diagnose_report_and_serve(result.run_dir, args.no_plots, dashboard)


# ---- a trained text model --------------------------------------------------------------------
def load_text_model(name: str) -> tuple[Any, dict[str, Any], TextEncoder]:
    """``(model, extra, encoder)`` of a text run folder or model file (vocab.json beside it)."""
    model, extra = load_model(name)
    path = Path(name)
    vocab_path = (path if path.is_dir() else path.parent) / VOCAB_FILE
    data = json.loads(vocab_path.read_text(encoding="utf-8")) if vocab_path.is_file() else extra.get("text")
    if data is None:
        raise ValueError(
            f"{name}: not a text model (no {VOCAB_FILE} beside it, no vocabulary in its metadata)"
        )
    return model, extra, TextEncoder.from_json(data, str(vocab_path))


def probabilities(model: Any, encoder: TextEncoder, texts: list[str]) -> np.ndarray:
    """(N, K) class probabilities of raw ``texts``."""
    ids, _ = encoder.encode(texts)  # (N, L)
    model.eval()
    return softmax(model.predict(ids).astype(np.float64))  # (N, K)


def _top(probs: np.ndarray, classes: list[str], k: int) -> str:
    top = np.argsort(-probs, kind="stable")[: min(k, len(probs))]
    return ", ".join(f"{classes[i]} {probs[i]:.3f}" for i in top)


def _short(text: str, width: int = 60) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 3] + "..."


def predict(args: argparse.Namespace) -> int:
    model, extra, encoder = load_text_model(args.model)
    texts = list(args.images)  # the image command's positional arguments: here, sentences
    probs = probabilities(model, encoder, texts)
    classes = list(extra.get("classes") or range(probs.shape[1]))
    for text, p in zip(texts, probs, strict=True):
        print(f"{_short(text)!r}: {_top(p, [str(c) for c in classes], args.top_k)}")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    model, extra, encoder = load_text_model(args.model)
    name = args.data or extra.get("dataset")
    if not name or not is_text_data(str(name)):
        raise ValueError(f"--data must be text:PATH for a text model. Received: {name!r}")
    if args.tta != "none":
        raise ValueError(f"--tta {args.tta}: test-time augmentation is for images (text: none)")
    splits = load_text(str(name), min_classes=1)
    stored = [str(c) for c in extra.get("classes") or splits.classes]
    y, classes = align_labels(splits.y_test, splits.classes, stored, len(stored))
    ids, _ = encoder.encode(splits.test_texts)  # (M, L)
    model.eval()
    metrics = evaluate_arrays(model, ids, y, classes)
    if args.json:
        print(json.dumps(metrics))
        return 0
    print(
        f"accuracy: {metrics['accuracy']:.4f}  loss: {metrics['test_loss']:.4f}  "
        f"({metrics['num_examples']} test texts of {name})"
    )
    print(classification_report(np.array(metrics["confusion_matrix"]), classes))
    print("confusion matrix (rows: true, columns: predicted):")
    print("\n".join(confusion_table(metrics["confusion_matrix"], classes)))
    return 0


def highlighted(tokens: list[str], weights: np.ndarray) -> Any:
    """A rich ``Text``: each token on a background as strong as its weight (0..1)."""
    from rich.text import Text

    out = Text()
    for i, (token, w) in enumerate(zip(tokens, weights, strict=False)):
        if i:
            out.append(" ")
        level = round(float(w) * 4)  # five steps: none, then lighter to stronger yellow/red
        style = ["", "on grey23", "black on yellow3", "black on orange1", "bold white on red3"][level]
        out.append(token, style=style)
    return out


def marked(tokens: list[str], weights: np.ndarray) -> str:
    """Without rich: the tokens with those of weight >= 0.5 in [[ ]].

    Example:
        >>> marked(["a", "good", "film"], np.array([0.1, 1.0, 0.4]))
        'a [[good]] film'
    """
    return " ".join(f"[[{t}]]" if w >= 0.5 else t for t, w in zip(tokens, weights, strict=False))


def show(args: argparse.Namespace) -> int:
    if args.cam_layer is not None:
        raise ValueError(
            "--cam-layer is for image models: a text model's Grad-CAM combines all its Conv1D branches "
            "(use --cam)"
        )
    model, extra, encoder = load_text_model(args.model)
    text = args.image  # the image command's positional argument: here, one sentence
    classes = [str(c) for c in extra.get("classes") or []]
    probs = probabilities(model, encoder, [text])[0]
    classes = classes or [str(i) for i in range(len(probs))]
    print(f"{_short(text)!r}: {_top(probs, classes, args.top_k)}")
    if not args.cam:
        return 0
    tokens = encoder.tokens([text])[0][: encoder.length]
    ids, lengths = encoder.encode([text])
    try:
        from rich.console import Console  # optional: the `train` extra

        console: Any = Console(highlight=False, markup=False, soft_wrap=True)
    except ImportError:
        console = None
    for c in np.argsort(-probs, kind="stable")[:2]:
        weights = text_grad_cam(model, ids, int(c), int(lengths[0]))
        print(f"Grad-CAM for {classes[c]} ({probs[c]:.1%}):", flush=True)
        if console is not None:
            console.print(highlighted(tokens, weights))
        else:
            print(marked(tokens, weights))
        ranked = sorted(range(len(tokens)), key=lambda i: -weights[i])[:5]
        print(
            "  words that decided: " + ", ".join(f"{tokens[i]} {weights[i]:.2f}" for i in ranked), flush=True
        )
    return 0
