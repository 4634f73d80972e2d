"""Reading labelled texts from disk: a folder of ``.txt`` files, a CSV/TSV, or fortune files.

Each reader returns ``{class name: [text, ...]}`` (classes in sorted order) and refuses bad
input with a message that names the file: an empty file, bytes that are not valid in the
encoding (the encoding tried is named), a class without texts, a CSV without the columns.

- ``read_folder(root)``: ``root/<class>/*.txt``, one text per file;
- ``read_table(path, text="text", label="label")``: a ``.csv`` (comma) or ``.tsv`` (tab)
  file with a header row; other columns are ignored;
- ``read_fortunes(root, classes)``: Debian's fortune format, one file per category
  (``/usr/share/games/fortunes/science``): texts separated by lines holding only ``%``.
  The ``.dat`` index and ``.u8`` files are skipped; backspace overstriking (``_\\bx``, used
  for underlining on old terminals) is removed.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

TEXT_SUFFIXES = {".txt"}
TABLE_DELIMITERS = {".csv": ",", ".tsv": "\t"}
FORTUNE_SKIP = {".dat", ".u8", ".pos", ".sig"}
_OVERSTRIKE = re.compile(r".\x08")


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """The text of ``path``; refuses an empty file and undecodable bytes, naming the file."""
    data = path.read_bytes()
    if not data.strip():
        raise ValueError(f"text dataset: {path} is empty (no text to learn from); delete it or fill it")
    try:
        return data.decode(
            "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
        )
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"text dataset: {path} is not valid {encoding}: byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start} cannot be decoded ({exc.reason}). Re-save the file as {encoding}, or name "
            "its encoding in the data option, e.g. text:PATH?encoding=latin-1"
        ) from None
    except LookupError:
        raise ValueError(
            f"text dataset: unknown encoding {encoding!r} (option encoding=); e.g. utf-8, latin-1, cp1252"
        ) from None


def _need_classes(root: Path, found: dict[str, list[str]], what: str) -> dict[str, list[str]]:
    empty = [name for name, texts in found.items() if not texts]
    if empty:
        raise ValueError(f"text dataset {root}: class {empty[0]!r} has no texts ({what})")
    return dict(sorted(found.items()))


def read_folder(root: Path, encoding: str = "utf-8") -> dict[str, list[str]]:
    """``{class: texts}`` from ``root/<class>/*.txt`` (files in name order)."""
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise ValueError(f"text dataset {root}: no class sub-folders; expected {root}/<class>/*.txt")
    found = {}
    for class_dir in class_dirs:
        files = sorted(p for p in class_dir.iterdir() if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
        found[class_dir.name] = [read_text(p, encoding) for p in files]
    return _need_classes(root, found, "expected .txt files in its folder")


def read_table(
    path: Path, text: str = "text", label: str = "label", encoding: str = "utf-8"
) -> dict[str, list[str]]:
    """``{class: texts}`` from a CSV (comma) or TSV (tab) file with a header row."""
    delimiter = TABLE_DELIMITERS.get(path.suffix.lower())
    if delimiter is None:
        raise ValueError(
            f"text dataset {path}: expected a .csv or .tsv file (or a folder). "
            f"Received: {path.suffix or 'no suffix'}"
        )
    reader = csv.DictReader(io.StringIO(read_text(path, encoding), newline=""), delimiter=delimiter)
    columns = reader.fieldnames or []
    missing = [name for name in (text, label) if name not in columns]
    if missing:
        raise ValueError(
            f"text dataset {path}: no column {missing[0]!r} (columns: {', '.join(map(repr, columns))}). "
            "Name the columns with text:PATH?text=COLUMN&label=COLUMN"
        )
    found: dict[str, list[str]] = {}
    for row_number, row in enumerate(reader, start=2):  # line 1 is the header
        body, name = (row.get(text) or "").strip(), (row.get(label) or "").strip()
        if not body or not name:
            empty = text if not body else label
            raise ValueError(f"text dataset {path}: row {row_number} has an empty {empty!r} cell")
        found.setdefault(name, []).append(body)
    if not found:
        raise ValueError(f"text dataset {path}: a header but no rows")
    return _need_classes(path, found, "")


def read_fortune_file(path: Path, encoding: str = "utf-8") -> list[str]:
    """The texts of one fortune file: blocks between lines that hold only ``%``."""
    text = _OVERSTRIKE.sub("", read_text(path, encoding))
    blocks = re.split(r"^%[ \t]*$", text.replace("\r\n", "\n"), flags=re.MULTILINE)
    return [block.strip("\n") for block in blocks if block.strip()]


def fortune_files(root: Path) -> dict[str, Path]:
    """``{category: path}`` of the fortune files in ``root`` (no .dat/.u8, no hidden files)."""
    return {
        p.name: p
        for p in sorted(root.iterdir())
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in FORTUNE_SKIP
    }


def read_fortunes(
    root: Path, classes: list[str] | None = None, encoding: str = "utf-8"
) -> dict[str, list[str]]:
    """``{category: texts}`` of the fortune files in ``root`` (``classes``: those only)."""
    files = fortune_files(root)
    if classes:
        unknown = [c for c in classes if c not in files]
        if unknown:
            raise ValueError(
                f"text dataset {root}: no fortune file {unknown[0]!r} (option classes=). "
                f"Found: {', '.join(files) or 'none'}"
            )
        files = {c: files[c] for c in classes}
    if not files:
        raise ValueError(f"text dataset {root}: no files (expected one fortune file per category)")
    return _need_classes(root, {c: read_fortune_file(p, encoding) for c, p in files.items()}, "only % lines")
