"""A text run's test-set pictures for ``cnnlab plot`` and report.html: its most confident
mistakes with the words that decided, and its feature space (issue 27).

An image run shows its mistakes as images with Grad-CAM heat maps; a text run shows them as
text, each token on a background as strong as its Grad-CAM weight
(``cnnlab.explain.text_cam``) for the predicted class, then for the true class. The run's
config names its data (``text:PATH?...``) and its model file holds the vocabulary, so the
test split is read and encoded exactly as ``cnnlab train`` did.

``text_test_plots`` writes ``plots/text_mistakes.json`` (plain data: tokens, classes,
weights) and the PCA (and t-SNE) picture of the penultimate features; ``mistakes_html``
turns the JSON into the report's HTML (every token escaped).
"""

from __future__ import annotations

import html
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.atomic import write_text_atomic
from cnnlab.data.text import TextEncoder, is_text_data, load_text
from cnnlab.explain.text_cam import text_grad_cam
from cnnlab.functional.activations import softmax
from cnnlab.jsonfile import read_json_object
from cnnlab.models.probe import penultimate_features
from cnnlab.train.evaluation.evaluate import align_labels
from cnnlab.train.runs.files import CONFIG_FILE
from cnnlab.viz.projection import has_sklearn, pca_2d, plot_projection, projection_problem, tsne_2d

#: In ``RUN_DIR/plots/``: the most confident test mistakes with their token weights.
TEXT_MISTAKES_FILE = "text_mistakes.json"
#: Mistakes shown (most confident first), as for images' Grad-CAM.
MAX_MISTAKES = 9
#: Test texts projected at most (t-SNE is quadratic in N).
MAX_PROJECTED = 600
#: The words listed as "the words that decided" per mistake.
TOP_WORDS = 5


def text_test_split(run: Path, extra: dict[str, Any]) -> tuple[list[str], np.ndarray, list[str]] | None:
    """``(texts, labels, classes)`` of the run's test split (labels in the model's class order),
    or None with a warning that says why."""
    config = dict(read_json_object(run / CONFIG_FILE, missing={}))
    name = str(config.get("data") or extra.get("dataset") or "")
    if not is_text_data(name):
        warnings.warn(f"{run}: no text dataset recorded; skipping plots of test texts", stacklevel=3)
        return None
    try:
        splits = load_text(name, min_classes=1)
    except (FileNotFoundError, ValueError, OSError) as exc:
        warnings.warn(f"{run}: cannot read the test texts of {name!r} ({exc}); skipping them", stacklevel=3)
        return None
    classes = [str(c) for c in extra.get("classes") or splits.classes]
    y, classes = align_labels(splits.y_test, splits.classes, classes, len(classes))
    return list(splits.test_texts), np.asarray(y), classes


def text_test_plots(run: Path, model: Any, extra: dict[str, Any], out: Path, tsne: bool | None) -> list[Path]:
    """Write the mistakes JSON and the feature-space pictures of a text run; return the paths."""
    test = text_test_split(run, extra)
    if test is None:
        return []
    texts, labels, classes = test
    encoder = TextEncoder.from_json(extra["text"], f"{run}/model.npz")
    ids, lengths = encoder.encode(texts)  # (N, L), (N,)
    model.eval()
    probs = softmax(model.predict(ids).astype(np.float64))  # (N, K)
    pred = probs.argmax(axis=1)
    confidence = probs[np.arange(len(pred)), pred]
    wrong = np.flatnonzero(pred != labels)
    wrong = wrong[np.argsort(-confidence[wrong], kind="stable")][:MAX_MISTAKES]  # (n,)
    tokens = encoder.tokens([texts[i] for i in wrong])
    rows = []
    for i, toks in zip(wrong, tokens, strict=True):
        row_ids, length = ids[i : i + 1], int(lengths[i])
        rows.append(
            {
                "index": int(i),
                "tokens": toks[:length],
                "cut": max(len(toks) - length, 0),  # tokens after the padded length: not read
                "true": classes[labels[i]],
                "pred": classes[pred[i]],
                "confidence": round(float(confidence[i]), 4),
                "p_true": round(float(probs[i, labels[i]]), 4),
                "weights_pred": _rounded(text_grad_cam(model, row_ids, int(pred[i]), length)),
                "weights_true": _rounded(text_grad_cam(model, row_ids, int(labels[i]), length)),
            }
        )
    out.mkdir(parents=True, exist_ok=True)
    path = out / TEXT_MISTAKES_FILE
    summary = {"test_texts": len(texts), "mistakes": int((pred != labels).sum()), "shown": rows}
    write_text_atomic(path, json.dumps(summary, ensure_ascii=False) + "\n")
    return [path, *_projections(model, ids, labels, classes, out, tsne)]


def _rounded(weights: np.ndarray) -> list[float]:
    return [round(float(w), 3) for w in weights]


def _projections(
    model: Any, ids: np.ndarray, labels: np.ndarray, classes: list[str], out: Path, tsne: bool | None
) -> list[Path]:
    """PCA (and t-SNE) of the penultimate features of at most MAX_PROJECTED test texts."""
    rng = np.random.default_rng(0)  # a fixed subset: the same picture each time
    subset = np.sort(rng.permutation(len(ids))[:MAX_PROJECTED])
    features = penultimate_features(model, ids[subset])  # (n, F)
    methods = {"feature_space_pca.png": ("PCA", pca_2d)}
    if has_sklearn() if tsne is None else tsne:
        methods["feature_space_tsne.png"] = ("t-SNE", tsne_2d)
    written = []
    for name, (method, project) in methods.items():
        problem = projection_problem(features, method)
        if problem is not None:
            warnings.warn(f"{out.parent}: skipping the {method} projection: {problem}", stacklevel=3)
            continue
        written.append(plot_projection(project(features), labels[subset], classes, out / name, method))
    return written


# ---- report.html ------------------------------------------------------------------------------
def highlighted_html(tokens: list[str], weights: list[float]) -> str:
    """The tokens, each on a red background as strong as its weight (0..1), weight in the tooltip.

    Example:
        >>> highlighted_html(["<b>"], [1.0])
        '<span class="tok" style="background: rgba(220, 40, 20, 0.85)" title="1.00">&lt;b&gt;</span>'
    """
    return " ".join(
        f'<span class="tok" style="background: rgba(220, 40, 20, {0.85 * w:.2f})" title="{w:.2f}">'
        f"{html.escape(t)}</span>"
        for t, w in zip(tokens, weights, strict=False)
    )


def _deciding(tokens: list[str], weights: list[float]) -> str:
    ranked = sorted(range(len(tokens)), key=lambda i: -weights[i])[:TOP_WORDS]
    return ", ".join(f"{html.escape(tokens[i])} {weights[i]:.2f}" for i in ranked if weights[i] > 0)


def mistakes_html(path: Path) -> str:
    """The report section's body: one block per mistake, the text highlighted twice (for the
    predicted class, then for the true class) with the words that decided."""
    data = dict(read_json_object(path, missing={}))
    rows = data.get("shown") or []
    head = (
        f"<p>{data.get('mistakes', 0)} of {data.get('test_texts', 0)} test texts are misclassified; "
        f"the {len(rows)} most confident mistakes, each word on a background as strong as its "
        "Grad-CAM weight over the Conv1D branches (cnnlab.explain.text_cam).</p>"
    )
    if not rows:
        return head
    blocks = []
    for r in rows:
        e = html.escape
        cut = f' <span class="missing">(+{r["cut"]} tokens not read)</span>' if r.get("cut") else ""
        blocks.append(
            f'<div class="mistake"><p><b>test text {r["index"]}</b>: true <b>{e(r["true"])}</b> '
            f"(p {r['p_true']:.3f}), predicted <b>{e(r['pred'])}</b> ({r['confidence']:.1%})</p>\n"
            f"<p>for {e(r['pred'])}: {highlighted_html(r['tokens'], r['weights_pred'])}{cut}<br>"
            f"<small>words that decided: {_deciding(r['tokens'], r['weights_pred'])}</small></p>\n"
            f"<p>for {e(r['true'])}: {highlighted_html(r['tokens'], r['weights_true'])}<br>"
            f"<small>words that decided: {_deciding(r['tokens'], r['weights_true'])}</small></p></div>"
        )
    return head + "\n" + "\n".join(blocks)
