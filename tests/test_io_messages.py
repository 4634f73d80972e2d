"""Saving and loading: messages that say what the file is and name the user's path (issue 23).

Items 9, 16 and 19: a text file named checkpoint.npz made numpy suggest loading it "unsafely
using allow_pickle="; a run's checkpoint.npz given to ``predict`` was "not written by
cnnlab.save"; a torch file was called an ".npz"; saving into a missing folder named the
temporary file.
"""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest

import cnnlab
from cnnlab.cli.main import main
from cnnlab.errors import CnnlabError
from cnnlab.npzfile import describe_bytes, open_npz
from cnnlab.train.loop.checkpoint import TrainState, save_checkpoint

Image = pytest.importorskip("PIL.Image")


def tiny_model() -> cnnlab.Sequential:
    return cnnlab.Sequential(cnnlab.Flatten(), cnnlab.Dense(64, 3, rng=0))


def image(tmp_path: Path) -> Path:
    path = tmp_path / "x.png"
    Image.new("L", (8, 8), 100).save(path)
    return path


# ---- item 9: a file that is not an .npz at all ------------------------------------------------
def test_open_npz_says_a_text_file_is_not_a_checkpoint_and_never_mentions_pickle(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.npz"
    path.write_text("hello\n")
    with pytest.raises(CnnlabError) as info:
        open_npz(path, f"resume: checkpoint {str(path)!r}", "a cnnlab checkpoint")
    message = str(info.value)
    assert message == (
        f"resume: checkpoint {str(path)!r} is not a cnnlab checkpoint: it is a text file. "
        "Received: first bytes b'hello\\n'"
    )
    assert "pickle" not in message


@pytest.mark.parametrize(
    ("head", "suffix", "expected"),
    [
        (b"", ".npz", "an empty file (0 bytes)"),
        (b"\x93NUMPY\x01\x00v\x00", ".npz", "a single NumPy array (.npy, written by np.save)"),
        (b"\x80\x02}q\x00", ".pt", "a pickle file (an older torch.save?)"),
        (b"\x89HDF\r\n\x1a\n", ".h5", "an HDF5 file"),
        (b'{"a": 1}', ".npz", "a JSON file"),
        (b"\x00\x01\x02\xff", ".npz", "not a zip archive"),
    ],
)
def test_describe_bytes_says_what_a_file_is(head: bytes, suffix: str, expected: str) -> None:
    assert describe_bytes(head, suffix).startswith(expected)


def test_predict_on_a_text_file_says_what_it_is(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "checkpoint.npz"
    path.write_text("hello\n")
    assert main(["predict", str(path), str(image(tmp_path))]) == 1
    err = capsys.readouterr().err
    assert (
        f"load: {str(path)!r} is not a cnnlab model file: it is a text file; expected an .npz" in err
        and "Received: first bytes b'hello\\n'" in err
    )
    assert "pickle" not in err


def test_resume_from_a_text_checkpoint_says_it_is_not_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--quiet", "--no-plots", "--out", str(run)]) == 0
    (run / "checkpoint.npz").write_text("hello\n")
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--quiet", "--no-plots"]) == 1
    err = capsys.readouterr().err
    assert "is not a cnnlab checkpoint: it is a text file" in err, err
    assert "pickle" not in err


# ---- item 16: cnnlab's own checkpoint, and a torch file ------------------------------------------
def test_predict_on_a_checkpoint_points_to_model_npz(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    model = tiny_model()
    save_checkpoint(run / "checkpoint.npz", TrainState(epoch=1, history=[], model=model.state_dict()))
    assert main(["predict", str(run / "checkpoint.npz"), str(image(tmp_path))]) == 1
    err = capsys.readouterr().err
    assert "is a training checkpoint of `cnnlab train`" in err, err
    assert f"not a model file: load {str(run / 'model.npz')!r}" in err
    assert f"cnnlab train --resume {run}" in err
    assert "not written by cnnlab.save" not in err


def test_loading_a_torch_file_says_it_is_one(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(2, 3).state_dict(), path)
    with pytest.raises(CnnlabError) as info:
        cnnlab.load(path)
    message = str(info.value)
    assert message.startswith(
        f"load: {str(path)!r} is not a cnnlab model file: it is a PyTorch file (torch.save"
    )
    assert "cnnlab.interop.from_torch" in message
    assert ".npz was not written" not in message


# ---- item 19: a missing folder ------------------------------------------------------------------
def test_saving_into_a_missing_folder_names_the_path_and_the_folder(tmp_path: Path) -> None:
    path = tmp_path / "nonexistent" / "d" / "m.npz"
    with pytest.raises(FileNotFoundError) as info:
        cnnlab.save(tiny_model(), path)
    assert str(info.value) == (
        f"[Errno 2] No such file or directory (the folder {path.parent} does not exist): {str(path)!r}"
    )
    assert info.value.filename == str(path)
    assert info.value.errno == errno.ENOENT
    assert ".tmp" not in str(info.value)


def test_a_failed_save_keeps_the_errno_and_names_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.npz"

    def full(file: object, **arrays: np.ndarray) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full)
    with pytest.raises(OSError) as info:
        cnnlab.save(tiny_model(), path)
    assert info.value.errno == errno.ENOSPC
    assert str(info.value) == f"[Errno 28] No space left on device: {str(path)!r}"
