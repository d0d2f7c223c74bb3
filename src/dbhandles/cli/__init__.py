"""The ``jtag`` command line: ``jtag <command> [--key=value ...]``, ``jtag help``, ``jtag serve``.

The exit code is 0 exactly when the printed envelope says ``success``; errors never show a traceback.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

# Only the generated help texts at start: ``jtag help`` must not import the commands, pydantic or
# the database stack (tests/test_cli_start.py); a command's modules are imported when it runs.
from dbhandles.cli.help_text import COMMAND_NAMES, HELP, OVERVIEW
from dbhandles.errors import DbHandlesError, Interrupted, InvalidParams, UnknownCommand
from dbhandles.values import json_text

if TYPE_CHECKING:
    from dbhandles.cli.spec import CommandSpec
    from dbhandles.commands import Command

__all__ = ["command_name", "main", "run"]

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
    from dbhandles.cli.masking import mask_tokens
    from dbhandles.cli.output import render
    from dbhandles.commands.envelope import error_envelope

    _emit(mask_tokens(render(error_envelope(exc), fmt)))
    return 1


def _unknown(name: str) -> UnknownCommand:
    group = sorted(n.split("/", 1)[1] for n in COMMAND_NAMES if n.startswith(f"{name}/"))
    if group:
        return UnknownCommand(
            f"{json_text(name, 80)} needs a subcommand: {', '.join(f'jtag {name} {verb}' for verb in group)}",
            field="command",
        )
    return UnknownCommand(
        f"unknown command {json_text(name, 80)}; run 'jtag help' to list commands (e.g. data/list, data/open)",
        field="command",
    )


def command_name(args: Sequence[str]) -> tuple[str, list[str]]:
    """The command named by the start of ``args``, and the rest.

    ``jtag token create`` is ``jtag token/create``: a group and a verb given as two words name the
    command ``group/verb``.
    """
    if len(args) >= 2 and "/" not in args[0] and f"{args[0]}/{args[1]}" in COMMAND_NAMES:
        return f"{args[0]}/{args[1]}", list(args[2:])
    return args[0], list(args[1:])


def _help(args: list[str]) -> int:
    if not args:
        _emit(OVERVIEW)
        return 0
    if args[0] == "--markdown":
        from dbhandles.cli.help import markdown  # generated from the params models themselves

        _emit(markdown())
        return 0
    # Commands, serve, and import-jsonl / export-jsonl (their own usage texts, as --help prints).
    name = args[0] if args[0] in HELP else command_name(args)[0]
    if name in HELP:
        _emit(HELP[name])
        return 0
    return _fail(_unknown(name))


def _command(name: str) -> Command:
    from dbhandles.commands import COMMANDS  # a lookup imports only the command's own module

    command = COMMANDS.get(name)
    if command is None:
        raise _unknown(name)
    return command


def _spec(name: str) -> CommandSpec:
    """How the command line of ``name`` is read: from the generated spec of a built-in command
    (no command module imported), else from the command itself (one registered at run time)."""
    from dbhandles.cli.spec import command_spec, spec_of

    spec = command_spec(name)
    return spec if spec is not None else spec_of(_command(name))


@contextlib.contextmanager
def _start_up(freeze: bool) -> Iterator[None]:
    """With ``freeze``: no cyclic garbage collection while the ``jtag`` process starts, and what it
    made by then (modules, classes, the service) frozen (``gc.freeze``) before the command runs.

    Importing the commands, pydantic and the database stack leaves some 35,000 objects tracked and
    next to no garbage, yet the collector walks them about 80 times while they are made, and once
    more, whole, when the interpreter exits: together about a fifth of the CPU time of a cold
    ``jtag data/list`` (docs/performance.md). Frozen, every later collection skips them. Collection
    runs again (if it was on) before the command, so a big command collects its own garbage as usual.
    Only for the process's own command line: a caller of ``main(argv)`` in its own process (the
    tests) keeps its collector as it was, since frozen objects are never freed.
    """
    if not freeze:
        yield
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def run(name: str, argv: Sequence[str]) -> tuple[dict[str, Any], str]:
    """Parse ``argv`` for command ``name``, run it where it should run; return (envelope, format).

    Raises:
        DbHandlesError: the command line itself is wrong (unknown command, bad value, unknown key).
    """
    return _run(name, argv, freeze=False)


def _run(name: str, argv: Sequence[str], *, freeze: bool) -> tuple[dict[str, Any], str]:
    with _start_up(freeze):
        from dbhandles import wire
        from dbhandles.cli import session
        from dbhandles.cli.parse import parse_args, wire_params
        from dbhandles.cli.transport import (
            LocalTransport,
            choose_transport,
            refuse_token_without_server,
            unreachable_url_answer,
        )
        from dbhandles.settings import Settings

        args = parse_args(_spec(name), argv)
        params = args.params
        settings = Settings.from_env()
        # Before the session file is written: a refused run writes nothing.
        refuse_token_without_server(settings, os.environ, args.token, name)
        # Without a server URL there is nothing to refuse: the session file is read once, below.
        if (os.environ.get("JTAG_URL") or "").strip() and session.writes_session(
            settings.home, os.environ, new=args.new_session
        ):
            answer = unreachable_url_answer(
                os.environ, name
            )  # nothing written for a server not there
            if answer is not None:
                return answer, args.format
        session_id, ended, refused = session.run_session(
            settings.home, os.environ, params, new=args.new_session
        )
        environ = session.without_session_env(os.environ)
        transport = choose_transport(
            settings, environ, token=args.token, session_id=session_id, command=name
        )
        if isinstance(transport, LocalTransport):
            # In-process, the params go as the command's model gives them back (refused ones as
            # given: the dispatcher refuses and audits them). A server gets them as read: its
            # dispatcher checks them, so this process never imports pydantic or the commands.
            try:
                params = wire_params(_command(name), params)
            except BaseException:
                transport.close()
                raise
    try:
        if refused is not None:
            # A bad JTAG_SESSION_ID is refused and audited by the dispatcher, as --sessionId is.
            envelope = transport.dispatch(name, session.refused_params(params, os.environ))
            if envelope.get("field") == "sessionId":
                envelope = wire.failure_envelope(refused)
            return envelope, args.format
        if ended is not None and isinstance(transport, LocalTransport):
            transport.end_session(ended)
        elif ended is not None:
            # On a server, the old session's cursors are closed by that session itself.
            old = choose_transport(settings, environ, token=args.token, session_id=ended)
            try:
                old.dispatch("session/end", {})
            finally:
                old.close()
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
    name, rest = command_name(args)
    if name == "serve":
        from dbhandles.cli.serve import serve_main

        return serve_main(rest)
    if name in ("import-jsonl", "export-jsonl"):
        from dbhandles.cli.jsonl import export_main, import_main

        return (import_main if name == "import-jsonl" else export_main)(rest)
    if name in COMMAND_NAMES and any(a in ("--help", "-h") for a in rest):
        _emit(HELP[name])
        return 0
    fmt = _format_of(rest)
    try:
        # ``argv`` omitted: this is the process's own command line (the console script, ``-m``).
        envelope, fmt = _run(name, rest, freeze=argv is None)
    except DbHandlesError as exc:
        return _fail(exc, fmt)
    except ValueError as exc:  # e.g. a DBHANDLES_* variable that is not a number
        return _fail(InvalidParams(f"configuration: {exc}", field="environment"), fmt)
    except KeyboardInterrupt:
        _fail(Interrupted(f"{name} interrupted"), fmt)
        return 130
    except Exception as exc:  # never a traceback for the user; the message says what broke
        return _fail(
            DbHandlesError(f"{name} failed unexpectedly: {type(exc).__name__}: {exc}"), fmt
        )
    from dbhandles.cli.masking import mask_tokens
    from dbhandles.cli.output import render

    text = render(envelope, fmt)
    if envelope.get("success") is True:
        _emit(text)  # a token/create answer shows its new token once, as it should
        return 0
    _emit(mask_tokens(text))
    return 1
