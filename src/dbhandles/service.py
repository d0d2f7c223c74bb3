"""The service: a registry, an event bus, declared schemas and the one dispatcher ``execute``.

``Service.execute`` returns the success envelope or raises a ``DbHandlesError``; ``Service.dispatch``
never raises for bad input and returns the failure envelope instead (the server and the CLI use it).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ValidationError

from dbhandles.adapters import Adapter, get_adapter_class, reach_guard
from dbhandles.adapters.error_scope import scoped as error_scope
from dbhandles.adapters.sqlite_pages import run_sharing_heap
from dbhandles.budget import begin as begin_budget
from dbhandles.budget import begin_stop, end_stop
from dbhandles.budget import end as end_budget
from dbhandles.byte_cache import NAME_CACHE_BYTES, ByteCache, deep_sizeof
from dbhandles.commands import COMMANDS, Command
from dbhandles.commands.audit_rows import (
    record_failure,
    record_outcome,
    record_refusal,
    record_unrun,
)
from dbhandles.commands.base import JOB_COMMAND_NAMES, Call, CallerParams, caller_context
from dbhandles.commands.envelope import error_envelope, success_envelope
from dbhandles.commands.fast_params import parse_simple
from dbhandles.commands.path_places import placed_path_error
from dbhandles.context import SESSION_ID_RULE, Context, is_scoped_session, is_session_id
from dbhandles.errors import (
    ConstraintViolation,
    DbHandlesError,
    InvalidConfig,
    InvalidFilter,
    InvalidParams,
    QuotaExceeded,
    UnknownCommand,
)
from dbhandles.events import EventBus
from dbhandles.events.sqlite_log import SqliteEventLog
from dbhandles.param_errors import params_error
from dbhandles.query_cursors import QueryCursors
from dbhandles.registry import DEFAULT_HANDLE, HandleEntry, HandleRegistry
from dbhandles.schemas import Declaration, SchemaRegistry
from dbhandles.security import paths
from dbhandles.security.audit import AuditLog, begin_notes, end_notes
from dbhandles.security.name_reach import resolve_names
from dbhandles.security.permissions import ResolvedName
from dbhandles.security.policy import AccessPolicy, authorize, operations_of
from dbhandles.security.redaction import redacted, restricted
from dbhandles.settings import Settings
from dbhandles.store import HandleStore
from dbhandles.values import json_text

if TYPE_CHECKING:
    from dbhandles.events.postgres import PostgresEventBridge
    from dbhandles.jobs import JobRunner
    from dbhandles.security.tokens import TokenManager
    from dbhandles.store.jobs import JobRow

__all__ = ["Service", "check_home", "check_session", "params_error"]

log = logging.getLogger(__name__)
_GROWS = {"write"}
#: The context of an in-process call that gives none (a ``Context`` is frozen: one serves all).
_LOCAL = Context()


@dataclass(frozen=True, slots=True)
class _Plan:
    """What ``Service.execute`` decides once per command rather than on every call.

    Attributes:
        budget_ms: the time budget of each call in milliseconds (``0``: none, a long job).
        share_json: a read command: its envelope takes the result's records as they are
            (``success_envelope``'s ``share_json``).
        may_grow: some call of it may write (its own operation, or a batch's operations), so a
            size quota is checked before it runs.
        command: the command it was made for (a test may put another under the same name).
        names_session: its params may name a ``sessionId`` (``caller_context`` checks it).
        names_files: its result may name files (``paths.shown_result`` decides what is shown).
        point_read: for ``data/read`` as registered, its direct path
            (``commands/read_path.py``), taken by a call with params of plain strings.
    """

    budget_ms: int
    share_json: bool
    may_grow: bool
    command: Command
    names_session: bool
    names_files: bool
    point_read: PointRead | None


#: ``read_path.point_read``'s signature.
PointRead = Callable[["Service", Command, dict[str, Any], Context, int], "dict[str, Any] | None"]


def _point_read(command: Command) -> PointRead | None:
    """The direct path of ``command`` if it has one (``data/read`` as registered), imported only
    then: a process that never reads imports no read command."""
    if command.name != "data/read":
        return None
    from dbhandles.commands.read_path import point_read, takes

    return point_read if takes(command) else None


def _interrupted_error(row: JobRow) -> dict[str, Any]:
    """``commands.jobs.interrupted_error``, imported only when a dead process left a job behind: a
    start that finds none (nearly every start) imports no job command."""
    from dbhandles.commands.jobs import interrupted_error

    return interrupted_error(row)


def _event_bridge(url: str, bus: EventBus) -> PostgresEventBridge:
    """A started bridge carrying ``bus``'s events to and from every process on a PostgreSQL default."""
    from dbhandles.adapters.postgres_config import PostgresConfig
    from dbhandles.events.postgres import PostgresEventBridge
    from dbhandles.store.postgres_default import default_config

    config = default_config(url)  # first: without psycopg this is DriverMissing, not ImportError
    assert isinstance(config, PostgresConfig)
    return PostgresEventBridge(config, bus).start()


def check_home(home: Path) -> None:
    """The home folder (``DBHANDLES_HOME``, ``Service(home=...)``) is a folder this process may
    use, or can be created (its default database, tokens and session file live there).

    Raises:
        InvalidConfig: it, or a folder on its way, is not a folder (a regular file), or it is a
            folder this user cannot read, write or enter (field ``home``, the message names it).
    """
    folder = home.expanduser()
    where = folder
    try:
        while not where.exists() and where.parent != where:
            where = where.parent  # the deepest part that exists: the rest is created
        is_dir = where.is_dir()
    except OSError as exc:  # a folder on the way this user may not enter
        raise InvalidConfig(
            f"home: {json_text(str(folder), 80)} cannot be the home folder: {exc.strerror} at {json_text(str(where), 80)}; "
            "set DBHANDLES_HOME (home= in Python) to a folder this user may use",
            field="home",
        ) from exc
    if not is_dir:
        raise InvalidConfig(
            f"home: {json_text(str(folder), 80)} cannot be the home folder: {json_text(str(where), 80)} is not a folder; "
            "set DBHANDLES_HOME (home= in Python) to a folder",
            field="home",
        )
    if not os.access(where, os.R_OK | os.W_OK | os.X_OK):
        raise InvalidConfig(
            f"home: {json_text(str(folder), 80)} cannot be the home folder: this user may not read, write and "
            f"enter {json_text(str(where), 80)}; fix its permissions or set DBHANDLES_HOME (home= in Python) to "
            "another folder",
            field="home",
        )


#: ``(session id, actor)`` pairs ``check_session`` accepted (never a refusal), ``NAME_CACHE_BYTES``.
_ACCEPTED_SESSIONS: ByteCache[tuple[str, str], bool] = ByteCache(NAME_CACHE_BYTES)


def check_session(context: Context) -> None:
    """The in-process door of the session id rule (``context.SESSION_ID_PATTERN``): a context's
    ``session_id`` is a session id, or one the server scoped by the context's actor.

    Raises:
        InvalidParams: anything else (field ``sessionId``).
    """
    session_id, actor = context.session_id, context.actor
    if session_id is None:
        return
    plain = type(session_id) is str and type(actor) is str  # hashable, and what the rule is about
    if plain and _ACCEPTED_SESSIONS.get((session_id, actor)):
        return
    if is_session_id(session_id) or (
        isinstance(session_id, str) and is_scoped_session(session_id, actor)
    ):
        # The rule is a function of the two strings alone, and a server's requests repeat them.
        if plain:
            _ACCEPTED_SESSIONS.put(
                (session_id, actor), True, deep_sizeof(((session_id, actor), True))
            )
        return
    raise InvalidParams(
        f"sessionId: {json_text(session_id, 80)} is not a valid session id ({SESSION_ID_RULE})",
        field="sessionId",
    )


class Service:
    """Everything a data command needs, behind ``execute(name, params)``.

    Args:
        home: folder of the default database; overrides ``settings.home``.
        settings: limits and timeouts (``Settings()`` by default; the CLI uses ``Settings.from_env()``).
        store: where handles persist (the default SQLite database unless given).
    """

    def __init__(
        self,
        home: str | Path | None = None,
        *,
        settings: Settings | None = None,
        store: HandleStore | None = None,
    ) -> None:
        if store is None:
            check_home((settings or Settings()).home if home is None else Path(home))
        self.registry = HandleRegistry(home, settings=settings, store=store)
        self.settings = self.registry.settings
        self.events = EventBus()
        #: Carries events between every process on the home: LISTEN/NOTIFY on a PostgreSQL default,
        #: the log ``<home>/events.sqlite`` on an SQLite one (it opens nothing until used).
        self.bridge: PostgresEventBridge | SqliteEventLog | None = None
        if self.settings.default_url:
            try:
                self.bridge = _event_bridge(self.settings.default_url, self.events)
            except BaseException:
                self.registry.close_all()
                raise
        else:
            self.bridge = SqliteEventLog(self.settings.home.expanduser(), self.events).attach()
        self.schemas = SchemaRegistry()
        self.audit = AuditLog(self.registry.store, enabled=self.settings.audit)
        self._tokens: TokenManager | None = None  # made on first use, as ``jobs``
        self._indexed: set[tuple[int, str]] = set()
        self._plans: dict[str, _Plan] = {}
        self._inline_safe: dict[str | None, HandleEntry | Literal[False]] = {}
        #: Every query cursor: open, next, close, expiry, end of session, close with the handle.
        self.cursors = QueryCursors(self.registry)
        #: Who may do what on which database: owners, grants, the default database's policy.
        self.access = AccessPolicy(self.settings, self.registry.store)
        self.access.resolve_names = self.resolve_names
        self.access.borrowed.generation = self.registry.access_generation
        self._jobs: JobRunner | None = None  # made on first use: most callers never run a job
        #: The error every running command stops with, once ``interrupt`` was called.
        self._stopped: DbHandlesError | None = None
        self._jobs_lock = threading.Lock()
        self._index_lock = threading.Lock()
        self._interrupt_orphaned_jobs()

    def _interrupt_orphaned_jobs(self) -> None:
        """Mark ``interrupted`` the jobs a dead process of this host left queued or running."""
        try:
            now = int(time.time() * 1000)
            ended = self.registry.store.jobs.interrupt_dead(now, _interrupted_error)
        except DbHandlesError as exc:  # a busy home: the next start (or job start) does it
            log.warning("could not check the job table for interrupted jobs: %s", exc)
            return
        if ended:
            log.warning("%d job(s) of a process that ended are marked interrupted", ended)

    def interrupt(self, error: DbHandlesError) -> None:
        """Stop every command running in this process (a server past its shutdown grace): the
        statement each runs is interrupted (``budget.stopping``) and it answers ``error``, as will
        any command that starts later and runs a long statement."""
        self._stopped = error

    def _stop_error(self) -> DbHandlesError | None:
        return self._stopped

    @property
    def tokens(self) -> TokenManager:
        """The API tokens of this home; made on first use (a local command never checks one)."""
        if self._tokens is None:
            with self._jobs_lock:  # one manager: a revocation clears the one cache of tokens
                from dbhandles.security.tokens import TokenManager

                self._tokens = self._tokens or TokenManager(self.registry.store, self.settings.home)
        return self._tokens

    @property
    def jobs(self) -> JobRunner:
        """Long commands (import, export, vacuum) run by a server apart from its request threads."""
        runner = self._jobs
        if runner is None:
            with self._jobs_lock:
                if self._jobs is None:
                    from dbhandles.jobs import JobRunner

                    self._jobs = JobRunner(self)
                runner = self._jobs
        return runner

    # -- the dispatcher ----------------------------------------------------------------------------

    def execute(
        self,
        name: str,
        params: Mapping[str, Any] | BaseModel | None = None,
        *,
        context: Context | None = None,
        hooks: object = None,
    ) -> dict[str, Any]:
        """Run a command; return its success envelope.

        The command's target (the database it touches) is found once, by the command's own rule
        (a handle, a cursor, an output file), then authorised, quota-checked, handed to the handler
        (``Call.target``) and named in the audit row, which is written for refusals and crashes too.

        Args:
            hooks: observers of a long job for the handler (e.g. the CLI's import progress).

        Raises:
            DbHandlesError: any failure, with its stable ``code``.
        """
        command = COMMANDS.get(name) if type(name) is str else None
        if command is None:  # audited as at every door, then the error naming the known commands
            record_unrun(self.audit, name, context or _LOCAL, UnknownCommand.code)
            command = self.command(name)
        plan = self._plans.get(name)
        if plan is None or plan.command is not command:
            plan = self._plan(command)
        context = context or _LOCAL
        try:
            if context is not _LOCAL:
                check_session(context)
        except DbHandlesError as exc:  # refused before it ran: audited too
            self.audit_refusal(command, params, context, exc.code)
            raise
        if plan.point_read is not None and type(params) is dict:
            # data/read's direct path (commands/read_path.py): the same checks, less glue.
            envelope = plan.point_read(self, command, params, context, plan.budget_ms)
            if envelope is not None:
                return envelope
        try:
            parsed = self._parse(command, params)
            if plan.names_session and parsed.session_id is not None:  # type: ignore[attr-defined]
                # The original's callers name their session in the params (docs/compatibility.md).
                context = caller_context(parsed, context)
        except DbHandlesError as exc:  # refused before it ran: audited too
            self.audit_refusal(command, params, context, exc.code)
            raise
        entry: HandleEntry | None = None
        # The real files the command resolves (security/paths.py), and what its target rule found
        # that its params do not say (a cursor's collection), for its audit row.
        files = paths.begin_call()
        notes = begin_notes()
        target: str | None = None
        noted: str | None = None
        try:
            try:
                entry = command.target(self, parsed, context)
                reach_guard.clear()  # what authorize finds, checked again by the adapter
                authorize(command, parsed, context, entry, self.access)
                if (
                    plan.may_grow
                    and entry is not None
                    and self.settings.max_db_bytes
                    and operations_of(command, parsed) & _GROWS
                ):
                    self._check_size(entry)
                # Every query of the command shares one time budget (dbhandles.budget).
                budget = begin_budget(plan.budget_ms)
                stop = begin_stop(self._stop_error)
                try:
                    call = Call(context, entry, hooks)
                    # What the adapters' errors may quote (adapters/error_scope.py).
                    reading = command.operation == "read"
                    with error_scope(restricted=restricted(entry), reading=reading):
                        if reading:  # again once SQLite's memory comes back
                            result = run_sharing_heap(lambda: command.handler(self, parsed, call))
                        else:
                            result = command.handler(self, parsed, call)
                except ConstraintViolation as exc:
                    # The database checks constraints against rows and tables this handle
                    # may not see: say no more than the kind and the field.
                    if not restricted(entry):
                        raise
                    raise redacted(exc) from exc
                except InvalidFilter as exc:
                    # An adapter refused a path in a collection: name the param that holds it.
                    placed = placed_path_error(exc, parsed)
                    if placed is None:
                        raise
                    raise placed from exc
                finally:
                    end_stop(stop)
                    end_budget(budget)
            finally:
                target = paths.end_call(files)
                noted = end_notes(notes)
        except BaseException as exc:
            record_failure(self, command, params, parsed, context, entry, exc, target, noted)
            raise
        record_outcome(self, command, params, parsed, context, entry, result, None, target, noted)
        envelope = success_envelope(result, context, share_json=plan.share_json)
        if not plan.names_files:
            return envelope
        return paths.shown_result(self.settings, context, command.name, envelope)

    def _plan(self, command: Command) -> _Plan:
        """What ``execute`` decides about ``command`` once and for all (``_Plan``)."""
        plan = _Plan(
            # Long jobs (import, export, vacuum, copy) have no time budget.
            budget_ms=0 if command.name in JOB_COMMAND_NAMES else self.settings.query_timeout_ms,
            share_json=command.operation == "read",
            # A batch's operations are its params': decided per call (``operations_of``).
            may_grow=command.operation in _GROWS
            or "operations" in command.params.__pydantic_fields__,
            command=command,
            names_session=issubclass(command.params, CallerParams),
            names_files=command.name in paths.FILE_RESULTS,
            point_read=_point_read(command),
        )
        self._plans[command.name] = plan
        return plan

    def authorize(
        self, command: Command, params: BaseModel, context: Context, entry: HandleEntry | None
    ) -> None:
        """``policy.authorize`` with this service's access policy (the default database's policy,
        owners and grants): what the dispatcher asks before every handler, for other callers
        (the WebSocket's event filter)."""
        authorize(command, params, context, entry, self.access)

    def lease(self, call: Call) -> Any:
        """The adapter behind the command's target, for the length of a ``with`` block."""
        return self.registry.lease(call.target)

    def resolve_names(
        self, entry: HandleEntry, names: Sequence[str], cascades: bool = False
    ) -> dict[str, ResolvedName]:
        """``security.name_reach.resolve_names`` on this service's registry."""
        return resolve_names(self.registry, entry, names, cascades)

    def _check_size(self, entry: HandleEntry) -> None:
        with self.registry.lease(entry) as (_, adapter):
            adapter.connect()
            size = adapter.size_bytes()
        if entry.handle == DEFAULT_HANDLE:  # the audit log and handle tables are no actor's data
            size -= self.registry.store.own_bytes()
        if size > self.settings.max_db_bytes:
            raise QuotaExceeded(
                f"the database behind this handle is {size} bytes, over the quota of "
                f"{self.settings.max_db_bytes}; delete data and run data/vacuum, or raise DBHANDLES_MAX_DB_BYTES"
            )

    # -- the audit rows (commands/audit_rows.py) ------------------------------------------------------

    def audit_refusal(
        self,
        command: Command,
        params: Mapping[str, Any] | BaseModel | None,
        context: Context,
        code: str,
    ) -> None:
        """The audit rows of a command refused before it ran (bad params, a bad session), one per
        database its params name (``audit_rows.record_refusal``). Every front door that refuses
        a command's params writes them through here (the dispatcher, a job's start)."""
        record_refusal(self, command, params, context, code)

    def dispatch(
        self, name: str, params: Mapping[str, Any] | None = None, *, context: Context | None = None
    ) -> dict[str, Any]:
        """Run a command; return its envelope, success or failure (never raises for a command error)."""
        try:
            return self.execute(name, params, context=context)
        except DbHandlesError as exc:
            return error_envelope(exc, context)
        except Exception:
            log.exception("command %s failed unexpectedly", name)
            failed = DbHandlesError(f"{name} failed unexpectedly; the server log has the details")
            return error_envelope(failed, context)

    @staticmethod
    def command(name: str) -> Command:
        command = COMMANDS.get(name) if isinstance(name, str) else None
        if command is None:
            raise UnknownCommand(
                f"unknown command {json_text(name, 80)}; known commands: {', '.join(sorted(COMMANDS))}",
                field="command",
            )
        return command

    @staticmethod
    def _parse(command: Command, params: Mapping[str, Any] | BaseModel | None) -> BaseModel:
        if type(params) is dict:
            # Params of plain strings (a data/read's) are checked by the validators' own checks
            # without pydantic's machinery; anything else, and every failure, goes through pydantic.
            simple = parse_simple(command.params, params)
            if simple is not None:
                return simple
        if isinstance(params, command.params):
            return params
        if params is None:
            params = {}
        if isinstance(params, BaseModel):
            params = params.model_dump(by_alias=True, exclude_unset=True)
        if not isinstance(params, Mapping):
            raise InvalidParams(
                f"params: {command.name} expects an object of parameters", field="params"
            )
        try:
            return command.params.model_validate(dict(params))
        except ValidationError as exc:
            raise params_error(command.name, exc) from exc

    # -- helpers for handlers ----------------------------------------------------------------------

    def declare(
        self,
        collection: str,
        model: type[BaseModel] | None = None,
        *,
        indexes: list[str] | tuple[str, ...] = (),
    ) -> Declaration:
        """Declare a collection: records are validated against ``model``; ``indexes`` become real indexes."""
        decl = self.schemas.declare(collection, model, indexes)
        with self._index_lock:
            self._indexed = {k for k in self._indexed if k[1] != collection.lower()}
        return decl

    def ensure_declared(self, adapter: Adapter, collection: str) -> Declaration | None:
        """The collection's declaration, with its indexes created on this adapter (once)."""
        decl = self.schemas.get(collection)
        if decl is None or not decl.indexes or adapter.readonly:
            return decl
        key = (id(adapter), collection.lower())
        if key not in self._indexed:
            adapter.ensure_indexes(collection, list(decl.indexes))
            with self._index_lock:
                self._indexed.add(key)
        return decl

    def publish(
        self, entry: HandleEntry, name: str, payload: dict[str, Any], suppress: bool
    ) -> None:
        """Publish a data event unless suppressed by the call or by the handle's ``emitEvents``."""
        if suppress or not entry.emit_events:
            return
        self.events.publish(name, {"dbHandle": entry.handle, **payload})

    def reads_without_waiting(self, handle_name: object) -> bool:
        """Whether a point read through this handle can never wait on a lock or the network.

        True when the handle table is local (``HandleStore.local``), the handle's adapter has
        ``Features.inline_reads`` and its live connection says reads never wait
        (``Adapter.reads_never_wait``: SQLite in WAL mode, where readers never wait for writers,
        whether the handle is read-only or read-write). The decision is the adapter's, never a
        name or mode check here. The server uses this to answer ``data/read`` on its event loop
        when no worker thread is busy, instead of paying a thread hand-off per read.
        """
        if not self.registry.store.local:
            return False
        if handle_name is not None and not isinstance(handle_name, str):
            return False
        known = self._inline_safe.get(handle_name)
        if known is None:
            try:
                entry = self.registry.resolve(handle_name)
                features = get_adapter_class(entry.adapter_name).features
            except DbHandlesError:
                return False
            known = entry if features.inline_reads else False
            # Aliases can be re-pointed at another handle, so only handle ids (and default) are
            # remembered: a handle's adapter and config never change.
            if handle_name is None or entry.handle == handle_name:
                if len(self._inline_safe) > 10_000:
                    self._inline_safe.clear()
                self._inline_safe[handle_name] = known
        # The journal mode is the file's, not the handle's: asked of the live connection each time.
        return known is not False and self.registry.reads_never_wait(known)

    def end_session(self, session_id: str) -> int:
        """Close every query cursor of a session that ended (a closed connection); return how many."""
        return self.cursors.end_session(session_id)

    # -- lifecycle ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Cancel jobs (waiting for them), flush the audit log, close every connection; idempotent."""
        with self._jobs_lock:
            jobs = self._jobs
        if jobs is not None:
            jobs.close()
        self.cursors.stop()  # its timer thread, and the cursors that expired
        if self.bridge is not None:
            self.bridge.close()
        self.audit.close()
        self.registry.close_all()

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
