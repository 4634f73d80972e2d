"""Train three small configs and print a hash of each run's weights and history.

A refactor that must not change behaviour is checked by running this before and after it:
the same seed must give the same weights and the same curves, bit for bit. Times are left
out of the history hash (they differ between any two runs).

    python tools/fingerprint_runs.py            # prints one line per config
    python tools/fingerprint_runs.py --json F   # also writes the hashes to F
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

#: Three configs that between them use every engine-side path a refactor may touch:
#: BatchNorm + augmentation + Adam + cosine; SGD + momentum + step schedule + dropout;
#: residual blocks + AdamW + label smoothing + plateau schedule.
CONFIGS: dict[str, list[str]] = {
    "small_bn-adam": ["--model", "small_bn", "--epochs", "2", "--augment", "shift,flip"],
    "vgg-sgd": [
        "--model", "vgg", "--depth", "2", "--width", "8", "--dropout", "0.2", "--optimizer", "sgd",
        "--lr", "0.05", "--momentum", "0.9", "--schedule", "step", "--epochs", "2",
    ],
    "resnet-adamw": [
        "--model", "resnet", "--optimizer", "adamw", "--label-smoothing", "0.1",
        "--schedule", "plateau", "--epochs", "2", "--batch-size", "32",
    ],
}  # fmt: skip

#: History columns that are measurements of time, not of learning.
TIME_COLUMNS = {"seconds", "time", "epoch_time", "images_per_s", "images_per_second"}


def weights_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with np.load(path, allow_pickle=False) as archive:
        for name in sorted(archive.files):
            array = archive[name]
            digest.update(name.encode())
            digest.update(str(array.dtype).encode() + str(array.shape).encode())
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def history_hash(path: Path) -> str:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    kept = [{k: v for k, v in row.items() if k not in TIME_COLUMNS} for row in rows]
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the hashes to this file")
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, options in CONFIGS.items():
            out = Path(tmp) / name
            command = [sys.executable, "-m", "cnnlab", "train", "--quiet", "--no-plots", "--seed", "0"]
            subprocess.run([*command, *options, "--out", str(out)], check=True, capture_output=True)
            results[name] = {
                "weights": weights_hash(out / "model.npz"),
                "history": history_hash(out / "history.csv"),
            }
            print(f"{name:14s} weights {results[name]['weights']}  history {results[name]['history']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
