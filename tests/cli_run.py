"""Run ``cnnlab`` in-process in a test: the one helper behind the test files' ``cli``."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from cnnlab.cli.main import main


def exit_status(argv: Sequence[str]) -> int:
    """``cnnlab argv``'s exit status, argparse's SystemExit included (usage errors, --help)."""
    try:
        return main(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run ``cnnlab argv`` in-process: (exit status, stderr)."""
    code = exit_status(argv)
    return code, capsys.readouterr().err


def cli_out(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``cnnlab argv`` in-process: (exit status, stdout, stderr)."""
    code = exit_status(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err
