"""One training run on text (``cnnlab train --data text:PATH``): the text twin of ``run.py``.

Reads top to bottom: read and split the texts, build the tokenizer's vocabulary and padded
length from the training split only, build ``textcnn``, fit, test, write the run folder::

    RUN_DIR/
      config.json    the resolved config
      vocab.json     tokens (id = position), tokenizer, padded length and why (no pickle)
      model.npz      architecture + weights + class names + the same text settings
      history.csv    one row per epoch
      metrics.json   test accuracy and loss, per-class metrics, confusion matrix
      checkpoint.npz to resume (`cnnlab train --resume RUN_DIR`)

What differs from image runs: no per-channel normalization and no augmentation (token ids
are indices, not intensities); the numpy backend only; ``--tensorboard`` writes the scalars
and the weight/gradient histograms (no filter or feature-map images: there is no Conv2D).
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.atomic import write_text_atomic
from cnnlab.data.text import PREFIX, TextEncoder, TextSplits, load_text, parse_spec
from cnnlab.errors import CnnlabError
from cnnlab.io import save
from cnnlab.models.textcnn import textcnn
from cnnlab.models.word_vectors import read_word_vectors
from cnnlab.train.evaluation.evaluate import evaluate_arrays
from cnnlab.train.loop.checkpoint import CheckpointWriter, TrainingInterrupted
from cnnlab.train.loop.fit import fit
from cnnlab.train.loop.tensorboard import import_tensorboard
from cnnlab.train.runs.config import TrainConfig
from cnnlab.train.runs.files import CHECKPOINT_FILE, METRICS_FILE, MODEL_FILE
from cnnlab.train.runs.run import (
    RunResult,
    claim_and_write_config,
    default_run_dir,
    earlier_seconds,
    load_resume_checkpoint,
    loss_optimizer_schedule,
    run_callbacks,
)
from cnnlab.train.runs.runfolder import preflight

VOCAB_FILE = "vocab.json"
TEXT_MODELS = ("textcnn",)
#: textcnn's options (``model_args``): its signature after the four the data decides.
TEXT_MODEL_OPTIONS = tuple(list(inspect.signature(textcnn).parameters)[4:])


@dataclass
class TextRunData:
    """The texts as a run uses them: (N, L) int64 token ids and (N,) labels per split."""

    splits: TextSplits
    encoder: TextEncoder
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def with_absolute_text_paths(config: TrainConfig) -> TrainConfig:
    """The dataset path and a word-vectors path made absolute (the run works from anywhere)."""
    path, _, query = config.data[len(PREFIX) :].partition("?")
    data = PREFIX + str(Path(path).resolve()) + (f"?{query}" if query else "")
    model_args = dict(config.model_args)
    if isinstance(model_args.get("vectors"), str):
        model_args["vectors"] = str(Path(model_args["vectors"]).resolve())
    return dataclasses.replace(config, data=data, model_args=model_args)


def check_text_config(config: TrainConfig) -> None:
    """Refuse what text runs do not do (yet), naming the option."""
    if config.model not in TEXT_MODELS:
        raise CnnlabError(
            f"train: text data ({config.data}) needs a text model: --model {' or '.join(TEXT_MODELS)}. "
            f"Received: --model {config.model}"
        )
    unknown = [k for k in config.model_args if k not in TEXT_MODEL_OPTIONS]
    if unknown:
        raise CnnlabError(
            f"train: --{unknown[0].replace('_', '-')} is not an option of textcnn "
            f"(it takes {', '.join(TEXT_MODEL_OPTIONS)})"
        )
    for option, value, default in (
        ("--backend", config.backend, "numpy"),
        ("--augment", config.augment, "none"),
        ("--tta", config.tta, "none"),
    ):
        if value != default:
            raise CnnlabError(f"train: {option} {value} is not supported for text data yet (use {default})")


def load_text_run_data(config: TrainConfig, encoder: TextEncoder | None = None) -> TextRunData:
    """Read and split the texts; fit the encoder on the training texts unless one is given."""
    splits = load_text(config.data)
    encoder = encoder or TextEncoder.fit(splits.train_texts, splits.options)
    x_train, _ = encoder.encode(splits.train_texts)  # (N, L)
    x_test, _ = encoder.encode(splits.test_texts)  # (M, L)
    return TextRunData(splits, encoder, x_train, splits.y_train, x_test, splits.y_test)


def build_text_model(config: TrainConfig, data: TextRunData, verbose: bool = False) -> Any:
    """``textcnn`` for the data's vocabulary, length and classes, seeded by ``config.seed``."""
    args = dict(config.model_args)
    if args.get("vectors"):
        vectors = read_word_vectors(args["vectors"], data.encoder.vocab.tokens)
        if verbose:
            print(vectors.describe())
        args["vectors"] = vectors
    return textcnn(
        len(data.encoder.vocab),
        data.encoder.length,
        len(data.splits.classes),
        rng=np.random.default_rng(config.seed),
        **args,
    )


def train_text_run(
    config: TrainConfig,
    verbose: bool = True,
    callbacks: Sequence[Any] = (),
    resume: bool = False,
    overwrite: bool = False,
    hold: contextlib.ExitStack[Any] | None = None,
    default_dir: Path | None = None,
) -> RunResult:
    """Train ``textcnn`` on ``config.data`` (``text:PATH``) and write the run folder.

    The same contract as ``cnnlab.train.runs.run.train_run``: everything is checked before
    the folder is claimed; ``resume`` continues from its checkpoint (with its vocab.json).
    """
    if hold is None:
        with contextlib.ExitStack() as stack:
            return train_text_run(config, verbose, callbacks, resume, overwrite, stack, default_dir)
    config.validate()
    check_text_config(config)
    parse_spec(config.data)  # option errors before any file is read
    config = with_absolute_text_paths(config)
    if config.tensorboard:  # the install hint before anything is written
        import_tensorboard()
    start = time.perf_counter()
    run_dir = Path(config.out) if config.out else (default_dir or default_run_dir())
    if config.out:
        preflight(run_dir, resume, overwrite)

    # 1. Texts -> token ids: vocabulary and length from the training split only.
    saved_vocab = run_dir / VOCAB_FILE
    encoder = None
    if resume and saved_vocab.is_file():
        encoder = TextEncoder.from_json(json.loads(saved_vocab.read_text(encoding="utf-8")), str(saved_vocab))
    data = load_text_run_data(config, encoder)
    if verbose:  # (cnnlab tune's trials are quiet)
        print(f"text data: {data.splits!r}; vocabulary: {data.encoder.describe()}")

    # 2. Model, loss, optimizer, schedule.
    model = build_text_model(config, data, verbose=True)
    loss, optimizer, schedule = loss_optimizer_schedule(config, model)

    # 3. Claim the folder; write config.json and vocab.json before training.
    run_dir = claim_and_write_config(config, run_dir, True, resume, overwrite, hold)  # True: is_main
    vocab_json = data.encoder.to_json()
    write_text_atomic(run_dir / VOCAB_FILE, json.dumps(vocab_json, ensure_ascii=False) + "\n")
    checkpoint_path = run_dir / CHECKPOINT_FILE
    initial_state = load_resume_checkpoint(run_dir, model, optimizer) if resume else None
    seconds_before = earlier_seconds(initial_state)
    write_checkpoint = CheckpointWriter(checkpoint_path, True, initial_state.epoch if initial_state else 0)

    # TensorBoard: scalars and histograms (its images need a Conv2D or an image sample).
    all_callbacks = run_callbacks(config, run_dir, callbacks, sample=None)
    extra = {
        "classes": list(data.splits.classes),
        "input_shape": [data.encoder.length],
        "dataset": config.data,
        "text": vocab_json,  # the model file alone can tokenize (cnnlab predict MODEL.npz "...")
    }
    save_model = True
    try:
        history = fit(
            model,
            loss,
            optimizer,
            (data.x_train, data.y_train),
            val_split=config.val_split,
            epochs=config.epochs,
            batch_size=config.batch_size,
            callbacks=all_callbacks,
            seed=config.seed,
            schedule=schedule,
            verbose=verbose,
            initial_state=initial_state,
            checkpoint_fn=write_checkpoint,
        )
    except KeyboardInterrupt:
        done = write_checkpoint.saved_epoch
        save_model = done > 0
        raise TrainingInterrupted(
            f"cnnlab train: interrupted; {done} of {config.epochs} epochs are saved in {run_dir}. "
            f"Resume with: cnnlab train --resume {run_dir}",
            run_dir,
            done,
        ) from None
    finally:
        if save_model:
            save(model, run_dir / MODEL_FILE, extra=extra)

    # 4. Test: the test split is used once, here.
    metrics = evaluate_arrays(model, data.x_test, data.y_test, data.splits.classes)
    seconds = time.perf_counter() - start
    metrics["seconds"] = round(seconds + seconds_before, 2)
    metrics["vocabulary"] = {"size": len(data.encoder.vocab), "length": data.encoder.length}
    write_text_atomic(run_dir / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    if verbose:
        unknown = data.encoder.vocab.unknown_share(data.encoder.tokens(data.splits.test_texts))
        print(f"test texts: {unknown:.1%} of their tokens are not in the vocabulary (<unk>)", file=sys.stderr)
    return RunResult(run_dir, metrics["test_accuracy"], metrics["test_loss"], seconds, history, metrics)
