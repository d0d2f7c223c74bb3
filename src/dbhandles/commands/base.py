"""What a command is: a params model, a result model, a plain handler, and the operation it performs."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeVar

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, WithJsonSchema
from pydantic.alias_generators import to_camel

from dbhandles.commands.grammar import HandleName
from dbhandles.commands.table import CommandTable
from dbhandles.context import (
    MAX_SESSION_ID,
    SESSION_ID_PATTERN,
    SESSION_ID_RULE,
    Context,
    is_session_id,
)
from dbhandles.errors import InvalidParams, SessionMismatch
from dbhandles.jsonmodel import JsonModel
from dbhandles.values import json_text

if TYPE_CHECKING:
    from dbhandles.registry import HandleEntry
    from dbhandles.service import Service

__all__ = [
    "AUDIT_TEXT_CHARS",
    "COMMANDS",
    "EVERY_COLLECTION",
    "JOB_COMMAND_NAMES",
    "QUERY_HANDLE_PATTERN",
    "AuditName",
    "AuditNames",
    "Call",
    "CallerParams",
    "Command",
    "DataParams",
    "DataResult",
    "Operation",
    "Params",
    "QueryHandle",
    "Result",
    "SessionId",
    "audit_text",
    "caller_context",
    "client_session",
    "command",
    "every_collection",
    "handle_target",
    "named_in_params",
    "no_target",
]

#: The ``collection`` of an audit row whose command touches every collection of its database
#: (data/clear: ``every_collection``).
EVERY_COLLECTION = "*"

#: The commands that run as jobs, with no time budget (``jobs.JOB_COMMANDS``). Here rather than in
#: ``commands/jobs.py`` (which re-exports it) so that the dispatcher's plan of any other command does
#: not import the job commands' models.
JOB_COMMAND_NAMES = ("data/copy", "data/export", "data/import", "data/vacuum")

#: A ``queryHandle``: 1 to ``MAX_SESSION_ID`` characters, none a control character (they reach the
#: audit log and the store, and PostgreSQL's text cannot hold U+0000). Session ids have a stricter
#: rule (``context.SESSION_ID_PATTERN``).
QUERY_HANDLE_PATTERN = f"^[^\\u0000-\\u001f\\u007f-\\u009f]{{1,{MAX_SESSION_ID}}}$"
#: The same rule in Python, lone surrogates (no UTF-8 form) refused too.
_QUERY_HANDLE = re.compile(f"[^\x00-\x1f\x7f-\x9f\ud800-\udfff]{{1,{MAX_SESSION_ID}}}")


def _check_session_id(value: str) -> str:
    if not is_session_id(value):
        raise InvalidParams(
            f"sessionId: {json_text(value, 80)} is not a valid session id ({SESSION_ID_RULE})",
            field="sessionId",
        )
    return value


def _check_query_handle(value: str) -> str:
    if not _QUERY_HANDLE.fullmatch(value):
        raise InvalidParams(
            f"queryHandle: {json_text(value, 80)} is not a valid query handle (1 to {MAX_SESSION_ID} "
            "characters, no control characters)",
            field="queryHandle",
        )
    return value


#: The ``sessionId`` param (``context.SESSION_ID_PATTERN``).
SessionId = Annotated[
    str,
    AfterValidator(_check_session_id),
    WithJsonSchema({"type": "string", "pattern": SESSION_ID_PATTERN}),
]
#: The ``queryHandle`` param of query-next and query-close (``QUERY_HANDLE_PATTERN``).
QueryHandle = Annotated[
    str,
    AfterValidator(_check_query_handle),
    WithJsonSchema({"type": "string", "pattern": QUERY_HANDLE_PATTERN}),
]

#: What a command does to data; Phase 2 permission checks key on this, at one choke point.
Operation = Literal["read", "write", "delete", "schema", "admin"]


class Params(JsonModel):
    """Base of every params model: camelCase on the wire, unknown keys refused (typos fail loud).

    A ``JsonModel``: values have the JSON type their field declares, so the server accepts exactly
    what the OpenAPI document describes. The CLI turns its ``--key=value`` text into typed values
    itself (cli/parse.py ``coerce_value``).
    """

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        defer_build=True,
    )


class CallerParams(Params):
    """Params every ``data/*`` command accepts because the original system's dispatcher sends them
    on every call (docs/compatibility.md); ``caller_context`` checks them before the command runs."""

    context: dict[str, Any] | None = None
    """The original system's caller context (JTAGContext): accepted, never stored."""
    session_id: SessionId | None = None
    """The caller's session: must be the one the call runs in (X-Session-Id, the WebSocket connection); a call without one runs in it."""
    backend: Literal["server"] | None = None
    """The original system's routing hint: only 'server' (this is the server)."""


_CLIENT_SESSION = re.compile(r"^[^/#]*[/#](.*)$", re.DOTALL)


def client_session(scoped: str | None) -> str | None:
    """The session id as the client knows it, from the one a call runs in: ``alice/s1`` (HTTP,
    scoped by the actor) and ``alice#c1`` (a WebSocket connection) give ``s1`` and ``c1``; an
    in-process caller's id is itself; ``None`` (or ``alice/``, no header) when there is none."""
    if scoped is None:
        return None
    found = _CLIENT_SESSION.match(scoped)
    own = found.group(1) if found else scoped
    return own or None


def caller_context(params: BaseModel, context: Context) -> Context:
    """The context a command runs in, given its ``sessionId`` param (the original's callers send it).

    A call that runs in no session of its own (no ``X-Session-Id``, an in-process caller without
    one) runs in ``<actor>/<sessionId>``, the session an ``X-Session-Id: <sessionId>`` header would
    give: query cursors opened with one ``sessionId`` are continued with the same one.

    Raises:
        SessionMismatch: the call runs in a session and ``sessionId`` names another.
    """
    wanted = params.session_id if isinstance(params, CallerParams) else None
    if wanted is None:
        return context
    own = client_session(context.session_id)
    if own is None:
        return replace(context, session_id=f"{context.actor}/{wanted}")
    if own != wanted:
        raise SessionMismatch(
            f"sessionId: {json_text(wanted, 80)} is not the session this call runs in ({json_text(own, 80)}: over HTTP its "
            "X-Session-Id header, over a WebSocket its connection, in jtag JTAG_SESSION_ID or its "
            "session file); send the same id in both, or leave --sessionId out",
            field="sessionId",
        )
    return context


class DataParams(CallerParams):
    """Params of every command that works on a database: the optional handle."""

    db_handle: HandleName | None = None
    """Handle or alias from data/open; omitted means 'default'."""


class Result(BaseModel):
    """Base of every result model (the envelope's ``success`` and ``timestamp`` are added outside)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, defer_build=True)

    #: Fields that hold records exactly as the adapter decoded them from JSON, fresh for each call
    #: (JSON values only, shared with nothing): the envelope of a read command takes them as they
    #: are instead of walking a 2 KB record a second time (``commands/envelope.py``).
    json_fields: ClassVar[tuple[str, ...]] = ()


class DataResult(Result):
    """Results of data commands name the handle that served them (the resolved handle id)."""

    db_handle: str


P = TypeVar("P", bound=Params)
R = TypeVar("R", bound=Result)


@dataclass(frozen=True, slots=True)
class Call:
    """One run of a command, as the dispatcher hands it to the handler.

    Attributes:
        context: who runs it and from where.
        target: the database the command touches, found once by the command's ``target`` rule
            (``None`` for commands that touch none, or whose target they create, like data/open);
            it is what was authorised, quota-checked and what the audit row names.
        hooks: optional observers of a long job, given by the front door that runs it (the CLI's
            progress bar for ``import-jsonl``); each long command documents the type it accepts.
    """

    context: Context
    target: HandleEntry | None = None
    hooks: object = None


Handler = Callable[["Service", Any, Call], Result]
#: How a command finds its target: ``(service, params, context) -> HandleEntry | None``.
TargetRule = Callable[["Service", Any, Context], "HandleEntry | None"]


def handle_target(service: Service, params: Any, context: Context) -> HandleEntry:
    """The handle named by ``params.dbHandle`` (``default`` when omitted).

    Raises:
        HandleNotFound: unknown, closed or mistyped.
        AccessDenied: another actor's alias (aliases belong to the actor that pointed them).
    """
    return service.registry.resolve_for(params.db_handle, context.actor, context.is_admin)


def no_target(service: Service, params: Any, context: Context) -> None:
    """For commands that touch no database (tokens, the audit log, listing handles)."""
    return None


@dataclass(frozen=True, slots=True)
class AuditName:
    """A database a command's params name, as its audit row needs it before anything resolved it.

    Attributes:
        handle: the handle or alias as sent (``None``: not named).
        collection: the collection as sent (``None``: none, or not text).
        operation: the operation done there (``None``: the command's own).
    """

    handle: str | None
    collection: str | None
    operation: str | None = None


#: The databases a command's raw params name (a refused call's too, so even params that fail
#: validation): its target first, then every other database it touches, each of which gets an audit
#: row of its own (data/copy's source).
AuditNames = Callable[[Mapping[str, Any]], tuple[AuditName, ...]]


#: How long the JSON text of a non-string name may be in an audit row (``audit_text``).
AUDIT_TEXT_CHARS = 100


def audit_text(value: object) -> str | None:
    """A name of raw params (``dbHandle``, ``collection``) as its audit row records it: a string
    as sent, ``None`` when left out (or ``null``), and anything else as ``?`` and its JSON text cut
    at ``AUDIT_TEXT_CHARS`` (``?{"a":1}``, ``?123``; ``?`` alone for a value JSON cannot write, such
    as one nested past orjson's depth): the row says what the caller sent, never a name it did
    not send (the default database), and no name of a handle or alias starts with ``?``."""
    if value is None or isinstance(value, str):
        return value
    try:
        shown = orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        shown = ""
    return "?" + shown[:AUDIT_TEXT_CHARS]


def named_in_params(raw: Mapping[str, Any]) -> tuple[AuditName, ...]:
    """The default ``AuditNames``: the target is ``dbHandle`` and ``collection``, and nothing else."""
    return (AuditName(audit_text(raw.get("dbHandle")), audit_text(raw.get("collection"))),)


def every_collection(raw: Mapping[str, Any]) -> tuple[AuditName, ...]:
    """``AuditNames`` of a command that touches every collection of ``dbHandle`` (data/clear):
    its rows name the collection ``*`` (``EVERY_COLLECTION``)."""
    return (AuditName(audit_text(raw.get("dbHandle")), EVERY_COLLECTION),)


@dataclass(frozen=True, slots=True)
class Command:
    """One entry of the command table."""

    name: str
    params: type[Params]
    result: type[Result]
    handler: Handler
    operation: Operation
    summary: str
    example: str
    #: The parameter the CLI fills from a bare positional argument (``jtag data/read <id>``).
    positional: str | None = None
    #: Whether the command works on a ``dbHandle`` (and so on a collection in a database).
    uses_handle: bool = True
    #: Only administrators may run it (e.g. ``data/audit``).
    admin_only: bool = False
    #: How the dispatcher finds the database the command touches (see ``Call.target``).
    target: TargetRule = no_target
    #: What its params name for the audit log, when that is not just ``dbHandle`` and
    #: ``collection`` (``named_in_params``): the dispatcher names the target's collection from it
    #: when the params have none, and writes a row for each other database, whatever the outcome.
    audit_names: AuditNames | None = None


#: Every command by wire name; a lookup imports only the module that registers it (commands/table.py).
COMMANDS = CommandTable()


def command(
    name: str,
    *,
    params: type[P],
    result: type[R],
    operation: Operation,
    summary: str,
    example: str,
    positional: str | None = None,
    admin_only: bool = False,
    target: TargetRule | None = None,
    audit_names: AuditNames | None = None,
) -> Callable[[Callable[[Service, P, Call], R]], Callable[[Service, P, Call], R]]:
    """Register a handler in the command table under its wire name (duplicates are refused).

    ``target`` says how the command's database is found; the default is ``handle_target`` for
    params with a ``dbHandle`` (``DataParams``) and ``no_target`` for the rest. ``audit_names``
    says what its params name for the audit log when that is more than ``dbHandle`` and
    ``collection`` (``Command.audit_names``).
    """

    def register(fn: Callable[[Service, P, Call], R]) -> Callable[[Service, P, Call], R]:
        COMMANDS.add(
            Command(
                name=name,
                params=params,
                result=result,
                handler=fn,
                operation=operation,
                summary=summary,
                example=example,
                positional=positional,
                uses_handle=issubclass(params, DataParams),
                admin_only=admin_only,
                target=target
                if target is not None
                else handle_target
                if issubclass(params, DataParams)
                else no_target,
                audit_names=audit_names,
            )
        )
        return fn

    return register
