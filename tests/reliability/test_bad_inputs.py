"""The bad-input matrix: every case gives a clear message, and nothing on disk is lost.

One test per row of the table in docs/reliability.md. Each checks the message text and,
where files are involved, that the files that were there before are still intact.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

from cli_run import cli
from cnnlab.cli.main import main
from cnnlab.data.datasets import ArrayDataset
from cnnlab.data.download import download_file
from cnnlab.data.folder import load_folder_arrays
from cnnlab.data.idx import read_idx
from cnnlab.data.loader import DataLoader
from cnnlab.errors import CnnlabError, ShapeError
from cnnlab.functional import conv as fconv
from cnnlab.layers.activations import Maxout, ReLU
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.dense import Dense
from cnnlab.layers.pooling import MaxPool2D
from cnnlab.layers.reshape import Flatten
from cnnlab.layers.sequential import Sequential
from cnnlab.losses import SoftmaxCrossEntropy
from cnnlab.optim.sgd import SGD
from cnnlab.train.loop.callbacks import Callback
from cnnlab.train.loop.checkpoint import load_checkpoint, save_checkpoint
from cnnlab.train.loop.divergence import TrainingDiverged
from cnnlab.train.loop.fit import fit
from cnnlab.train.runs.files import CHECKPOINT_FILE

TINY = str(Path(__file__).with_name("tiny.json"))


def small_model() -> Sequential:
    return Sequential(Conv2D(1, 4, 3, padding=1, rng=0), ReLU(), Flatten(), Dense(4 * 8 * 8, 3, rng=0))


def toy_data(n: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, n)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes (to prove nothing was lost or changed)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- shapes and arguments ----------------------------------------------------------------
def test_wrong_input_rank() -> None:
    with pytest.raises(
        ShapeError, match=r"Conv2D: input must have shape \(N, C, H, W\)\. Received: shape \(2, 8, 8\)"
    ):
        small_model().forward(np.zeros((2, 8, 8), np.float32))


def test_wrong_input_channels() -> None:
    with pytest.raises(
        ShapeError, match=r"Conv2D: input must have 1 channels.*Received: shape \(2, 3, 8, 8\)"
    ):
        small_model().forward(np.zeros((2, 3, 8, 8), np.float32))


def test_wrong_input_size() -> None:
    with pytest.raises(
        ShapeError,
        match=r"Dense: input must have shape \(N, in_features\) = \(N, 256\)\. Received: shape \(2, 400\)",
    ):
        small_model().forward(np.zeros((2, 1, 10, 10), np.float32))


def test_kernel_larger_than_padded_input() -> None:
    with pytest.raises(
        ShapeError,
        match=r"kernel \(effective size 5\) is larger than the padded input: H \+ 2P = 3 \+ 2\*0 = 3 < 5",
    ):
        Conv2D(1, 1, 5).forward(np.zeros((1, 1, 3, 3), np.float32))


@pytest.mark.parametrize(("make", "text"), [
    (lambda: Conv2D(1, 1, 3, stride=0), r"Conv2D: argument `stride` must be a positive .*Received: stride=0"),
    (lambda: MaxPool2D(2, stride=-1), r"MaxPool2D: argument `stride` must be .*Received: stride=-1"),
])  # fmt: skip
def test_stride_zero_or_negative(make: object, text: str) -> None:
    with pytest.raises(ValueError, match=text):
        make()  # type: ignore[operator]


def test_invalid_padding_string() -> None:
    with pytest.raises(ValueError, match=r"one of 'valid', 'same'\. Received: padding='full'"):
        Conv2D(1, 1, 3, padding="full")


def test_dilation_makes_kernel_too_large() -> None:
    with pytest.raises(
        ShapeError, match=r"effective size 9\) is larger than the padded input: H \+ 2P = 8 \+ 2\*0 = 8 < 9"
    ):
        Conv2D(1, 1, 3, dilation=4).forward(np.zeros((1, 1, 8, 8), np.float32))


def test_maxout_pieces_not_dividing_channels() -> None:
    with pytest.raises(
        ShapeError, match=r"Maxout: input channels \(4\) must be divisible by pieces \(3\); 4 % 3 = 1"
    ):
        Maxout(3).forward(np.zeros((1, 4, 2, 2), np.float32))


def test_workspace_of_one_example_over_budget_is_refused_up_front() -> None:
    layer = Conv2D(1, 1, 3, padding=100_000)
    with pytest.raises(
        CnnlabError,
        match=r"Conv2D\(1, 1, kernel_size=3, padding=100000\): one example needs a .* MiB im2col "
        r"workspace .*more than the budget of 256\.0 MiB",
    ):
        layer.forward(np.zeros((1, 1, 8, 8), np.float32))


def test_workspace_over_budget_for_a_batch_is_chunked() -> None:
    layer = Conv2D(2, 3, 3, padding=1, rng=0)
    x = np.random.default_rng(1).standard_normal((16, 2, 8, 8)).astype(np.float32)
    whole = layer.forward(x).copy()
    old = fconv.set_workspace_budget(3 * 2 * 9 * 64 * 4)  # about 3 examples per chunk
    try:
        chunked = Conv2D(2, 3, 3, padding=1, rng=0).forward(x)
    finally:
        fconv.set_workspace_budget(old)
    np.testing.assert_allclose(chunked, whole, rtol=1e-6, atol=1e-6)


# ---- data ---------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_in_data(bad: float) -> None:
    x, y = toy_data(4)
    x[1, 0, 2, 2] = bad
    with pytest.raises(ValueError, match=r"x contains NaN or infinite values \(1 of 256\)"):
        ArrayDataset(x, y.astype(np.int64), ["a", "b", "c"])


def test_nan_in_data_given_to_fit_stops_with_advice() -> None:
    x, y = toy_data(8)
    x[0] = np.nan
    model = small_model()
    before = model.state_dict()
    with pytest.raises(TrainingDiverged, match=r"loss became nan .*contain no NaN"):
        fit(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), (x, y), epochs=1, verbose=False)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])  # the initial weights are kept


def test_labels_out_of_range() -> None:
    x, _ = toy_data(4)
    with pytest.raises(
        ValueError, match=r"labels must be in 0\.\.2 \(3 classes\)\. Received: labels in 0\.\.7"
    ):
        ArrayDataset(x, np.array([0, 1, 2, 7]), ["a", "b", "c"])
    with pytest.raises(
        ValueError, match=r"labels must be in \[0, K\) = \[0, 3\) .*Received: label 5 at index 1"
    ):
        SoftmaxCrossEntropy().forward(np.zeros((2, 3)), np.array([0, 5]))


def test_empty_dataset() -> None:
    with pytest.raises(ValueError, match=r"no samples \(N=0\)"):
        ArrayDataset(np.zeros((0, 1, 8, 8), np.float32), np.zeros(0, np.int64), ["a"])
    model = small_model()
    with pytest.raises(
        ValueError, match=r"fit: argument `train_data` must be x and y of the same, non-zero length"
    ):
        fit(
            model,
            SoftmaxCrossEntropy(),
            SGD(model.parameters(), lr=0.1),
            (np.zeros((0, 1, 8, 8)), np.zeros(0)),
        )


def test_batch_larger_than_dataset() -> None:
    x, y = toy_data(10)
    with pytest.raises(
        ValueError,
        match=r"batch_size=64 is larger than the dataset \(10 samples\) and "
        r"drop_last=True would leave no batch",
    ):
        DataLoader(x, y, 64, drop_last=True)
    assert len(DataLoader(x, y, 64)) == 1  # without drop_last: one short batch


def test_corrupt_idx_header(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 10, 28, 28) + b"\x00" * 100)
    with pytest.raises(
        ValueError,
        match=r"IDX header declares shape \(10, 28, 28\) \(7840 data bytes\) but the file has 100 data bytes",
    ):
        read_idx(path)
    path.write_bytes(b"GIF89a" + b"\x00" * 10)
    with pytest.raises(ValueError, match=r"not an IDX file \(magic number 47494638"):
        read_idx(path)


def test_truncated_gz(tmp_path: Path) -> None:
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    blob = gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">I", 1000) + bytes(1000))
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match=r"corrupt or truncated gzip stream"):
        read_idx(path)
    assert path.read_bytes() == blob[: len(blob) // 2]  # the file is left for the user to inspect


def test_wrong_checksum_on_download(tmp_path: Path) -> None:
    source = tmp_path / "mirror" / "data.bin"
    source.parent.mkdir()
    source.write_bytes(b"not the real data" * 100)
    cache = tmp_path / "cache"
    with pytest.raises(
        ValueError,
        match=r"failed its sha256 check: expected 0+, got [0-9a-f]{64}\. The partial file was deleted",
    ):
        download_file(source.as_uri(), cache / "data.bin", "0" * 64, progress=False)
    assert list(cache.iterdir()) == []  # no bad file cached, no partial file left
    good = hashlib.sha256(source.read_bytes()).hexdigest()
    assert download_file(source.as_uri(), cache / "data.bin", good, progress=False).exists()


def _image_folder(root: Path, sizes: dict[str, tuple[int, int, str]]) -> None:
    from PIL import Image

    for name, (h, w, mode) in sizes.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new(mode, (w, h), color=128 if mode == "L" else (10, 200, 30)).save(path)


def test_image_folder_with_non_image_files(tmp_path: Path) -> None:
    _image_folder(tmp_path, {f"{c}/{i}.png": (8, 8, "L") for c in ("cat", "dog") for i in range(2)})
    (tmp_path / "cat" / "notes.txt").write_text("hello")
    with pytest.warns(UserWarning, match=r"skipping .*notes\.txt \(not a \.png/\.jpg/\.jpeg file\)"):
        x, *_ = load_folder_arrays(tmp_path, test_fraction=0.5)
    assert x.shape[1:] == (1, 8, 8)
    (tmp_path / "dog" / "fake.png").write_text("this is not a PNG")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=r"cannot read image .*fake\.png"):
            load_folder_arrays(tmp_path)
    assert (tmp_path / "dog" / "fake.png").read_text() == "this is not a PNG"


def test_image_folder_mixed_sizes_and_modes(tmp_path: Path) -> None:
    _image_folder(tmp_path, {
        "cat/a.png": (8, 8, "L"), "cat/b.png": (8, 8, "L"), "cat/c.png": (12, 6, "L"),
        "dog/d.png": (8, 8, "RGB"), "dog/e.png": (8, 8, "L"), "dog/f.png": (8, 8, "L"),
    })  # fmt: skip
    before = snapshot(tmp_path)
    x, _, x_test, _, classes = load_folder_arrays(tmp_path, test_fraction=0.34)
    # The most common size wins (others are resized); one colour image makes all RGB.
    assert x.shape[1:] == x_test.shape[1:] == (3, 8, 8) and classes == ["cat", "dog"]
    assert snapshot(tmp_path) == before  # the images themselves are never touched


# ---- files: checkpoints, outputs ------------------------------------------------------------
def test_full_disk_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = toy_data()
    model = small_model()
    path = tmp_path / CHECKPOINT_FILE
    fit(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), (x, y), epochs=1,
        verbose=False, checkpoint_fn=lambda s: save_checkpoint(path, s))  # fmt: skip
    before = snapshot(tmp_path)

    def no_space(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    model2 = small_model()
    with pytest.raises(
        CnnlabError,
        match=r"checkpoint: cannot write .*checkpoint\.npz': No space left on device; the "
        r"previous checkpoint \(if any\) is unchanged",
    ):
        fit(model2, SoftmaxCrossEntropy(), SGD(model2.parameters(), lr=0.1), (x, y), epochs=2,
            verbose=False, checkpoint_fn=lambda s: save_checkpoint(path, s))  # fmt: skip
    monkeypatch.undo()
    assert snapshot(tmp_path) == before  # same bytes, and no temp file left behind
    assert load_checkpoint(path, small_model()).epoch == 1


def test_output_path_under_a_regular_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "results"
    blocker.write_text("my notes")
    code, err = cli(
        capsys, "train", "--model", TINY, "--epochs", "1", "--quiet", "--out", str(blocker / "run")
    )
    assert code == 1
    assert err.strip().splitlines() == [
        f"cnnlab train: error: [Errno 20] Not a directory: '{blocker / 'run'}'"
    ]
    assert blocker.read_text() == "my notes"


def test_diverging_learning_rate_keeps_the_last_good_epoch(tmp_path: Path) -> None:
    class Explode(Callback):
        def on_epoch_begin(self, epoch: int, ctx: object) -> None:
            if epoch == 2:
                ctx.optimizer.lr = 1e30  # type: ignore[attr-defined]

    x, y = toy_data()
    model = small_model()
    states = []
    with pytest.raises(
        TrainingDiverged,
        match=r"training diverged: the loss became (nan|inf) in epoch 2.*The weights from the end "
        r"of epoch 1 were restored\. Advice: lower the learning rate, e\.g\. --lr 1e\+29",
    ):
        fit(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), (x, y), epochs=3, batch_size=8,
            callbacks=[Explode()], verbose=False, checkpoint_fn=states.append)  # fmt: skip
    assert len(states) == 1
    for key, value in model.state_dict().items():
        assert value.tobytes() == states[0].model[key].tobytes()


def test_diverging_learning_rate_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code, err = cli(capsys, "train", "--model", TINY, "--optimizer", "sgd", "--lr", "1000", "--epochs", "2",
                    "--batch-size", "64", "--schedule", "none", "--quiet", "--out", str(out))  # fmt: skip
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1
    assert lines[0].startswith("cnnlab train: error: training diverged: the loss became nan")
    assert "Advice: lower the learning rate, e.g. --lr 100;" in lines[0]
    from cnnlab.io import load

    weights = load(out / "model.npz").state_dict()  # the last good (here: initial) weights
    assert all(np.isfinite(v).all() for v in weights.values())


# ---- command line ---------------------------------------------------------------------------
E = "cnnlab train: error: "


@pytest.mark.parametrize(
    ("argv", "text"),
    [
        (["train", "--epoch", "3"], E + "unrecognized arguments: --epoch 3 (see `cnnlab train --help`)"),
        (["trian"], "cnnlab: error: argument COMMAND: invalid choice: 'trian' (choose from 'train', "),
        (["train", "--model", "nope"], E + "unknown model 'nope'. Valid names: lenet5, small, small_bn, vgg"),
        (
            ["train", "--data", "nope"],
            E + "load_dataset: unknown dataset 'nope'. Valid names: digits, mnist,",
        ),
        (
            ["train", "--optimizer", "nope", "--model", TINY],
            E + "unknown optimizer 'nope'. Valid names: sgd,",
        ),
        (
            ["train", "--schedule", "nope"],
            E + "train: argument `schedule` must be one of none, cosine, step, plateau. "
            "Received: schedule='nope'",
        ),
        (
            ["train", "--augment", "blur", "--model", TINY],
            E + "parse_augment: unknown augmentation 'blur'. Valid names: crop, shift, flip, rotate,",
        ),
        (["train", "--resume", "nowhere"], E + "--resume: no config.json in nowhere (is it a run folder?)"),
    ],
)
def test_unknown_cli_options_and_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], text: str
) -> None:
    extra = (
        ["--out", str(tmp_path / "run"), "--epochs", "1", "--quiet"]
        if argv[0] == "train" and "--resume" not in argv and "--epoch" not in argv
        else []
    )
    code, err = cli(capsys, *argv, *extra)
    lines = err.strip().splitlines()
    assert code in (1, 2) and len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith(text), lines[0]


def test_corrupt_model_file_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "model.npz"
    bad.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    code, err = cli(capsys, "evaluate", str(bad))
    assert code == 1 and err.startswith(f"cnnlab evaluate: error: load: '{bad}' is not a readable .npz file")
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback_in_either_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    argv = ["train", "--model", "nope", "--out", str(tmp_path / "run")]
    argv = ["--debug", *argv] if where == "before" else [*argv, "--debug"]
    with pytest.raises(ValueError, match=r"unknown model 'nope'"):
        main(argv)


def test_checkpoint_of_another_architecture_is_refused(tmp_path: Path) -> None:
    x, y = toy_data()
    model = small_model()
    path = tmp_path / CHECKPOINT_FILE
    fit(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), (x, y), epochs=1,
        verbose=False, checkpoint_fn=lambda s: save_checkpoint(path, s))  # fmt: skip
    other = Sequential(Flatten(), Dense(64, 3, rng=0))
    with pytest.raises(
        CnnlabError,
        match=r"the arrays do not match this model \(another architecture\?\)\. Missing: "
        r"\['model/1\.weight', 'model/1\.bias'\]",
    ):
        load_checkpoint(path, other)
    header = json.loads(np.load(path)["__checkpoint__"].tobytes())
    assert header["epoch"] == 1 and header["format"] == "cnnlab-checkpoint"
