"""Text datasets: ``text:PATH[?option=value&...]``, split, tokenized and encoded as token ids.

PATH is one of (see ``cnnlab.data.text_files``):

- a folder of class folders of ``.txt`` files (``reviews/pos/1.txt``), optionally under
  ``train/`` and ``test/`` (as image folders);
- a ``.csv`` or ``.tsv`` file with a header row, one text and its label per row;
- a folder of fortune files (``/usr/share/games/fortunes``): one file per category.

Options (after ``?``, joined by ``&``; all optional):

=============  =====================================================================
text, label    the CSV/TSV columns (default ``text`` and ``label``)
classes        a comma-separated subset of the classes (fortunes: which files)
encoding       of every file (default utf-8; a BOM is skipped)
tokenizer      ``words`` (default) or ``chars`` (``cnnlab.data.vocab.tokenize``)
min_count      a token needs this many occurrences in the training texts (default 2)
max_vocab      at most this many ids, <pad> and <unk> included (default 20000)
max_len        the padded length (default: chosen from the training texts, see
               ``cnnlab.data.vocab.choose_length``)
test_fraction  share of each class held out for testing without ``test/`` (default 0.2)
=============  =====================================================================

The split is the image folders' rule: stratified by class, seed 0, ``ceil(0.2 * N)`` texts
for testing (``cnnlab.data.loader.stratified_split``); the vocabulary and the length come
from the training part only.

Example:
    >>> parse_spec("text:data/news.csv?text=body&label=topic&min_count=1")
    ('data/news.csv', {'text': 'body', 'label': 'topic', 'min_count': 1})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np

from cnnlab.data.loader import stratified_split
from cnnlab.data.text_files import read_folder, read_fortunes, read_table
from cnnlab.data.vocab import TOKENIZERS, Vocabulary, choose_length, tokenize

PREFIX = "text:"
#: Option -> (type, default).
OPTIONS: dict[str, tuple[type, Any]] = {
    "text": (str, "text"),
    "label": (str, "label"),
    "classes": (str, None),
    "encoding": (str, "utf-8"),
    "tokenizer": (str, "words"),
    "min_count": (int, 2),
    "max_vocab": (int, 20_000),
    "max_len": (int, None),
    "test_fraction": (float, 0.2),
}


def is_text_data(data: str) -> bool:
    """Whether a ``--data`` value names a text dataset (``text:PATH``)."""
    return isinstance(data, str) and data.startswith(PREFIX)


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``text:PATH?a=1&b=2`` -> ``(PATH, {"a": 1, "b": 2})`` with each value of its option's type."""
    if not is_text_data(spec):
        raise ValueError(f"text dataset: expected text:PATH. Received: {spec!r}")
    path, _, query = spec[len(PREFIX) :].partition("?")
    if not path:
        raise ValueError(f"text dataset: no path after text:. Received: {spec!r}")
    options: dict[str, Any] = {}
    for part in filter(None, query.split("&")):
        key, sep, value = part.partition("=")
        if key not in OPTIONS or not sep:
            raise ValueError(
                f"text dataset: option {part!r} in {spec!r} is not name=value with a known name. "
                f"Valid names: {', '.join(OPTIONS)}"
            )
        kind = OPTIONS[key][0]
        try:
            options[key] = kind(unquote(value))
        except ValueError:
            raise ValueError(
                f"text dataset: option {key} must be {'an int' if kind is int else 'a number'}. "
                f"Received: {key}={value!r}"
            ) from None
    if options.get("tokenizer", "words") not in TOKENIZERS:
        raise ValueError(
            f"text dataset: option tokenizer must be one of {', '.join(TOKENIZERS)}. "
            f"Received: {options['tokenizer']!r}"
        )
    for key in ("min_count", "max_vocab", "max_len"):
        if key in options and options[key] < 1:
            raise ValueError(f"text dataset: option {key} must be a positive int. Received: {options[key]}")
    if not 0 < options.get("test_fraction", 0.2) < 1:
        raise ValueError(
            f"text dataset: option test_fraction must be in (0, 1). Received: {options['test_fraction']}"
        )
    return path, options


def option(options: dict[str, Any], key: str) -> Any:
    """An option's value, or its default."""
    return options.get(key, OPTIONS[key][1])


def read_labelled(path: Path, options: dict[str, Any]) -> dict[str, list[str]]:
    """``{class: texts}`` from a folder, a CSV/TSV or fortune files (see the module docstring)."""
    encoding = option(options, "encoding")
    classes = option(options, "classes")
    wanted = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
    if path.is_file():
        found = read_table(path, option(options, "text"), option(options, "label"), encoding)
    elif not path.is_dir():
        raise FileNotFoundError(
            f"text dataset: {path} does not exist (expected a folder or a .csv/.tsv file)"
        )
    elif any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir()):
        found = read_folder(path, encoding)
    else:
        return read_fortunes(path, wanted, encoding)
    if wanted:
        unknown = [c for c in wanted if c not in found]
        if unknown:
            raise ValueError(
                f"text dataset {path}: class {unknown[0]!r} (option classes=) has no texts. "
                f"Classes: {', '.join(found)}"
            )
        found = {c: found[c] for c in sorted(wanted)}
    return found


def _flatten(found: dict[str, list[str]], classes: list[str]) -> tuple[list[str], np.ndarray]:
    texts = [t for name in found for t in found[name]]
    labels = np.array([classes.index(name) for name in found for _ in found[name]], dtype=np.int64)
    return texts, labels


@dataclass
class TextSplits:
    """A text dataset's train and test texts (raw strings), labels and class names."""

    name: str
    classes: list[str]
    train_texts: list[str]
    y_train: np.ndarray
    test_texts: list[str]
    y_test: np.ndarray
    options: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"TextSplits({self.name!r}: train {len(self.train_texts)}, test {len(self.test_texts)}, "
            f"{len(self.classes)} classes)"
        )


def load_text(spec: str, min_classes: int = 2) -> TextSplits:
    """Read ``text:PATH?...`` and split it: train/test folders, or stratified (seed 0)."""
    name, options = parse_spec(spec)
    path = Path(name)
    if path.is_dir() and (path / "train").is_dir():
        train = read_labelled(path / "train", options)
        test = read_labelled(path / "test", options) if (path / "test").is_dir() else None
    else:
        train, test = read_labelled(path, options), None
    classes = sorted(train)
    if len(classes) < min_classes:
        raise ValueError(
            f"text dataset {path}: found {len(classes)} class ({', '.join(classes)}); a classifier needs "
            f"at least {min_classes}"
        )
    if test is not None and set(test) - set(train):
        raise ValueError(
            f"text dataset {path}: test/ has classes missing from train/: {sorted(set(test) - set(train))}"
        )
    texts, y = _flatten(train, classes)
    if test is not None:
        test_texts, y_test = _flatten(test, classes)
        return TextSplits(path.resolve().name, classes, texts, y, test_texts, y_test, options)
    if len(texts) < 4:
        raise ValueError(f"text dataset {path}: {len(texts)} texts are too few to split into train and test")
    train_idx, test_idx = stratified_split(y, option(options, "test_fraction"), rng=0)
    return TextSplits(
        path.resolve().name,
        classes,
        [texts[i] for i in train_idx],
        y[train_idx],
        [texts[i] for i in test_idx],
        y[test_idx],
        options,
    )


@dataclass
class TextEncoder:
    """Tokenizer + vocabulary + padded length: raw strings to (N, L) int64 token ids.

    Built from the training texts (``fit``), saved as vocab.json (``to_json``), read back
    by ``cnnlab predict`` / ``evaluate`` / ``show`` (``from_json``).
    """

    vocab: Vocabulary
    tokenizer: str
    length: int
    length_reason: str

    @classmethod
    def fit(cls, texts: list[str], options: dict[str, Any]) -> TextEncoder:
        tokenizer = option(options, "tokenizer")
        tokens = [tokenize(t, tokenizer) for t in texts]
        vocab = Vocabulary.build(tokens, option(options, "min_count"), option(options, "max_vocab"))
        if option(options, "max_len") is not None:
            length, why = int(options["max_len"]), "given (max_len)"
        else:
            length, why = choose_length([len(t) for t in tokens], tokenizer)
        return cls(vocab, tokenizer, length, why)

    def tokens(self, texts: list[str]) -> list[list[str]]:
        return [tokenize(t, self.tokenizer) for t in texts]

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, lengths)``: (N, L) int64 token ids and (N,) real lengths (after truncation)."""
        return self.vocab.encode(self.tokens(texts), self.length)

    def to_json(self) -> dict[str, Any]:
        return self.vocab.to_json(
            tokenizer=self.tokenizer, lowercase=True, length=self.length, length_reason=self.length_reason
        )

    @classmethod
    def from_json(cls, data: Any, where: str = "vocab.json") -> TextEncoder:
        vocab = Vocabulary.from_json(data, where)
        return cls(
            vocab,
            str(data.get("tokenizer", "words")),
            int(data["length"]),
            str(data.get("length_reason", "")),
        )

    def describe(self) -> str:
        """One line for the user: vocabulary size, tokenizer and the padded length with its reason."""
        return (
            f"{len(self.vocab)} tokens ({self.tokenizer}, min_count {self.vocab.min_count}); "
            f"texts padded/cut to {self.length} tokens: {self.length_reason}"
        )
