"""The dashboard's try-it box on a text run: top-k probabilities and the words that decided.

A run folder with ``vocab.json`` is a text run (``cnnlab train --data text:PATH``). The page
sends the typed text (UTF-8) to ``POST /api/predict``; the answer has the numbers that
``cnnlab predict RUN "text"`` prints (the same encoder, ``softmax(model.predict(ids))``) and
the Grad-CAM weight of each token for the top class (``cnnlab show RUN "text" --cam``).

The weights are model.npz's, or a newer checkpoint's on model.npz's architecture
(``models.latest_model``). A text run writes model.npz when training ends or is
interrupted; before that its try-it box answers 409 and says so.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.dashboard import models
from cnnlab.data.text import TextEncoder
from cnnlab.explain.text_cam import text_grad_cam
from cnnlab.functional.activations import softmax
from cnnlab.train.runs.files import MODEL_FILE
from cnnlab.train.runs.text_run import VOCAB_FILE

#: Texts longer than this many bytes are refused (413) before they are decoded.
MAX_TEXT_BYTES = 64 * 1024
#: "The words that decided": this many, strongest first.
TOP_WORDS = 5

#: Layers keep forward caches (Grad-CAM runs backward on them): one computation at a time.
_compute = threading.Lock()


class BadText(models.BadImage):
    """A body that is not UTF-8 text, or holds no token (answered 400, as a bad image)."""


def is_text_run(run_dir: Path) -> bool:
    """A run trained on text: its folder holds the vocabulary (vocab.json)."""
    return (run_dir / VOCAB_FILE).is_file()


def read_text(data: bytes) -> str:
    """The posted bytes as text (UTF-8; a BOM is skipped), or ``BadText`` naming the byte."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadText(
            f"the text must be UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} is not valid"
        ) from None
    if not text.strip():
        raise BadText("the text is empty: type a sentence to classify")
    return text


def predict_text(run_dir: Path, data: bytes, top_k: int = 5) -> dict[str, Any]:
    """Top-k probabilities of the posted text and its tokens' Grad-CAM weights for the top class."""
    text = read_text(data)
    if not (run_dir / MODEL_FILE).is_file():
        raise models.NoWeights(
            f"{run_dir.name}: a text run can be tried once its {MODEL_FILE} is written "
            "(when training ends or is interrupted)"
        )
    model, extra, source = models.latest_model(run_dir)
    encoder = TextEncoder.from_json(extra["text"], f"{run_dir.name}/{MODEL_FILE}")
    ids, lengths = encoder.encode([text])  # (1, L), (1,)
    tokens = encoder.tokens([text])[0]
    length = int(lengths[0])
    with _compute:
        model.eval()
        probs = softmax(model.predict(ids).astype(np.float64))[0]  # (K,)
        best = int(np.argmax(probs))
        weights = text_grad_cam(model, ids, best, length) if length else np.zeros(0)
    classes = [str(c) for c in extra.get("classes") or range(len(probs))]
    top = np.argsort(-probs, kind="stable")[: max(1, min(top_k, len(probs)))]
    shown = tokens[:length]
    ranked = sorted(range(length), key=lambda i: -weights[i])[:TOP_WORDS]
    return {
        "source": source,
        "text": True,
        "classes": classes,
        "probabilities": probs.tolist(),
        "top": [{"class": classes[i], "index": int(i), "probability": float(probs[i])} for i in top],
        "tokens": shown,
        "unknown": [t not in encoder.vocab.index for t in shown],  # read as <unk>
        "cut": max(len(tokens) - length, 0),  # tokens past the padded length: not read
        "weights": [round(float(w), 4) for w in weights],
        "deciding": [{"token": shown[i], "weight": round(float(weights[i]), 4)} for i in ranked],
    }
