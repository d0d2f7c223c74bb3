"""The ``jtag`` command line: ``jtag <command> [--key=value ...]``, ``jtag help``, ``jtag serve``.

The exit code is 0 exactly when the printed envelope says ``success``; errors never show a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from dbhandles.cli.help import command_help, markdown, overview
from dbhandles.cli.output import render
from dbhandles.cli.parse import parse_args, to_params
from dbhandles.cli.transport import choose_transport
from dbhandles.commands import COMMANDS
from dbhandles.commands.envelope import error_envelope
from dbhandles.errors import DbHandlesError, InvalidParams, UnknownCommand
from dbhandles.settings import Settings

__all__ = ["main", "run"]

_HELP = ("help", "--help", "-h")


def _emit(text: str) -> None:
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`jtag ... | head`): stop quietly, as other command-line tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _fail(exc: DbHandlesError, fmt: str = "json") -> int:
    _emit(render(error_envelope(exc), fmt))
    return 1


def _unknown(name: str) -> UnknownCommand:
    return UnknownCommand(
        f"unknown command {name!r}; run 'jtag help' to list commands (e.g. data/list, data/open)",
        field="command",
    )


def _help(args: list[str]) -> int:
    if not args:
        _emit(overview())
        return 0
    if args[0] == "--markdown":
        _emit(markdown())
        return 0
    if args[0] in COMMANDS or args[0] == "serve":
        _emit(command_help(args[0]))
        return 0
    return _fail(_unknown(args[0]))


def run(name: str, argv: Sequence[str]) -> tuple[dict[str, Any], str]:
    """Parse ``argv`` for command ``name``, run it where it should run; return (envelope, format).

    Raises:
        DbHandlesError: the command line itself is wrong (unknown command, bad value, unknown key).
    """
    command = COMMANDS.get(name)
    if command is None:
        raise _unknown(name)
    args = parse_args(command, argv)
    params = to_params(command, args.params)
    transport = choose_transport(Settings.from_env())
    try:
        return transport.dispatch(name, params), args.format
    finally:
        transport.close()


def _format_of(argv: Sequence[str]) -> str:
    for i, token in enumerate(argv):
        if token == "--format=table" or (token == "--format" and argv[i + 1 : i + 2] == ["table"]):
            return "table"
    return "json"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jtag`` console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in _HELP:
        return _help(args[1:])
    name, rest = args[0], args[1:]
    if name == "serve":
        from dbhandles.cli.serve import serve_main

        return serve_main(rest)
    if name in COMMANDS and any(a in ("--help", "-h") for a in rest):
        _emit(command_help(name))
        return 0
    fmt = _format_of(rest)
    try:
        envelope, fmt = run(name, rest)
    except DbHandlesError as exc:
        return _fail(exc, fmt)
    except ValueError as exc:  # e.g. a DBHANDLES_* variable that is not a number
        return _fail(InvalidParams(f"configuration: {exc}", field="environment"), fmt)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # never a traceback for the user; the message says what broke
        return _fail(
            DbHandlesError(f"{name} failed unexpectedly: {type(exc).__name__}: {exc}"), fmt
        )
    _emit(render(envelope, fmt))
    return 0 if envelope.get("success") is True else 1
