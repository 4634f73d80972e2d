"""Entry point: ``cnnlab COMMAND ...``.

An error prints its whole message on stderr (first line the summary, the rest indented),
exit status 1; warnings print one line each (see ``cli/notices.py``); a closed stdout
(``| head -1``) ends quietly.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
from collections.abc import Sequence
from typing import Any

from cnnlab import __version__
from cnnlab.cli import (
    bench_cmd,
    dashboard_cmd,
    diagnose_cmd,
    evaluate_cmd,
    explain_cmd,
    export_cmd,
    import_cmd,
    plot_cmd,
    predict_cmd,
    show_cmd,
    summary_cmd,
    text_cmds,
    train_cmd,
    tune_cmd,
)
from cnnlab.cli.notices import cli_warnings, error_lines, quiet_broken_pipe
from cnnlab.process import tune_process

#: Commands that train or time training: they start with ``tune_process()`` (cnnlab.process).
TUNED_COMMANDS = ("train", "tune", "bench")

COMMANDS = (
    train_cmd,
    evaluate_cmd,
    predict_cmd,
    summary_cmd,
    diagnose_cmd,
    explain_cmd,
    bench_cmd,
    tune_cmd,
    plot_cmd,
    show_cmd,
    export_cmd,
    import_cmd,
    dashboard_cmd,
)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (valid choices listed).

    Abbreviations are off: `--epoch` is an unknown option, not a silent `--epochs`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")

    def format_help(self) -> str:
        return plain_text(super().format_help())


def plain_text(text: str) -> str:
    """Help text without the reST markup of the docstrings it comes from.

    ``literal`` and :role:`name` lose their markup; a paragraph's closing ``::`` becomes ``:``.

    Example:
        >>> plain_text("``cnnlab train``: see :func:`cnnlab.fit`. Example::")
        'cnnlab train: see cnnlab.fit. Example:'
    """
    text = re.sub(r"``(.+?)``", r"\1", text, flags=re.DOTALL)
    text = re.sub(r":[a-z]+(?::[a-z]+)?:`([^`]+)`", r"\1", text)
    return re.sub(r"(\S)::$", r"\1:", text, flags=re.MULTILINE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cnnlab", description="Train and inspect small CNNs, lecture style.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def _command_parser(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser:
    """The parser of ``command`` (``cnnlab train``), or ``parser`` itself without one."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in argv[1:]:  # accepted after the command too: `cnnlab train ... --debug`
        argv = ["--debug", *(a for a in argv if a != "--debug")]
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named by the command's own parser: `cnnlab show: error: ... --index`
        _command_parser(parser, args.command).error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.print_help()
        return 0
    prefix = f"cnnlab {args.command}"
    args.func = text_cmds.route(args)  # text data or a text run: the text version (cli/text_cmds.py)
    if args.command in TUNED_COMMANDS:
        tune_process()  # OpenBLAS's idle workers sleep, malloc keeps freed memory (cnnlab.process)
    try:
        with contextlib.nullcontext() if args.debug else cli_warnings(prefix):
            status = int(args.func(args) or 0)
            sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return status
    except BrokenPipeError:
        return quiet_broken_pipe()
    except KeyboardInterrupt:
        print("cnnlab: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print("\n".join(error_lines(prefix, exc)), file=sys.stderr)
        return 1
