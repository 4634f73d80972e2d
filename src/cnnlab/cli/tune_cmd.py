"""``cnnlab tune``: search hyperparameters with Optuna; the best config re-runs with `cnnlab train --config`.

The study is saved (default OUT/study.db): running the same command again adds --trials
more trials. Needs Optuna: pip install optuna (or pip install cnnlab[tune]).
"""

from __future__ import annotations

import argparse
from typing import Any

from cnnlab.data.text import is_text_data
from cnnlab.errors import CnnlabError
from cnnlab.train.analysis.tune import load_space, require_optuna, tune


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "tune", help="search hyperparameters (Optuna) and write the best config", description=__doc__
    )
    p.add_argument("--data", default="digits", help="dataset name or image folder (default digits)")
    p.add_argument("--data-dir", default=None, help="where the dataset files are")
    p.add_argument("--trials", type=int, required=True, help="trials to run now (added to the study)")
    p.add_argument("--epochs", type=int, default=10, help="the most epochs a trial trains (default 10)")
    p.add_argument("--timeout", type=float, default=None, help="stop starting trials after S seconds")
    p.add_argument("--storage", default=None, help="Optuna storage URL (default sqlite:///OUT/study.db)")
    p.add_argument("--study-name", default=None, help="study name (default cnnlab-DATA)")
    p.add_argument("--space", default=None, help="YAML/JSON file overriding the search space")
    p.add_argument("--out", default=None, help="tune folder (default runs/tune-DATA)")
    p.add_argument("--seed", type=int, default=0, help="seed for the sampler and every trial's training")
    p.add_argument("--quiet", action="store_true", help="print only the final summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    optuna = require_optuna()
    # We print our own line per trial; a failed trial's error is ours to print, once, as one message.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    result = tune(
        args.data,
        args.trials,
        epochs=args.epochs,
        timeout=args.timeout,
        storage=args.storage,
        study_name=args.study_name,
        space=load_space(args.space, text=is_text_data(args.data)),
        out=args.out,
        data_dir=args.data_dir,
        seed=args.seed,
        verbose=not args.quiet,
    )
    if args.quiet:
        print(result.table)
    completed = [t for t in result.study.trials if t.state.name == "COMPLETE"]
    if not completed:
        print("no trial completed: run again with more --trials or --epochs")
        return 0
    best = max(completed, key=lambda t: t.value)
    if result.at_chance:
        raise CnnlabError(
            f"no trial learned anything: the best, trial {best.number}, has val accuracy {best.value:.4f}, "
            f"chance level (always guessing the most common class gives {result.chance:.4f}); "
            "no best_config.json written.\n"
            "Check that the images and their class folders match, then widen the search: "
            "a lower learning-rate range in --space, more --epochs, more --trials"
        )
    print(f"best: trial {best.number}, val accuracy {best.value:.4f} ({len(result.study.trials)} trials)")
    print(f"best config: {result.best_config_path}")
    print(f"reproduce:   cnnlab train --config {result.best_config_path}")
    return 0
