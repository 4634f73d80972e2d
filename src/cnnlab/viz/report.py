"""``RUN_DIR/report.html``: one self-contained page per run (no network, images inlined).

Sections: Configuration, Model (summary with the size formulas), Metrics, Diagnosis,
Learning curves, Confusion matrix, Misclassified, Grad-CAM, Filters, Feature maps, Feature space
(a text run: its most confident mistakes as text with the words that decided highlighted,
``cnnlab.viz.text_report``, in place of the image sections).
Every PNG is embedded as a base64 ``data:`` URI and the CSS is inline, so the file can be
mailed or archived alone. All text from the run is escaped with ``html.escape``.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from pathlib import Path
from typing import Any

from cnnlab.atomic import write_text_atomic
from cnnlab.io import load_with_extra
from cnnlab.jsonfile import read_json_object
from cnnlab.train.analysis.diagnose import diagnose_run
from cnnlab.train.runs.files import (
    CONFIG_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    MODEL_FILE,
    PLOTS_DIR,
    REPORT_FILE,
)
from cnnlab.viz.run_plots import PLOT_FILES, plot_run
from cnnlab.viz.text_report import TEXT_MISTAKES_FILE, mistakes_html

#: (heading, plot keys) of the picture sections, in page order.
PLOT_SECTIONS = (
    ("Learning curves", ("curves",)),
    ("Confusion matrix", ("confusion", "per_class")),
    ("Misclassified", ("misclassified",)),
    ("Grad-CAM", ("gradcam",)),
    ("Filters", ("filters",)),
    ("Feature maps", ("feature_maps",)),
    ("Feature space", ("pca", "tsne")),
)
#: A text run's sections: its mistakes as highlighted text (no filters or feature-map images).
TEXT_MISTAKES_HEADING = "Most confident mistakes: the words that decided"
TEXT_PLOT_SECTIONS = (
    ("Learning curves", ("curves",)),
    ("Confusion matrix", ("confusion", "per_class")),
    (TEXT_MISTAKES_HEADING, ()),
    ("Feature space", ("pca", "tsne")),
)
CSS = """
body { font-family: system-ui, sans-serif; margin: 1em auto; max-width: 1100px; padding: 0 1em; color: #222; }
h1 { border-bottom: 2px solid #36c; }
h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; font-size: 0.9em; }
th { background: #eef; }
td.num { text-align: right; font-family: monospace; }
code, td.code { font-family: monospace; }
img { max-width: 100%; display: block; margin: 0.5em 0; border: 1px solid #eee; }
.verdict { font-size: 1.3em; font-weight: bold; }
.missing { color: #888; font-style: italic; }
.mistake { border-left: 3px solid #c33; padding-left: 0.6em; margin: 0.8em 0; }
.tok { padding: 1px 2px; border-radius: 2px; }
"""


def write_report(run_dir: str | os.PathLike[str], make_plots: bool = True, tsne: bool | None = None) -> Path:
    """Write ``RUN_DIR/report.html`` and return its path.

    Args:
        run_dir: a folder written by ``cnnlab train``.
        make_plots: first (re)draw the plots with ``plot_run``; otherwise embed the PNGs
            already in ``RUN_DIR/plots/``.
        tsne: passed to ``plot_run``.
    """
    run = Path(run_dir)
    if make_plots:
        plot_run(run, tsne=tsne)
    config = _read_json(run / CONFIG_FILE)
    metrics = _read_json(run / METRICS_FILE)
    title = f"cnnlab run {run.resolve().name}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        _section("Configuration", _config_html(config)),
        _section("Model", _model_html(run)),
        _section("Metrics", _metrics_html(metrics)),
        _section("Diagnosis", _diagnosis_html(run)),
    ]
    mistakes = run / PLOTS_DIR / TEXT_MISTAKES_FILE
    for heading, keys in TEXT_PLOT_SECTIONS if mistakes.exists() else PLOT_SECTIONS:
        if heading == TEXT_MISTAKES_HEADING:  # a text run: highlighted words, not images
            parts.append(_section(heading, mistakes_html(mistakes)))
            continue
        parts.append(_section(heading, "".join(_image_html(run / PLOTS_DIR / PLOT_FILES[k]) for k in keys)))
    parts.append("</body></html>\n")
    path = run / REPORT_FILE
    write_text_atomic(path, "\n".join(parts))  # a full disk keeps the old report (issue 23)
    return path


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _section(heading: str, body: str) -> str:
    return f"<section><h2>{_e(heading)}</h2>\n{body}\n</section>"


def _missing(text: str) -> str:
    return f'<p class="missing">{_e(text)}</p>'


def _table(head: tuple[str, ...], rows: list[tuple[Any, ...]], numeric: tuple[int, ...] = ()) -> str:
    out = ["<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        cells = "".join(
            f'<td class="num">{_e(v)}</td>' if i in numeric else f"<td>{_e(v)}</td>"
            for i, v in enumerate(row)
        )
        out.append(f"<tr>{cells}</tr>")
    return "\n".join(out) + "</table>"


def _config_html(config: dict[str, Any]) -> str:
    if not config:
        return _missing("no config.json in this run folder")
    rows = [(k, json.dumps(v) if isinstance(v, (dict, list)) or v is None else v) for k, v in config.items()]
    return _table(("setting", "value"), rows)


def _model_html(run: Path) -> str:
    if not (run / MODEL_FILE).exists():
        return _missing("no model.npz in this run folder")

    model, extra = load_with_extra(run / MODEL_FILE)
    input_shape = tuple(extra.get("input_shape") or ())
    if not hasattr(model, "summary") or not input_shape:
        return f"<pre>{_e(repr(model))}</pre>"
    rows = model.summary(input_shape, print_fn=None)
    table = _table(
        ("layer", "output shape", "parameters", "size formula"),
        [
            (r["layer"], "x".join(map(str, r["output_shape"])), f"{r['params']:,}", r["formula"] or "")
            for r in rows
        ],
        numeric=(2,),
    )
    total = sum(r["params"] for r in rows)
    classes = ", ".join(map(str, extra.get("classes") or []))
    return (
        f"<p>input: <code>{_e('x'.join(map(str, input_shape)))}</code>, "
        f"total parameters: <b>{total:,}</b>, classes: {_e(classes)}</p>\n{table}"
        "<p>Output size of a conv or pooling layer: floor((input - kernel + 2*padding) / stride) + 1.</p>"
    )


def _metrics_html(metrics: dict[str, Any]) -> str:
    if not metrics:
        return _missing("no metrics.json: the run did not reach the test evaluation")
    keys = ("test_accuracy", "test_loss", "top5_accuracy", "num_examples", "seconds")
    rows = [(k, _fmt(metrics[k])) for k in keys if k in metrics]
    out = _table(("metric", "value"), rows, numeric=(1,))
    per_class = metrics.get("per_class") or {}
    if per_class:
        cols = ("precision", "recall", "f1", "support")
        out += "\n<h3>Per class (test split)</h3>\n" + _table(
            ("class", *cols),
            [(name, *(_fmt(v.get(c, "")) for c in cols)) for name, v in per_class.items()],
            numeric=(1, 2, 3, 4),
        )
    return out


def _diagnosis_html(run: Path) -> str:
    if not (run / HISTORY_FILE).exists():
        return _missing("no history.csv: nothing to diagnose")

    try:
        result = diagnose_run(run)
    except (ValueError, KeyError) as exc:
        return _missing(f"diagnosis not available: {exc}")
    items = "".join(f"<li>{_e(r)}</li>" for r in result.reasons)
    advice = "".join(f"<li>{_e(a)}</li>" for a in result.advice)
    evidence = _table(("evidence", "value"), [(k, _fmt(v)) for k, v in result.evidence.items()], numeric=(1,))
    return (
        f'<p class="verdict">verdict: {_e(result.verdict)}</p>\n<ul>{items}</ul>\n'
        f"<h3>Advice</h3><ul>{advice}</ul>\n{evidence}"
    )


def _image_html(path: Path) -> str:
    if not path.exists():
        return _missing(f"{path.name} was not drawn for this run")
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(path.stem.replace("_", " "))}">'


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _read_json(path: Path) -> dict[str, Any]:
    return dict(read_json_object(path, missing={}))  # an error names the broken file
