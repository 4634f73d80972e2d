"""`cnnlab train` options: wrong types and impossible values are refused by name, up front.

Issue 15, part 3 (the train command's items): config keys of the wrong type, a missing
--data-dir, impossible ranges, Ctrl-C before the first epoch, --resume with unchanged options.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from checkpoint_faults import fault_env
from cli_run import exit_status
from cnnlab.train.loop.checkpoint import TrainingInterrupted
from cnnlab.train.runs.config import TrainConfig
from cnnlab.train.runs.files import CHECKPOINT_FILE
from cnnlab.train.runs.run import train_run
from sigint_child import cnnlab_command

TINY = str(Path(__file__).resolve().parents[1] / "reliability" / "tiny.json")
SRC = str(Path(__file__).resolve().parents[2] / "src")
QUICK = ["--model", TINY, "--epochs", "1", "--batch-size", "64", "--quiet", "--no-plots"]
E = "cnnlab train: error: "


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    """Run ``cnnlab argv`` in-process: (exit status, stderr lines)."""
    code = exit_status(argv)
    return code, capsys.readouterr().err.strip().splitlines()


# ---- --config values of the wrong type ------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"epochs": "three"}', 'key `epochs` must be an int (a whole number). Received: "three" (a string)'),
        ('{"lr": null}', "key `lr` must be a number. Received: null"),
        ('{"batch_size": [32]}', "key `batch_size` must be an int (a whole number). Received: [32] (a list)"),
        ('{"augment": true}', "key `augment` must be a string. Received: true (a boolean)"),
        (
            '{"model_args": [1]}',
            "key `model_args` must be an object (key: value pairs). Received: [1] (a list)",
        ),
        ("[3, 0.01]", 'must be a JSON object of config keys (e.g. {"epochs": 3}). Received: a list'),
        ('{"epochs": 3', "not valid JSON: Expecting ',' delimiter: line 1 column 13 (char 12)"),
        ('{"epoch": 3}', "unknown key(s) ['epoch']. Valid keys: augment, backend, batch_size,"),
    ],
)
def test_config_file_values_are_checked_by_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "config.json"
    path.write_text(content)
    out = tmp_path / "run"
    code, err = cli(capsys, "train", "--config", str(path), *QUICK, "--out", str(out))
    assert code == 1 and len(err) == 1
    assert err[0].startswith(f"{E}--config {path}: {message}"), err[0]
    assert not out.exists()


def test_a_saved_config_of_the_wrong_type_is_named_on_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config.json").write_text('{"epochs": "3"}')
    code, err = cli(capsys, "train", "--resume", str(tmp_path))
    assert code == 1
    assert err == [
        f"{E}--resume: {tmp_path / 'config.json'}: key `epochs` must be an int (a whole number). "
        'Received: "3" (a string)'
    ]


def test_the_python_api_checks_types_too() -> None:
    with pytest.raises(ValueError, match=r"train: key `lr` must be a number\. Received: null"):
        TrainConfig(lr=None).validate()  # type: ignore[arg-type]


# ---- impossible values ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--early-stopping", "-1"], "`early_stopping` must be an int >= 0 (patience in epochs; 0: off). "
         "Received: early_stopping=-1 (option --early-stopping)"),
        (["--seed", "-1"], "`seed` must be an int >= 0. Received: seed=-1 (option --seed)"),
        (["--epochs", "0"], "`epochs` must be a positive int. Received: epochs=0 (option --epochs)"),
        (["--batch-size", "0"], "`batch_size` must be a positive int. Received: batch_size=0 "
         "(option --batch-size)"),
        (["--val-split", "1.5"], "`val_split` must be in [0, 1). Received: val_split=1.5 "
         "(option --val-split)"),
        (["--lr", "0"], "`lr` must be a positive finite float. Received: lr=0.0 (option --lr)"),
        (["--label-smoothing", "1"], "`label_smoothing` must be in [0, 1). Received: label_smoothing=1.0 "
         "(option --label-smoothing)"),
        (["--early-stopping", "2", "--val-split", "0"], "`early_stopping` must be 0 when val_split is 0 (it "
         "watches the validation loss). Received: early_stopping=2 (option --early-stopping)"),
        (["--dropout", "0.5"], "`model_args` must be empty for the architecture file"),
    ],
)  # fmt: skip
def test_impossible_options_are_refused_by_name_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    out = tmp_path / "run"
    code, err = cli(capsys, "train", *QUICK, *argv, "--out", str(out))
    assert code == 1 and len(err) == 1
    assert err[0].startswith(f"{E}train: argument {message}"), err[0]
    assert not out.exists()


def test_a_missing_data_dir_fails_instead_of_looking_elsewhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # fashion-mnist may well be installed system-wide: --data-dir must not fall back to it.
    missing = tmp_path / "no-such-folder"
    out = tmp_path / "run"
    code, err = cli(
        capsys, "train", *QUICK, "--data", "fashion-mnist", "--data-dir", str(missing), "--out", str(out)
    )
    assert code == 1
    assert err == [
        f"{E}train: argument `data_dir` must be an existing folder ({missing} does not exist). "
        f"Received: data_dir='{missing}' (option --data-dir)"
    ]
    assert not out.exists()


# ---- Ctrl-C before the first epoch -------------------------------------------------------------
class InterruptInEpoch1:
    def __getattr__(self, name: str) -> object:
        return lambda *args, **kwargs: None

    def on_batch_end(self, *args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt


def test_ctrl_c_before_the_first_epoch_claims_no_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = TrainConfig(model=TINY, epochs=2, batch_size=64, out=str(out))
    with pytest.raises(TrainingInterrupted) as info:
        train_run(config, verbose=False, callbacks=[InterruptInEpoch1()])
    assert str(info.value) == (
        "cnnlab train: interrupted before the first epoch was saved: no model and no checkpoint were "
        f"written (the config is in {out}). Start again with: cnnlab train --resume {out}"
    )
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]
    train_run(config, verbose=False, resume=True)  # the advice works: from epoch 1
    assert (out / "model.npz").is_file() and (out / CHECKPOINT_FILE).is_file()


def test_ctrl_c_inside_the_first_checkpoint_write_waits_for_it(tmp_path: Path) -> None:
    """The write finishes (5 s here), then the run stops with epoch 1 saved. (Before: the
    interrupt cut the write; landing inside np.savez, it left a half-built ZipFile whose
    __del__ printed a traceback after the one-line message: seen in CI.)"""
    out = tmp_path / "run"
    env = fault_env({**os.environ, "PYTHONPATH": SRC, "OPENBLAS_NUM_THREADS": "1"}, slow=5)
    proc = subprocess.Popen(
        cnnlab_command("train", *QUICK, "--epochs", "2", "--out", str(out)),  # takes Ctrl-C (sigint_child)
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not list(out.glob(f".{CHECKPOINT_FILE}.*.tmp")):  # the first checkpoint is being written
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().splitlines() == [
        f"cnnlab train: interrupted; 1 of 2 epochs are saved in {out} (model.npz, {CHECKPOINT_FILE}). "
        f"Resume with: cnnlab train --resume {out}"
    ]
    # no temp file, no lock
    assert {p.name for p in out.iterdir()} == {"config.json", "history.csv", "model.npz", CHECKPOINT_FILE}


# ---- --resume with options equal to the run's ------------------------------------------------------
def interrupted_run(out: Path, backend: str = "numpy") -> None:
    config = TrainConfig(model=TINY, epochs=2, batch_size=64, backend=backend, out=str(out))

    class StopAtEpoch2:
        def __getattr__(self, name: str) -> object:
            return lambda *args, **kwargs: None

        def on_epoch_begin(self, epoch: int, ctx: object) -> None:
            if epoch == 2:
                raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        train_run(config, verbose=False, callbacks=[StopAtEpoch2()])


def test_resume_accepts_the_options_the_run_already_has(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    interrupted_run(out)
    code, err = cli(capsys, "train", "--resume", str(out), "--backend", "numpy", "--epochs", "2",
                    "--model", TINY, "--out", str(out), "--quiet", "--no-plots")  # fmt: skip
    assert code == 0, err
    assert len((out / "history.csv").read_text().strip().splitlines()) == 3  # header + 2 epochs


def test_resume_refuses_options_that_change_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    interrupted_run(out)
    code, err = cli(capsys, "train", "--resume", str(out), "--backend", "torch", "--epochs", "3", "--quiet")
    assert code == 1
    assert err == [
        f"{E}--resume continues the saved config unchanged; drop --epochs 3 (the run has 2), "
        "--backend torch (the run has numpy)"
    ]


def test_resume_with_the_same_torch_backend(
    torch: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    interrupted_run(out, backend="torch")
    code, err = cli(capsys, "train", "--resume", str(out), "--backend", "torch", "--quiet", "--no-plots")
    assert code == 0, err
    assert json.loads((out / "config.json").read_text())["backend"] == "torch"
