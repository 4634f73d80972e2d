"""Over/underfitting diagnosis from a run's learning curves (the lecture's tuning step 4).

One verdict per run, checked in this order (the first that holds wins):

- ``diverging``: a loss is NaN/inf, the training loss ends above where it started, or it
  oscillates (it rose in at least 40% of the epochs, by more than 5% at least once).
- ``overfitting``: validation loss ends more than 10% above its best, at an earlier
  epoch, while the training loss kept falling; or the train/val accuracy gap exceeds 10
  points.
- ``undertrained``: both losses are still falling at the end (more than 1%/epoch for the
  training loss and 0.5%/epoch for the validation loss over the last epochs) and the
  training accuracy is below 98% (there is still something to learn); also any run of
  fewer than 3 epochs below 98% training accuracy.
- ``underfitting``: training accuracy is below 90% and validation accuracy is within 3
  points of it: the model cannot even fit its training data.
- ``good_fit``: none of the above.

The thresholds are rules of thumb, stated in the evidence so a reader can judge them.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ADVICE = {
    "diverging": [
        "Lower the learning rate (e.g. 10x: --lr 0.0002 instead of 0.002).",
        "Use a schedule with warmup (--schedule cosine) or gradient-friendly optimizer (--optimizer adam).",
        "Check the data for NaN/inf and that inputs are normalized.",
    ],
    "overfitting": [
        "Add image data augmentation (--augment shift,flip).",
        "Regularize: dropout (--dropout 0.3) and weight decay (--weight-decay 5e-4).",
        "Stop early at the best epoch (--early-stopping 3 restores the best weights).",
        "Get more training data, or use a smaller model.",
    ],
    "undertrained": [
        "Train for more epochs (--epochs): both curves were still improving.",
        "Or raise the learning rate a little to converge faster.",
    ],
    "underfitting": [
        "Use a deeper or wider topology (--model vgg --depth 3 --width 32, --model resnet).",
        "Train longer or with a larger learning rate; reduce regularization (dropout, weight decay).",
        "Check the inputs are normalized and the labels are right.",
    ],
    "good_fit": [
        "The curves agree and have settled. To go further: tune the learning rate and batch size "
        "(cnnlab tune), or try augmentation with a larger model.",
    ],
}


@dataclass
class Diagnosis:
    verdict: str
    evidence: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "evidence": self.evidence,
            "reasons": self.reasons,
            "advice": self.advice,
        }

    def __str__(self) -> str:
        lines = [f"diagnosis: {self.verdict}"]
        lines += [f"  because {r}" for r in self.reasons]
        ev = self.evidence
        lines.append("  evidence: " + ", ".join(f"{k}={_fmt(v)}" for k, v in ev.items()))
        lines += [f"  advice: {a}" for a in self.advice]
        return "\n".join(lines)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _trend(values: list[float], k: int) -> float:
    """Mean relative change per epoch over the last ``k`` epochs (negative = falling)."""
    tail = values[-(k + 1) :]
    if len(tail) < 2 or tail[0] == 0:
        return 0.0
    return (tail[-1] - tail[0]) / abs(tail[0]) / (len(tail) - 1)


def _column(rows: list[dict[str, Any]], name: str) -> list[float]:
    out = []
    for row in rows:
        v = row.get(name)
        try:
            out.append(float(v) if v not in (None, "") else math.nan)
        except (TypeError, ValueError):
            out.append(math.nan)
    return out


def diagnose(rows: list[dict[str, Any]]) -> Diagnosis:
    """Diagnose a history: rows with train_loss, train_accuracy, val_loss, val_accuracy."""
    if not rows:
        raise ValueError("diagnose: the history is empty (no epoch finished)")
    tl, ta = _column(rows, "train_loss"), _column(rows, "train_accuracy")
    vl, va = _column(rows, "val_loss"), _column(rows, "val_accuracy")
    n = len(rows)
    k = max(1, min(3, n - 1))
    has_val = not all(math.isnan(v) for v in vl)
    ev: dict[str, Any] = {"epochs": n, "final_train_loss": tl[-1], "final_train_accuracy": ta[-1]}
    if has_val:
        finite_vl = [v if math.isfinite(v) else math.inf for v in vl]
        best = min(range(n), key=lambda i: finite_vl[i])
        ev |= {
            "final_val_loss": vl[-1],
            "final_val_accuracy": va[-1],
            "best_epoch": best + 1,
            "best_val_loss": vl[best],
            "accuracy_gap": ta[-1] - va[-1],
            "loss_ratio_val_train": vl[-1] / max(tl[-1], 1e-12),
        }
    ev |= {"train_loss_trend_per_epoch": _trend(tl, k)}
    if has_val:
        ev["val_loss_trend_per_epoch"] = _trend(vl, k)

    def verdict(name: str, *reasons: str) -> Diagnosis:
        return Diagnosis(name, ev, list(reasons), ADVICE[name])

    # 1. diverging
    losses = tl + (vl if has_val else [])
    if any(not math.isfinite(v) for v in losses):
        return verdict("diverging", "a loss became NaN or infinite")
    if n >= 2 and tl[-1] > tl[0]:
        return verdict("diverging", f"the training loss ended above its start ({tl[-1]:.4g} > {tl[0]:.4g})")
    rises = [tl[i + 1] > tl[i] for i in range(n - 1)]
    big_rise = any(tl[i + 1] > 1.05 * tl[i] for i in range(n - 1))
    if n >= 5 and sum(rises) >= 0.4 * (n - 1) and big_rise:
        return verdict("diverging", f"the training loss rose in {sum(rises)} of {n - 1} epochs (oscillating)")
    # 2. overfitting
    if has_val:
        best = ev["best_epoch"] - 1
        if best < n - 1 and vl[-1] > 1.10 * vl[best] and tl[-1] < tl[best]:
            return verdict(
                "overfitting",
                f"validation loss rose from {vl[best]:.4g} (epoch {best + 1}) to {vl[-1]:.4g} "
                "while the training loss kept falling",
            )
        if ev["accuracy_gap"] > 0.10:
            return verdict(
                "overfitting",
                f"training accuracy exceeds validation accuracy by {100 * ev['accuracy_gap']:.1f} points",
            )
    # 3. undertrained
    if n < 3 and ta[-1] < 0.98:
        return verdict("undertrained", f"only {n} epoch(s) ran: too few to see where the curves are going")
    still_train = ev["train_loss_trend_per_epoch"] < -0.01
    still_val = (not has_val) or ev["val_loss_trend_per_epoch"] < -0.005
    if n >= 2 and still_train and still_val and ta[-1] < 0.98:
        return verdict(
            "undertrained",
            "both losses were still falling at the end "
            f"(train {100 * ev['train_loss_trend_per_epoch']:.1f}%/epoch"
            + (f", val {100 * ev['val_loss_trend_per_epoch']:.1f}%/epoch)" if has_val else ")"),
        )
    # 4. underfitting
    if ta[-1] < 0.90 and (not has_val or abs(ev["accuracy_gap"]) < 0.03):
        return verdict(
            "underfitting",
            f"training accuracy is only {100 * ta[-1]:.1f}% and the curves have flattened"
            + (f", with validation within {100 * abs(ev['accuracy_gap']):.1f} points" if has_val else ""),
        )
    return verdict("good_fit", "validation follows training closely and both have settled")


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a run's history.csv (a run folder or the file itself)."""
    p = Path(path)
    if p.is_dir():
        p = p / "history.csv"
    if not p.exists():
        raise FileNotFoundError(f"diagnose: no history at {p} (give a run folder with history.csv)")
    with open(p, newline="") as f:
        rows = list(csv.DictReader(f))
    needed = {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy"}
    if rows and not needed <= set(rows[0]):
        raise ValueError(f"diagnose: {p} must have columns {sorted(needed)}. Received: {sorted(rows[0])}")
    return rows


def diagnose_run(path: str | Path) -> Diagnosis:
    return diagnose(read_history(path))
