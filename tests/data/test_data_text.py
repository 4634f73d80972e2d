"""Text datasets: readers, spec options, tokenizer, vocabulary, length, split, errors (issue 27)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cnnlab.data import load_dataset
from cnnlab.data.loader import stratified_split
from cnnlab.data.text import TextEncoder, load_text, parse_spec
from cnnlab.data.text_files import read_fortune_file
from cnnlab.data.vocab import MAX_LENGTH, MIN_LENGTH, Vocabulary, choose_length, tokenize


def write_folder(root: Path, classes: dict[str, list[str]]) -> Path:
    for name, texts in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i, text in enumerate(texts):
            (root / name / f"{i:03d}.txt").write_text(text, encoding="utf-8")
    return root


# ---- tokenizer ------------------------------------------------------------------------------
def test_tokenize_words_lowercases_and_splits_punctuation() -> None:
    assert tokenize("Don't PANIC!! 3.14") == ["don", "'", "t", "panic", "!", "!", "3", ".", "14"]


def test_tokenize_unicode_is_nfc_normalized() -> None:
    composed, decomposed = "caf\u00e9 Ünïcode 日本語", "cafe\u0301 U\u0308ni\u0308code 日本語"
    assert tokenize(composed) == tokenize(decomposed) == ["café", "ünïcode", "日本語"]


def test_tokenize_chars_collapses_white_space() -> None:
    assert tokenize(" A\t\nb ", "chars") == ["a", " ", "b"]


def test_tokenize_unknown_tokenizer_is_named() -> None:
    with pytest.raises(
        ValueError, match=r"tokenizer` must be one of words, chars. Received: tokenizer='bpe'"
    ):
        tokenize("x", "bpe")


# ---- vocabulary -----------------------------------------------------------------------------
def test_vocabulary_order_min_count_and_max_size() -> None:
    tokens = [["b", "a", "c", "a"], ["b", "d"], ["a"]]  # a:3, b:2, c:1, d:1
    assert Vocabulary.build(tokens, min_count=1).tokens == ["<pad>", "<unk>", "a", "b", "c", "d"]
    assert Vocabulary.build(tokens, min_count=2).tokens == ["<pad>", "<unk>", "a", "b"]
    assert Vocabulary.build(tokens, min_count=1, max_size=4).tokens == ["<pad>", "<unk>", "a", "b"]


def test_encode_pads_truncates_and_maps_unknowns() -> None:
    vocab = Vocabulary.build([["a", "b"]])
    ids, lengths = vocab.encode([["a"], ["b", "x", "a", "b"]], length=3)
    assert ids.tolist() == [[2, 0, 0], [3, 1, 2]] and ids.dtype == np.int64
    assert lengths.tolist() == [1, 3]


def test_vocabulary_json_round_trip_and_refusal() -> None:
    vocab = Vocabulary.build([["x", "y", "y"]], min_count=1)
    data = json.loads(json.dumps(vocab.to_json(tokenizer="words")))
    assert Vocabulary.from_json(data).tokens == vocab.tokens
    with pytest.raises(ValueError, match=r"not a cnnlab vocabulary"):
        Vocabulary.from_json({"tokens": "abc"})


def test_choose_length_percentile_cap_and_floor() -> None:
    assert choose_length(list(range(1, 101)))[0] == 96  # 95th percentile of 1..100 is 95.05
    length, why = choose_length([5000] * 10)
    assert length == MAX_LENGTH["words"] and "capped" in why
    assert choose_length([1, 2])[0] == MIN_LENGTH


# ---- readers and spec --------------------------------------------------------------------------
def test_parse_spec_options_and_errors() -> None:
    assert parse_spec("text:a b.csv?text=body&max_len=50") == ("a b.csv", {"text": "body", "max_len": 50})
    with pytest.raises(ValueError, match=r"option 'colour=red'.*Valid names"):
        parse_spec("text:x?colour=red")
    with pytest.raises(ValueError, match=r"min_count must be an int. Received: min_count='two'"):
        parse_spec("text:x?min_count=two")
    with pytest.raises(ValueError, match=r"no path after text:"):
        parse_spec("text:")


def test_folder_split_is_stratified_like_images(tmp_path: Path) -> None:
    root = write_folder(
        tmp_path, {"pos": [f"good {i}" for i in range(10)], "neg": [f"bad {i}" for i in range(5)]}
    )
    splits = load_text(f"text:{root}")
    assert splits.classes == ["neg", "pos"]
    assert (len(splits.train_texts), len(splits.test_texts)) == (12, 3)
    y = np.array([0] * 5 + [1] * 10)  # the same rule as image folders: stratified_split, seed 0
    _, test_idx = stratified_split(y, 0.2, rng=0)
    texts = [f"bad {i}" for i in range(5)] + [f"good {i}" for i in range(10)]
    assert splits.test_texts == [texts[i] for i in test_idx]


def test_folder_with_train_and_test(tmp_path: Path) -> None:
    write_folder(tmp_path / "train", {"a": ["x y", "x"], "b": ["z", "z z"]})
    write_folder(tmp_path / "test", {"a": ["x"], "b": ["z"]})
    splits = load_text(f"text:{tmp_path}")
    assert splits.test_texts == ["x", "z"] and splits.y_test.tolist() == [0, 1]


def test_csv_and_tsv_with_named_columns(tmp_path: Path) -> None:
    csv_path = tmp_path / "news.csv"
    csv_path.write_text(
        'id,body,topic\n1,"Goals, goals",sport\n2,Rates rise,money\n3,Match won,sport\n4,Bank,money\n',
        encoding="utf-8",
    )
    splits = load_text(f"text:{csv_path}?text=body&label=topic&test_fraction=0.5")
    assert splits.classes == ["money", "sport"]
    assert sorted(splits.train_texts + splits.test_texts) == [
        "Bank",
        "Goals, goals",
        "Match won",
        "Rates rise",
    ]
    tsv = tmp_path / "t.tsv"
    tsv.write_text("text\tlabel\na b\tx\nc\ty\nd\tx\ne\ty\n", encoding="utf-8")
    assert load_text(f"text:{tsv}").classes == ["x", "y"]


def test_csv_without_the_named_column(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("body,topic\nx,y\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"no column 'text' \(columns: 'body', 'topic'\).*text=COLUMN"):
        load_text(f"text:{path}")


def test_csv_empty_cell_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("text,label\nx,a\n,b\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"row 3 has an empty 'text' cell"):
        load_text(f"text:{path}")


def test_fortune_format(tmp_path: Path) -> None:
    (tmp_path / "food").write_text("Eat.\n%\nDrink\n  -- someone\n%\n%\n", encoding="utf-8")
    (tmp_path / "law").write_text("Sue.\n%\nJudge _\bn_\bo_\bt.\n", encoding="utf-8")
    (tmp_path / "law.dat").write_bytes(b"\x00\x01binary index")
    (tmp_path / "sports").write_text("Run.\n%\nJump.\n", encoding="utf-8")
    assert read_fortune_file(tmp_path / "food") == ["Eat.", "Drink\n  -- someone"]
    assert read_fortune_file(tmp_path / "law")[1] == "Judge not."  # overstriking removed
    splits = load_text(f"text:{tmp_path}?classes=food,law&test_fraction=0.25")
    assert splits.classes == ["food", "law"]
    with pytest.raises(ValueError, match=r"no fortune file 'art'.*Found: food, law, sports"):
        load_text(f"text:{tmp_path}?classes=art,law")


def test_empty_file_is_named(tmp_path: Path) -> None:
    root = write_folder(tmp_path, {"a": ["x", "y"], "b": ["z", "w"]})
    (root / "b" / "empty.txt").write_text("  \n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"empty\.txt is empty"):
        load_text(f"text:{root}")


def test_undecodable_bytes_name_file_and_encoding(tmp_path: Path) -> None:
    root = write_folder(tmp_path, {"a": ["x", "y"], "b": ["z", "w"]})
    (root / "b" / "latin.txt").write_bytes("caf\u00e9".encode("latin-1"))
    with pytest.raises(
        ValueError, match=r"latin\.txt is not valid utf-8: byte 0xe9 at offset 3.*encoding=latin-1"
    ):
        load_text(f"text:{root}")
    splits = load_text(f"text:{root}?encoding=latin-1")  # the way out the message names
    assert "café" in splits.train_texts + splits.test_texts


def test_class_without_texts(tmp_path: Path) -> None:
    root = write_folder(tmp_path, {"a": ["x", "y"], "b": ["z"]})
    (root / "c").mkdir()
    with pytest.raises(ValueError, match=r"class 'c' has no texts"):
        load_text(f"text:{root}")


def test_one_class_is_refused(tmp_path: Path) -> None:
    root = write_folder(tmp_path, {"a": ["x", "y", "z", "w"]})
    with pytest.raises(ValueError, match=r"found 1 class.*at least 2"):
        load_text(f"text:{root}")


def test_huge_file_is_truncated_and_does_not_set_the_length(tmp_path: Path) -> None:
    texts = {"a": [f"short text number {i}" for i in range(20)], "b": [f"another one {i}" for i in range(20)]}
    root = write_folder(tmp_path, texts)
    (root / "a" / "huge.txt").write_text("word " * 1_000_000, encoding="utf-8")  # 5 MB, 1M tokens
    splits = load_text(f"text:{root}")
    encoder = TextEncoder.fit(splits.train_texts, splits.options)
    assert encoder.length == MIN_LENGTH  # the 95th percentile ignores one outlier
    ids, lengths = encoder.encode(splits.train_texts + splits.test_texts)
    assert ids.shape[1] == encoder.length and lengths.max() == encoder.length


def test_vocabulary_comes_from_the_training_split_only(tmp_path: Path) -> None:
    write_folder(tmp_path / "train", {"a": ["apple apple", "apple"], "b": ["berry berry", "berry"]})
    write_folder(tmp_path / "test", {"a": ["testonly testonly"], "b": ["testonly"]})
    splits = load_text(f"text:{tmp_path}")
    encoder = TextEncoder.fit(splits.train_texts, splits.options)
    assert "testonly" not in encoder.vocab.tokens
    assert encoder.encode(["testonly"])[0][0, 0] == 1  # <unk>
    again = TextEncoder.from_json(json.loads(json.dumps(encoder.to_json())))
    assert again.vocab.tokens == encoder.vocab.tokens and again.length == encoder.length


def test_image_loader_points_text_data_to_its_loader() -> None:
    with pytest.raises(
        ValueError, match=r"'text:x' is a text dataset; read it with cnnlab\.data\.text\.load_text"
    ):
        load_dataset("text:x")
