"""Over/underfitting diagnosis from a run's learning curves (the lecture's tuning step 4).

One verdict per run, checked in this order (the first that holds wins). ``K`` is the number
of classes: a network that has learned nothing predicts 1/K everywhere, with the chance
loss ln K (2.303 for 10 classes) and the chance accuracy 1/K.

- ``diverging``: a loss is NaN/inf; the training loss blew up (above 10 ln K in some
  epoch); in a run of 3 or more epochs, it ends above where it started; it oscillates
  (it rose in at least 40% of the epochs, by more than 5% at least once); or the run ends
  at chance: the training (and validation) accuracy ends at most 5 points above 1/K --
  accuracy above that is learning, whatever the loss -- and either the training loss rose
  above 1.5 ln K on the way, or the run had 3 or more epochs. The reason quotes the final
  loss as "at or above" ln K only when it is, and as "within 2% of" it when it is between
  0.98 ln K and ln K. A run at chance whose loss never rose above 1.5 ln K and whose
  learning rate is below its optimizer's usual range is too slow to have learned yet
  (``undertrained``, raise the rate).
- ``undertrained`` (early): fewer than 3 epochs with training accuracy below 98%, when
  none of the above held: too few epochs to call anything else (issue 23 item 3).
- ``overfitting``: validation loss ends more than 10% above its best, at an earlier
  epoch, while the training loss kept falling; or the train/val accuracy gap exceeds 10
  points.
- ``undertrained``: both losses are still falling at the end (more than 1%/epoch for the
  training loss and 0.5%/epoch for the validation loss over the last epochs) and the
  training accuracy is below 98% (there is still something to learn).
- ``underfitting``: training accuracy is below 90% and validation accuracy is within 3
  points of it: the model cannot even fit its training data.
- ``good_fit``: none of the above. The reason says whether the training loss has settled
  (falling by at most 1%/epoch), or, if it was still falling, why that is no verdict of its
  own: 98% training accuracy or more, or a validation loss that has settled.

The thresholds are rules of thumb, stated in the evidence so a reader can judge them. The
advice (``cnnlab.train.analysis.advice``) is fitted to the run's config when it is known: it never
proposes what the run already did or an option its model does not have.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.data.datasets import DATASETS
from cnnlab.train.analysis import advice as _advice
from cnnlab.train.runs.files import CONFIG_FILE, HISTORY_FILE, METRICS_FILE


@dataclass
class Diagnosis:
    """The verdict, the numbers behind it, why, what to do, and the suggested commands.

    ``commands`` holds the argv (after ``cnnlab``) of every command line in ``advice``.
    """

    verdict: str
    evidence: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)
    commands: list[list[str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "evidence": self.evidence,
            "reasons": self.reasons,
            "advice": self.advice,
            "commands": self.commands,
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


#: Runs shorter than this are ``undertrained`` unless the loss blew up (docs/tutorial).
_MIN_EPOCHS = 3
#: Accuracy more than this above chance (1/K) is learning, whatever the loss says.
_CHANCE_MARGIN = 0.05


def _at_chance(ta: list[float], va: list[float] | None, K: int) -> bool:
    """Whether the final training (and validation) accuracy is at most 1/K + 5 points."""
    limit = 1 / K + _CHANCE_MARGIN
    return ta[-1] <= limit and (va is None or va[-1] <= limit)


def _chance_words(loss: float, train_acc: float, val_acc: float | None, K: int) -> str:
    """The evidence of a run at chance, each comparison worded as the numbers are."""
    chance_loss = math.log(K)
    accs = f"train {100 * train_acc:.1f}%" + (f", val {100 * val_acc:.1f}%" if val_acc is not None else "")
    acc_words = f"the accuracy ended at most 5 points above chance ({accs}; chance is {100 / K:.1f}%)"
    if loss >= chance_loss:
        where = "at or above"
    elif loss >= 0.98 * chance_loss:
        where = "within 2% of"
    else:
        return acc_words
    level = f"the chance level ln {K} = {chance_loss:.3f}"
    return f"the training loss ended at {loss:.4g}, {where} {level}, and {acc_words}"


def _column(rows: list[dict[str, Any]], name: str) -> list[float]:
    out = []
    for row in rows:
        v = row.get(name)
        try:
            out.append(float(v) if v not in (None, "") else math.nan)
        except (TypeError, ValueError):
            out.append(math.nan)
    return out


def _config_dict(config: Any) -> dict[str, Any] | None:
    if config is None or isinstance(config, dict):
        return config
    return dataclasses.asdict(config)  # a TrainConfig


def _classes_of(config: dict[str, Any] | None) -> int | None:
    data = None if config is None else config.get("data")
    return len(DATASETS[data]) if data in DATASETS else None


def diagnose(
    rows: list[dict[str, Any]],
    config: Any = None,
    num_classes: int | None = None,
    config_path: str | Path | None = None,
) -> Diagnosis:
    """Diagnose a history: rows with train_loss, train_accuracy, val_loss, val_accuracy.

    Args:
        rows: one dict per epoch (``history.rows`` or the rows of history.csv).
        config: the run's ``TrainConfig`` (or its dict); advice is then fitted to it.
        num_classes: K, for the chance level ln K (default: from the config's dataset).
        config_path: the run's config.json; advice then gives whole command lines.

    Example:
        >>> rows = [{"train_loss": 40.0, "train_accuracy": 0.1, "val_loss": 9.0, "val_accuracy": 0.1},
        ...         {"train_loss": 2.4, "train_accuracy": 0.1, "val_loss": 2.4, "val_accuracy": 0.1}]
        >>> d = diagnose(rows, {"optimizer": "adam", "lr": 2.0}, num_classes=10)
        >>> d.verdict
        'diverging'
        >>> print(d.advice[0])
        Lower the learning rate from 2 to 0.002 (adam's usual range is 0.0001 to 0.01) (`--lr 0.002`)
    """
    if not rows:
        raise ValueError("diagnose: the history is empty (no epoch finished)")
    cfg = _config_dict(config)
    curves = _Curves.of(rows, cfg, num_classes or _classes_of(cfg))
    path = Path(config_path) if config_path is not None else None
    for rule in (_diverging_or_at_chance, _too_few_epochs, _overfitting, _still_falling, _underfitting):
        found = rule(curves)
        if found is not None:
            name, reasons, suggestions = found
            break
    else:
        name, (reasons, settled) = "good_fit", _good_fit_reasons(curves)
        suggestions = _advice.good_fit(cfg, settled)
    lines, commands = _advice.advise(suggestions, cfg, path)
    return Diagnosis(name, curves.ev, reasons, lines, commands)


#: A verdict's name, its reasons and the suggestions behind its advice.
_Found = tuple[str, list[str], list[_advice.Suggestion]]


@dataclass
class _Curves:
    """The columns of a history and the evidence drawn from them (``Diagnosis.evidence``)."""

    tl: list[float]  # train loss per epoch
    ta: list[float]  # train accuracy
    vl: list[float]  # val loss (NaN without validation)
    va: list[float]  # val accuracy
    has_val: bool
    K: int | None  # classes
    chance_loss: float  # ln K (ln 1000 with K unknown: the blow-up test's bound)
    cfg: dict[str, Any] | None
    ev: dict[str, Any]

    @property
    def n(self) -> int:
        return len(self.tl)

    @classmethod
    def of(cls, rows: list[dict[str, Any]], cfg: dict[str, Any] | None, K: int | None) -> _Curves:
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
        # Chance level; with K unknown, the blow-up test assumes at most 1000 classes.
        chance_loss = math.log(K) if K and K > 1 else math.log(1000)
        if K and K > 1:
            ev |= {"num_classes": K, "chance_loss": chance_loss, "chance_accuracy": 1 / K}
        return cls(tl, ta, vl, va, has_val, K, chance_loss, cfg, ev)


def _diverging(c: _Curves, reason: str, *extra: _advice.Suggestion) -> _Found:
    return "diverging", [reason], [*_advice.diverging(c.cfg), *extra]


def _diverging_or_at_chance(c: _Curves) -> _Found | None:
    """1. A loss NaN/inf or blown up, ending above its start, oscillating; or still at chance."""
    tl, n, K = c.tl, c.n, c.K
    if any(not math.isfinite(v) for v in tl + (c.vl if c.has_val else [])):
        return _diverging(c, "a loss became NaN or infinite")
    worst = max(range(n), key=lambda i: tl[i])
    if tl[worst] > 10 * c.chance_loss:
        level = f"the chance level ln {K} = {c.chance_loss:.3f}" if "num_classes" in c.ev else "any sane loss"
        return _diverging(
            c,
            f"the training loss blew up to {tl[worst]:.4g} in epoch {worst + 1}, "
            f"{tl[worst] / c.chance_loss:.4g}x {level}",
        )
    if n >= _MIN_EPOCHS and tl[-1] > tl[0]:
        return _diverging(c, f"the training loss ended above its start ({tl[-1]:.4g} > {tl[0]:.4g})")
    rises = [tl[i + 1] > tl[i] for i in range(n - 1)]
    big_rise = any(tl[i + 1] > 1.05 * tl[i] for i in range(n - 1))
    if n >= 5 and sum(rises) >= 0.4 * (n - 1) and big_rise:
        return _diverging(c, f"the training loss rose in {sum(rises)} of {n - 1} epochs (oscillating)")
    if K and K > 1 and _at_chance(c.ta, c.va if c.has_val else None, K):
        # Accuracy above chance + 5 points is learning, whatever the loss (issue 23 item 3:
        # 26% after one lenet5 epoch was called "learned nothing" for a loss near ln 10).
        what = _chance_words(tl[-1], c.ta[-1], c.va[-1] if c.has_val else None, K)
        rose = tl[worst] > 1.5 * c.chance_loss
        cfg = c.cfg
        if not rose and cfg is not None and _advice.lr_below_range(cfg):
            return (
                "undertrained",
                [f"{what}: with a learning rate of {cfg['lr']:.3g} the network has barely moved"],
                _advice.lr_suggestions(cfg, lower=False),
            )
        if rose:
            what += f", after the training loss rose to {tl[worst]:.4g} in epoch {worst + 1}"
            return _diverging(c, f"{what}: the network has learned nothing")
        if n >= _MIN_EPOCHS:
            # never above chance: a too-high rate that killed the units at once, or bad labels
            check = _advice.Suggestion(
                "If a lower rate does not help, check that the labels match the images."
            )
            return _diverging(c, f"{what}: the network has learned nothing", check)
    return None


def _good_fit_reasons(c: _Curves) -> tuple[list[str], str]:
    """6. Why no rule held, and which of the curves has settled (for the advice).

    ``_still_falling`` calls a run undertrained only when both losses fall and the training
    accuracy is below 98%, so a good fit may still have a falling training loss: the reason
    then says which condition made it a good fit instead of "settled".
    """
    ev = c.ev
    train = 100 * ev["train_loss_trend_per_epoch"]
    if c.n < 2:  # one epoch has no trend (only a training accuracy of 98% or more gets here)
        return [
            f"training accuracy reached {100 * c.ta[-1]:.1f}% (98% or more) in one epoch and validation "
            "follows it (one epoch: no trend yet)"
        ], "training"
    if train >= -1:
        return ["validation follows training closely and the training loss has settled"], "settled"
    if c.ta[-1] >= 0.98:
        return [
            f"training accuracy reached {100 * c.ta[-1]:.1f}% (98% or more) and validation follows it; "
            f"the training loss was still falling ({train:.1f}%/epoch)"
        ], "training"
    return [
        f"the validation loss has settled ({100 * ev['val_loss_trend_per_epoch']:.1f}%/epoch) while the "
        f"training loss was still falling ({train:.1f}%/epoch)"
    ], "validation"


def _too_few_epochs(c: _Curves) -> _Found | None:
    """2. Fewer than 3 epochs (and no blow-up): too early to call anything else."""
    if c.n < _MIN_EPOCHS and c.ta[-1] < 0.98:
        too_few = f"only {c.n} epoch(s) ran (fewer than {_MIN_EPOCHS})"
        return (
            "undertrained",
            [f"{too_few}: too few to see where the curves are going"],
            _advice.undertrained(c.cfg, still_falling=False),
        )
    return None


def _overfitting(c: _Curves) -> _Found | None:
    """3. The validation loss rose from its best while training kept falling, or a wide gap."""
    if not c.has_val:
        return None
    tl, vl, best = c.tl, c.vl, c.ev["best_epoch"] - 1
    if best < c.n - 1 and vl[-1] > 1.10 * vl[best] and tl[-1] < tl[best]:
        return (
            "overfitting",
            [
                f"validation loss rose from {vl[best]:.4g} (epoch {best + 1}) to {vl[-1]:.4g} "
                "while the training loss kept falling"
            ],
            _advice.overfitting(c.cfg),
        )
    if c.ev["accuracy_gap"] > 0.10:
        return (
            "overfitting",
            [f"training accuracy exceeds validation accuracy by {100 * c.ev['accuracy_gap']:.1f} points"],
            _advice.overfitting(c.cfg),
        )
    return None


def _still_falling(c: _Curves) -> _Found | None:
    """4. Both losses still falling at the end: more epochs would help."""
    ev = c.ev
    still_train = ev["train_loss_trend_per_epoch"] < -0.01
    still_val = (not c.has_val) or ev["val_loss_trend_per_epoch"] < -0.005
    if c.n >= 2 and still_train and still_val and c.ta[-1] < 0.98:
        return (
            "undertrained",
            [
                "both losses were still falling at the end "
                f"(train {100 * ev['train_loss_trend_per_epoch']:.1f}%/epoch"
                + (f", val {100 * ev['val_loss_trend_per_epoch']:.1f}%/epoch)" if c.has_val else ")")
            ],
            _advice.undertrained(c.cfg, still_falling=True),
        )
    return None


def _underfitting(c: _Curves) -> _Found | None:
    """5. Low training accuracy on flat curves, validation close to it."""
    ta, ev = c.ta, c.ev
    if ta[-1] < 0.90 and (not c.has_val or abs(ev["accuracy_gap"]) < 0.03):
        return (
            "underfitting",
            [
                f"training accuracy is only {100 * ta[-1]:.1f}% and the curves have flattened"
                + (
                    f", with validation within {100 * abs(ev['accuracy_gap']):.1f} points"
                    if c.has_val
                    else ""
                )
            ],
            _advice.underfitting(c.cfg),
        )
    return None


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a run's history.csv (a run folder or the file itself)."""
    p = Path(path)
    if p.is_dir():
        p = p / HISTORY_FILE
    if not p.exists():
        raise FileNotFoundError(f"diagnose: no history at {p} (give a run folder with {HISTORY_FILE})")
    with open(p, newline="") as f:
        rows = list(csv.DictReader(f))
    needed = {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy"}
    if rows and not needed <= set(rows[0]):
        raise ValueError(f"diagnose: {p} must have columns {sorted(needed)}. Received: {sorted(rows[0])}")
    return rows


def diagnose_run(path: str | Path) -> Diagnosis:
    """Diagnose a run folder (or a history.csv), with advice fitted to its config.json.

    The class count for the chance level comes from metrics.json (its confusion matrix)
    or the config's dataset.
    """
    p = Path(path)
    folder = p if p.is_dir() else p.parent
    rows = read_history(p)
    config = config_path = num_classes = None
    if (folder / CONFIG_FILE).is_file():
        try:
            config = json.loads((folder / CONFIG_FILE).read_text())
            config_path = folder / CONFIG_FILE
        except (OSError, ValueError):
            config = None
        if not isinstance(config, dict):
            config, config_path = None, None
    try:
        metrics = json.loads((folder / METRICS_FILE).read_text())
        num_classes = len(metrics["confusion_matrix"]) or None
    except (OSError, ValueError, KeyError, TypeError):
        num_classes = None
    return diagnose(rows, config, num_classes=num_classes, config_path=config_path)
