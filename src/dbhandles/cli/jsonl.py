"""``jtag import-jsonl`` and ``jtag export-jsonl``: the importer and exporter on the command line.

Same grammar as every ``jtag`` command (``--key=value``, ``--key value``, ``--flag``, ``key=value``;
kebab-case, camelCase or snake_case keys), same parameters as ``data/import`` / ``data/export``, plus
``--progress=auto|bar|lines|none`` and ``--quiet`` (= ``--progress=none``). The result is printed as
JSON on stdout (the envelope: ``success``, the counts, ``dbHandle``, ``output``...), progress goes to
stderr, and the exit code is 0 exactly when ``success`` is true. Runs in-process against the durable
handle registry of ``DBHANDLES_HOME``, so the printed ``dbHandle`` works in the next ``jtag`` call.

Who runs it: without ``--token``, ``JTAG_TOKEN`` or ``JTAG_URL`` the local user (an administrator), in
this process. A token or a URL names an actor of a server: then the command is sent to that server
(``JTAG_URL``, else the server of this home) as ``data/import`` / ``data/export``, exactly as
``jtag data/import`` would be, so it runs as that actor with its paths and rights (no progress is
shown). When no server serves the home, a token is refused (``server_unreachable``), never ignored:
running as the local administrator instead would be a silent escalation (docs/security.md).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from pydantic import ValidationError

from dbhandles.commands import builtin_commands
from dbhandles.commands.envelope import error_envelope
from dbhandles.context import Context
from dbhandles.errors import DbHandlesError, Interrupted, InvalidParams
from dbhandles.importer.command import ExportHooks, ExportParams, ImportHooks, ImportParams
from dbhandles.importer.export import ExportStats
from dbhandles.importer.interrupt import deferred_interrupt
from dbhandles.importer.progress import make_progress
from dbhandles.importer.stats import ImportStats
from dbhandles.settings import Settings

if TYPE_CHECKING:
    from dbhandles.cli.parse import CliArgs
    from dbhandles.cli.transport import Transport
    from dbhandles.service import Service

__all__ = ["export_main", "import_main"]

_PROGRESS_MODES = ("auto", "bar", "lines", "none")

IMPORT_USAGE = """\
usage: jtag import-jsonl --input=FILE.jsonl[.gz] --output=DB.sqlite [--collection=training_examples]
                         [--id-field=PATH] [--batch-size=N] [--on-error=abort|skip] [--rejects=FILE]
                         [--db-handle=HANDLE instead of --output] [--parser=auto|process|inline]
                         [--progress=auto|bar|lines|none] [--quiet] [--token=TOKEN]

Streams a JSONL file into a collection through a handle (opened with data/open, mode create), one
transaction per batch. Re-running (also after a kill) stores each record once: ids come from
--id-field, else the line's "id", else a hash of its content. Files of 16 MiB or more are parsed in
a second process while this one writes. Prints a JSON summary on stdout. With --token (or
JTAG_TOKEN, JTAG_URL) it runs on the server as that token's actor, like jtag data/import; with a
token and no server it refuses (server_unreachable) rather than run as the local administrator."""

EXPORT_USAGE = """\
usage: jtag export-jsonl --input=DB.sqlite --output=FILE.jsonl[.gz] [--collection=training_examples]
                         [--filter='{"metadata.qualityScore":{"$gte":0.8}}'] [--page-size=N]
                         [--fields=messages] [--omit-reserved] [--limit=N] [--order-by=FIELD]
                         [--sample=N --seed=N] [--split='{"name":"train","fractions":{...}}']
                         [--overwrite] [--db-handle=HANDLE instead of --input] [--quiet]
                         [--token=TOKEN]

Writes every record of a collection (id, fields, createdAt, updatedAt, version) as one JSON line;
import-jsonl reads such a file back into the same records. --fields keeps only those fields (plus
id), --omit-reserved leaves out id, createdAt, updatedAt and version (a fine-tuning file), --sample
and --split pick deterministic subsets (docs/counting.md). An existing output file is refused
(file_exists) unless --overwrite. With --token (or JTAG_TOKEN, JTAG_URL) it runs on the server as
that token's actor, like jtag data/export (refused without a server)."""


def _write(stream: TextIO, envelope: dict[str, Any], fmt: str = "json") -> None:
    from dbhandles.cli.output import render  # the one display rule of every format

    text = render(envelope, fmt)
    if envelope.get("success") is not True:
        from dbhandles.cli.masking import mask_tokens

        text = mask_tokens(text)
    try:
        stream.write(text + "\n")
        stream.flush()
    except BrokenPipeError:
        pass


def _split_own_flags(argv: Sequence[str]) -> tuple[list[str], str, bool]:
    """Take ``--progress``, ``--quiet`` and ``--help`` out; return the rest, the mode and help."""
    rest: list[str] = []
    mode, wants_help = "auto", False
    tokens = list(argv)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token in ("--help", "-h"):
            wants_help = True
        elif token in ("--quiet", "-q"):
            mode = "none"
        elif token == "--progress" and i < len(tokens) and not tokens[i].startswith("--"):
            mode = tokens[i]
            i += 1
        elif token.startswith("--progress="):
            mode = token.partition("=")[2]
        else:
            rest.append(token)
    if mode not in _PROGRESS_MODES:
        raise InvalidParams(
            f"progress: must be one of {', '.join(_PROGRESS_MODES)}", field="progress"
        )
    return rest, mode, wants_help


def _args(name: str, argv: list[str]) -> CliArgs:
    """The raw params, ``--format`` (json or table) and ``--token`` of a command line."""
    # The one jtag grammar; imported late because the jtag CLI imports this module.
    from dbhandles.cli.parse import parse_args

    return parse_args(builtin_commands()[name], argv)


def _server(name: str, token: str | None) -> Transport | None:
    """The server to send the command to when the command line names an actor (``--token``,
    ``JTAG_TOKEN``) or a server (``JTAG_URL``); ``None``: run in-process as the local user.

    Raises:
        InvalidParams: ``JTAG_TOKEN`` is set but empty.
        ServerUnreachable: a token was given and no server serves this home.
    """
    from dbhandles.cli.transport import (
        RemoteTransport,
        choose_transport,
        env_token,
        find_server,
        token_needs_server,
    )

    token = token or env_token(os.environ)  # set but empty: refused, never the local user
    settings = Settings.from_env()
    if (os.environ.get("JTAG_URL") or "").strip():
        return choose_transport(settings, token=token)  # JTAG_URL: always that server
    if token is None:
        return None
    url = find_server(settings.home.expanduser())
    if url is None:
        command = "import-jsonl" if name == "data/import" else "export-jsonl"
        raise token_needs_server(command, settings.home)
    return RemoteTransport(url, None, token)


def _run(
    name: str,
    argv: Sequence[str] | None,
    usage: str,
    body: Callable[[Service, dict[str, Any], str, dict[str, Any]], dict[str, Any]],
    service: Service | None,
    stdout: TextIO | None,
) -> int:
    """Shared shell of both entry points: parse, run, print one envelope, map errors to exit codes."""
    out = stdout if stdout is not None else sys.stdout
    partial: dict[str, Any] = {}
    own = service is None
    fmt = "json"
    try:
        rest, mode, wants_help = _split_own_flags(sys.argv[1:] if argv is None else argv)
        if wants_help:
            out.write(usage + "\n")
            return 0
        args = _args(name, rest)
        raw, fmt = args.params, args.format
        remote = _server(name, args.token) if service is None else None
        if remote is not None:
            return _remotely(remote, name, raw, out, fmt)
        if service is None:
            from dbhandles.service import Service

            service = Service(settings=Settings.from_env())
        envelope = body(service, raw, mode, partial)
    except Interrupted as exc:
        _write(out, {**error_envelope(exc), **partial}, fmt)
        return 130
    except DbHandlesError as exc:
        _write(out, {**error_envelope(exc), **partial}, fmt)
        return 1
    except ValueError as exc:  # a DBHANDLES_* variable that is not a number
        config_error = InvalidParams(f"configuration: {exc}", field="environment")
        _write(out, error_envelope(config_error), fmt)
        return 1
    except KeyboardInterrupt:
        _write(out, {**error_envelope(Interrupted(f"{name} interrupted")), **partial}, fmt)
        return 130
    except Exception as exc:  # never a traceback: say what broke
        error = DbHandlesError(f"{name} failed unexpectedly: {type(exc).__name__}: {exc}")
        _write(out, {**error_envelope(error), **partial}, fmt)
        return 1
    finally:
        if own and service is not None:
            service.close()
    _write(out, envelope, fmt)
    return 0


def _remotely(transport: Transport, name: str, raw: dict[str, Any], out: TextIO, fmt: str) -> int:
    """Send the command to the server as the token's actor; print its envelope as it came.

    The params go as read: the server's dispatcher checks them, and audits a refusal, as it does
    every client's (``jtag data/import`` sends them the same way)."""
    try:
        envelope = transport.dispatch(name, raw)
    finally:
        transport.close()
    _write(out, envelope, fmt)
    return 0 if envelope.get("success") is True else 1


def _validated(
    model: type[ImportParams] | type[ExportParams], name: str, raw: dict[str, Any]
) -> Any:
    from dbhandles.param_errors import params_error

    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise params_error(name, exc) from exc


def import_main(
    argv: Sequence[str] | None = None,
    *,
    service: Service | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """``jtag import-jsonl [--key=value ...]``; returns the exit code (0 success, 1 failure, 130 Ctrl-C).

    Args:
        argv: the arguments after ``import-jsonl`` (``sys.argv[1:]`` when ``None``).
        service: the service to use (a new one on ``DBHANDLES_HOME`` when ``None``, closed after).
        stdout: where the JSON summary goes; stderr: where progress goes.
    """

    def body(
        svc: Service, raw: dict[str, Any], mode: str, partial: dict[str, Any]
    ) -> dict[str, Any]:
        params = _validated(ImportParams, "data/import", raw)
        stats = ImportStats()

        def target(handle: str, path: str | None) -> None:
            partial.update({"dbHandle": handle, "output": path})

        progress = make_progress(mode, stderr, label="import")
        with deferred_interrupt(progress) as stopper:
            try:
                # Through the dispatcher like every front door: authorised and audited.
                return svc.execute("data/import", params, context=Context(),
                                   hooks=ImportHooks(progress=stopper, stats=stats,
                                                     on_target=target))  # fmt: skip
            except (DbHandlesError, KeyboardInterrupt) as exc:
                stats.finish()
                partial.update({k: v for k, v in stats.counts().items() if k != "totalBytes"})
                if isinstance(exc, DbHandlesError):
                    raise
                held = stats.committed()
                if stopper.hard:
                    held += " (a second Ctrl-C stopped it at once: one more batch may be stored)"
                raise Interrupted(
                    f"data/import interrupted: {held}; run the same command again to store the "
                    "rest (what is stored is skipped)"
                ) from None

    return _run("data/import", argv, IMPORT_USAGE, body, service, stdout)


def export_main(
    argv: Sequence[str] | None = None,
    *,
    service: Service | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """``jtag export-jsonl [--key=value ...]``; returns the exit code (0 success, 1 failure, 130 Ctrl-C).

    Args:
        argv: the arguments after ``export-jsonl`` (``sys.argv[1:]`` when ``None``).
        service: the service to use (a new one on ``DBHANDLES_HOME`` when ``None``, closed after).
        stdout: where the JSON summary goes; stderr: where progress lines go.
    """
    err = stderr if stderr is not None else sys.stderr

    def body(
        svc: Service, raw: dict[str, Any], mode: str, partial: dict[str, Any]
    ) -> dict[str, Any]:
        params = _validated(ExportParams, "data/export", raw)
        stats = ExportStats()
        last = [time.monotonic()]

        def on_page(s: ExportStats) -> None:
            now = time.monotonic()
            if mode != "none" and now - last[0] >= 5.0:
                last[0] = now
                err.write(
                    f"export: {s.exported:,} records, {s.records_per_second:,.0f} records/s\n"
                )
                err.flush()

        try:
            return svc.execute("data/export", params, context=Context(),
                               hooks=ExportHooks(stats=stats, on_page=on_page))  # fmt: skip
        except DbHandlesError:
            partial.update({"exported": stats.exported})
            raise

    return _run("data/export", argv, EXPORT_USAGE, body, service, stdout)
