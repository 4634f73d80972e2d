"""Text to token ids: a deterministic tokenizer, a vocabulary, padding and truncation.

- ``tokenize(text, "words")``: lower-cased words and punctuation marks, e.g.
  ``"Don't panic!" -> ["don", "'", "t", "panic", "!"]``. A word is a run of Unicode letters,
  digits and underscores (regex ``\\w+``); every other visible character is a token of its
  own; white space separates tokens and is dropped. ``"chars"``: lower-cased characters,
  each run of white space becoming one space. Text is NFC-normalized first, so "é" typed
  as one or two code points gives the same token. No other state: the same text always
  gives the same tokens.
- ``Vocabulary.build(token_lists)``: the tokens of the TRAINING split only (so nothing is
  learned from test texts), id 0 ``<pad>``, id 1 ``<unk>``, then the tokens seen at least
  ``min_count`` times, most frequent first (ties in code-point order), at most ``max_size``
  ids in all. Saved as JSON (``to_json`` / ``from_json``), never pickle.
- ``choose_length(lengths)``: the padded length: the 95th percentile of the training texts'
  token counts, at least ``MIN_LENGTH`` and at most ``MAX_LENGTH`` (the reason is returned).
- ``Vocabulary.encode(token_lists, length)``: (N, L) int64 ids, padded with 0 at the end and
  truncated (the first L tokens are kept), and the (N,) real lengths.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlab.errors import arg_error

TOKENIZERS = ("words", "chars")
PAD, UNK = "<pad>", "<unk>"
#: Shortest padded length: room for the widest usual filter (Kim's 5) and a little context.
MIN_LENGTH = 8
#: Longest padded length chosen from the data: 400 words is a long review; longer texts are cut.
MAX_LENGTH = {"words": 400, "chars": 1000}
PERCENTILE = 95
VOCAB_FORMAT = "cnnlab-vocab"

_WORDS = re.compile(r"\w+|[^\w\s]")
_SPACES = re.compile(r"\s+")


def tokenize(text: str, tokenizer: str = "words") -> list[str]:
    """Split ``text`` into lower-cased tokens (see the module docstring for the exact rule).

    Example:
        >>> tokenize("Don't panic!  Größe 42.")
        ['don', "'", 't', 'panic', '!', 'größe', '42', '.']
        >>> tokenize("Hi  you", "chars")
        ['h', 'i', ' ', 'y', 'o', 'u']
    """
    if tokenizer not in TOKENIZERS:
        raise arg_error("tokenize", "tokenizer", f"one of {', '.join(TOKENIZERS)}", tokenizer)
    text = unicodedata.normalize("NFC", text).lower()
    if tokenizer == "words":
        return _WORDS.findall(text)
    return list(_SPACES.sub(" ", text).strip())


def choose_length(lengths: Sequence[int], tokenizer: str = "words") -> tuple[int, str]:
    """The padded length for texts of these token counts, and why (for the user).

    Example:
        >>> choose_length([3, 10, 12, 20] * 5)
        (20, '95th percentile of the training texts (20 tokens)')
        >>> choose_length([2, 3])[0]
        8
    """
    cap = MAX_LENGTH[tokenizer]
    value = math.ceil(float(np.percentile(np.asarray(lengths, dtype=np.float64), PERCENTILE)))
    why = f"{PERCENTILE}th percentile of the training texts ({value} tokens)"
    if value > cap:
        return cap, f"{why}, capped at {cap}"
    if value < MIN_LENGTH:
        return MIN_LENGTH, f"{why}, raised to the minimum {MIN_LENGTH}"
    return value, why


@dataclass
class Vocabulary:
    """Token <-> id. Ids 0 and 1 are ``<pad>`` and ``<unk>`` (any token not in the table).

    Example:
        >>> vocab = Vocabulary.build([["a", "b", "a"], ["c", "a"]], min_count=1)
        >>> vocab.tokens
        ['<pad>', '<unk>', 'a', 'b', 'c']
        >>> ids, lengths = vocab.encode([["a", "zzz"]], length=4)
        >>> ids.tolist(), lengths.tolist()
        ([[2, 1, 0, 0]], [2])
    """

    tokens: list[str]
    min_count: int = 1
    max_size: int = 20_000

    def __post_init__(self) -> None:
        if self.tokens[:2] != [PAD, UNK] or len(set(self.tokens)) != len(self.tokens):
            raise ValueError(
                f"Vocabulary: tokens must start with {PAD!r}, {UNK!r} and hold no duplicate. "
                f"Received: {self.tokens[:5]}..."
            )
        self.index = {token: i for i, token in enumerate(self.tokens)}

    @classmethod
    def build(
        cls, token_lists: Sequence[Sequence[str]], min_count: int = 1, max_size: int = 20_000
    ) -> Vocabulary:
        """The vocabulary of ``token_lists`` (the training texts): frequent tokens first."""
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise arg_error("Vocabulary", "min_count", "an int >= 1", min_count)
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 3:
            raise arg_error("Vocabulary", "max_size", "an int >= 3 (<pad>, <unk> and one token)", max_size)
        counts = Counter(token for tokens in token_lists for token in tokens)
        counts.pop(PAD, None)
        counts.pop(UNK, None)
        kept = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        return cls([PAD, UNK, *kept[: max_size - 2]], min_count, max_size)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, token_lists: Sequence[Sequence[str]], length: int) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, lengths)``: (N, length) int64 ids padded with 0 / cut after ``length``; (N,) int64."""
        ids = np.zeros((len(token_lists), length), dtype=np.int64)  # (N, L), 0 = <pad>
        lengths = np.zeros(len(token_lists), dtype=np.int64)  # (N,)
        for n, tokens in enumerate(token_lists):
            row = [self.index.get(t, 1) for t in tokens[:length]]
            ids[n, : len(row)] = row
            lengths[n] = len(row)
        return ids, lengths

    def unknown_share(self, token_lists: Sequence[Sequence[str]]) -> float:
        """The share of tokens that are not in the vocabulary (0 for no tokens)."""
        total = sum(len(tokens) for tokens in token_lists)
        unknown = sum(t not in self.index for tokens in token_lists for t in tokens)
        return unknown / total if total else 0.0

    def to_json(self, **settings: Any) -> dict[str, Any]:
        """The JSON object of vocab.json; ``settings`` (tokenizer, length, ...) are stored beside."""
        return {
            "format": VOCAB_FORMAT,
            "version": 1,
            **settings,
            "min_count": self.min_count,
            "max_size": self.max_size,
            "size": len(self.tokens),
            "tokens": list(self.tokens),
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "vocab.json") -> Vocabulary:
        """The vocabulary of a ``to_json`` object; anything else is refused by name."""
        if (
            not isinstance(data, dict)
            or data.get("format") != VOCAB_FORMAT
            or not isinstance(data.get("tokens"), list)
        ):
            raise ValueError(
                f"{where}: not a cnnlab vocabulary (expected a JSON object with "
                f'"format": "{VOCAB_FORMAT}" and a "tokens" list)'
            )
        return cls(
            [str(t) for t in data["tokens"]], int(data.get("min_count", 1)), int(data.get("max_size", 20_000))
        )
