"""Recipe: classify Debian fortune cookies by category with textcnn, against two baselines.

    python examples/text_fortunes.py [--classes science,love,...] [--epochs 15]

Needs the ``fortunes`` package (/usr/share/games/fortunes). The data: the chosen category
files, split 80/20 stratified (seed 0) into train and test; 20% of train (stratified, seed 1)
is the validation part. Every setting below is chosen by validation accuracy only; the
test split is used once per method, at the end:

- majority class: always the most frequent training class;
- bag-of-words logistic regression (NumPy): word counts (log1p), softmax regression with
  L2 penalty chosen from a grid, trained with full-batch Adam;
- textcnn (Kim, 2014): a small grid of embedding size, maps and dropout, with early
  stopping on the validation loss (best epoch's weights restored).

Prints a table and one JSON line (docs/text.md quotes the figures).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from cnnlab.data.loader import stratified_split
from cnnlab.data.text import TextEncoder, load_text
from cnnlab.losses import SoftmaxCrossEntropy
from cnnlab.models.textcnn import textcnn
from cnnlab.optim import make_optimizer
from cnnlab.train.evaluation.evaluate import evaluate_arrays
from cnnlab.train.loop.callbacks import EarlyStopping
from cnnlab.train.loop.fit import fit

CLASSES = "science,love,sports,computers,food,law,medicine"
FORTUNES = "/usr/share/games/fortunes"


def bag_of_words(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """(N, V) log(1 + count) of each token id (padding and <unk> columns zeroed)."""
    counts = np.zeros((len(ids), vocab_size))
    for n, row in enumerate(ids):
        np.add.at(counts[n], row, 1.0)
    counts[:, :2] = 0.0
    return np.log1p(counts)


def logistic_regression(x: np.ndarray, y: np.ndarray, k: int, l2: float, steps: int = 300) -> np.ndarray:
    """Softmax regression weights (V + 1, K) by full-batch Adam on cross-entropy + l2 * |W|^2."""
    x1 = np.hstack([x, np.ones((len(x), 1))])  # (N, V + 1): bias column
    w = np.zeros((x1.shape[1], k))
    m, v = np.zeros_like(w), np.zeros_like(w)
    onehot = np.eye(k)[y]
    for t in range(1, steps + 1):
        z = x1 @ w
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        g = x1.T @ (p - onehot) / len(x1) + 2 * l2 * np.vstack([w[:-1], np.zeros((1, k))])
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w -= 0.05 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return w


def lr_accuracy(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((np.hstack([x, np.ones((len(x), 1))]) @ w).argmax(axis=1) == y))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", default=CLASSES)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--max-len", type=int, default=None, help="padded length (default: from the data)")
    args = parser.parse_args()
    start = time.perf_counter()
    query = f"classes={args.classes}" + (f"&max_len={args.max_len}" if args.max_len else "")
    splits = load_text(f"text:{FORTUNES}?{query}")
    fit_idx, val_idx = stratified_split(splits.y_train, 0.2, rng=1)
    texts_fit = [splits.train_texts[i] for i in fit_idx]
    y_fit, y_val, y_test = splits.y_train[fit_idx], splits.y_train[val_idx], splits.y_test
    encoder = TextEncoder.fit(texts_fit, splits.options)  # vocabulary from the fitting part only
    x_fit, _ = encoder.encode(texts_fit)
    x_val, _ = encoder.encode([splits.train_texts[i] for i in val_idx])
    x_test, _ = encoder.encode(splits.test_texts)
    K, V = len(splits.classes), len(encoder.vocab)
    print(f"{splits!r}: fit {len(y_fit)}, validation {len(y_val)}, test {len(y_test)}; {encoder.describe()}")
    results: dict[str, dict[str, float | str]] = {}

    # 1. Majority class.
    majority = int(np.bincount(y_fit, minlength=K).argmax())
    results["majority class"] = {
        "val": float(np.mean(y_val == majority)),
        "test": float(np.mean(y_test == majority)),
        "setting": splits.classes[majority],
        "seconds": 0.0,
    }

    # 2. Bag-of-words logistic regression, L2 chosen on validation.
    t0 = time.perf_counter()
    b_fit, b_val, b_test = (bag_of_words(x, V) for x in (x_fit, x_val, x_test))
    best = max(
        (
            (lr_accuracy(w, b_val, y_val), l2, w)
            for l2 in (1e-4, 1e-3, 1e-2)
            for w in [logistic_regression(b_fit, y_fit, K, l2)]
        ),
        key=lambda r: r[0],
    )
    results["bag-of-words logistic regression"] = {
        "val": best[0],
        "test": lr_accuracy(best[2], b_test, y_test),
        "setting": f"l2={best[1]}",
        "seconds": round(time.perf_counter() - t0, 1),
    }

    # 3. textcnn: a small grid, early stopping on the validation loss.
    grid = [
        {"embedding_dim": 64, "maps": 50, "dropout": 0.5},
        {"embedding_dim": 128, "maps": 100, "dropout": 0.5},
        {"embedding_dim": 64, "maps": 100, "dropout": 0.3},
    ]
    trials = []
    for setting in grid:
        t0 = time.perf_counter()
        model = textcnn(V, encoder.length, K, rng=np.random.default_rng(0), **setting)
        optimizer = make_optimizer("adam", model.parameters(), lr=1e-3)
        history = fit(
            model,
            SoftmaxCrossEntropy(),
            optimizer,
            (x_fit, y_fit),
            val_data=(x_val, y_val),
            epochs=args.epochs,
            batch_size=50,
            callbacks=[EarlyStopping(monitor="val_loss", patience=3)],
            verbose=False,
        )
        val = evaluate_arrays(model, x_val, y_val, splits.classes)["accuracy"]
        seconds = time.perf_counter() - t0
        print(
            f"  textcnn {setting}: val {val:.3f} after {len(history.rows)} epochs ({seconds:.0f} s)",
            flush=True,
        )
        trials.append((val, setting, model, len(history.rows), seconds))
    val, setting, model, epochs, seconds = max(trials, key=lambda t: t[0])
    results["textcnn"] = {
        "val": val,
        "test": evaluate_arrays(model, x_test, y_test, splits.classes)["accuracy"],
        "setting": f"{setting}, {epochs} epochs",
        "seconds": round(seconds, 1),
    }

    print(f"\n{'method':36s} {'val acc':>8s} {'test acc':>8s}  {'time':>7s}  chosen setting")
    for name, r in results.items():
        print(f"{name:36s} {r['val']:8.3f} {r['test']:8.3f}  {r['seconds']:6.1f}s  {r['setting']}")
    print(f"total {time.perf_counter() - start:.0f} s")
    print(json.dumps({"classes": splits.classes, "results": results}))


if __name__ == "__main__":
    main()
