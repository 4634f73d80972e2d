"""Pretrained word vectors from a GloVe or word2vec TEXT file, for an Embedding's rows.

Formats (both plain text, UTF-8, one word per line, values separated by spaces):

- GloVe: ``word v1 v2 ... vD``;
- word2vec text (``binary=False``): the same lines after a header line ``COUNT D``.

Only the words of the vocabulary are kept while the file is read line by line, so a
multi-gigabyte file needs no more memory than the vocabulary's rows. A word matches exactly,
else in lower case (the vocabulary is lower-cased; word2vec's GoogleNews vectors are not;
the first line that matches wins). Coverage: the share of the vocabulary's tokens (``<pad>``
and ``<unk>`` left out) that got a vector; the rest keep their random initial rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class WordVectors:
    """Rows found for a vocabulary: ``rows[i]`` is the vector of token ``ids[i]``."""

    dim: int
    ids: np.ndarray  # (M,) int64 vocabulary ids that got a vector
    rows: np.ndarray  # (M, D) float32
    vocabulary_size: int  # tokens that could have a vector (<pad> and <unk> left out)
    path: str

    @property
    def coverage(self) -> float:
        return len(self.ids) / self.vocabulary_size if self.vocabulary_size else 0.0

    def describe(self) -> str:
        return (
            f"word vectors {self.path}: {len(self.ids)} of {self.vocabulary_size} vocabulary tokens "
            f"found ({self.coverage:.1%} coverage), dimension {self.dim}"
        )


def read_word_vectors(path: str | os.PathLike[str], tokens: list[str]) -> WordVectors:
    """The vectors of ``tokens`` (a vocabulary's, ``<pad>`` and ``<unk>`` first) in a text file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line whose values are not numbers or not D of them (the line is named),
            or a file with no vectors at all.

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "glove.txt"
        >>> _ = f.write_text("the 0.1 0.2\\nCat 1 2\\n", encoding="utf-8")
        >>> wv = read_word_vectors(f, ["<pad>", "<unk>", "the", "cat", "dog"])
        >>> wv.ids.tolist(), wv.rows.tolist(), round(wv.coverage, 3)
        ([2, 3], [[0.10000000149011612, 0.20000000298023224], [1.0, 2.0]], 0.667)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"word vectors: no such file {path} (expected a GloVe/word2vec text file)")
    index = {token: i for i, token in enumerate(tokens) if i >= 2}
    found: dict[int, np.ndarray] = {}
    dim = None
    with path.open(encoding="utf-8", errors="strict") as f:
        for number, line in enumerate(f, start=1):
            parts = line.rstrip("\n").rstrip().split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec's header: COUNT D
            if len(parts) < 2:
                continue  # a blank line
            word, values = parts[0], parts[1:]
            if dim is None:
                dim = len(values)
            if len(values) != dim:
                raise ValueError(
                    f"word vectors {path}: line {number} has {len(values)} values; the first vector has {dim}"
                )
            i = index.get(word)
            if i is None:
                i = index.get(word.lower())
            if i is None or i in found:
                continue
            try:
                found[i] = np.array(values, dtype=np.float32)
            except ValueError:
                raise ValueError(
                    f"word vectors {path}: line {number} holds a value that is not a number"
                ) from None
    if dim is None:
        raise ValueError(f"word vectors {path}: no vectors in the file")
    ids = np.array(sorted(found), dtype=np.int64)
    rows = np.stack([found[i] for i in ids]) if len(ids) else np.zeros((0, dim), np.float32)
    return WordVectors(dim, ids, rows, max(len(tokens) - 2, 0), str(path))
