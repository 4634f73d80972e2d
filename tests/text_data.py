"""Generated text data and a tiny trained text run, for the tests of the text workbench (issue 27)."""

from __future__ import annotations

import random
from pathlib import Path

from cnnlab.cli.main import main

POSITIVE = "good great lovely wonderful excellent".split()
NEGATIVE = "bad awful terrible boring poor".split()
FILLER = "the movie was and a it plot actors film story".split()


def reviews(root: Path, per_class: int = 40, seed: int = 0, ending: str = " <b>☺</b>") -> Path:
    """pos/ and neg/ folders of .txt reviews: filler words plus two words of the class, then ``ending``."""
    rng = random.Random(seed)
    for name, words in (("pos", POSITIVE), ("neg", NEGATIVE)):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            tokens = [rng.choice(FILLER) for _ in range(rng.randint(4, 12))]
            for _ in range(2):
                tokens.insert(rng.randrange(len(tokens) + 1), rng.choice(words))
            (root / name / f"{i}.txt").write_text(" ".join(tokens) + ending, encoding="utf-8")
    return root


def train_text(data: Path, out: Path, epochs: int = 1, *more: str) -> Path:
    """``cnnlab train --data text:DATA`` with a tiny textcnn; the run folder."""
    argv = [
        "train", "--data", f"text:{data}?min_count=1", "--epochs", str(epochs), "--embedding-dim", "16",
        "--maps", "8", "--widths", "2,3", "--lr", "0.01", "--batch-size", "16", "--out", str(out), "--quiet",
        *more,
    ]  # fmt: skip
    assert main(argv) == 0
    return out
