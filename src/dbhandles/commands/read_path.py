"""The direct path of a point read: ``data/read`` without the dispatcher's generic steps.

``Service.execute`` hands a ``data/read`` whose params are a dict of plain strings here. Every check
of the generic path runs, in the same order and by the same code: the session id, the params'
validators (``fast_params.parse_simple``), the target (``handle_target``: the handle or alias as
the actor sees it, closed and re-pointed handles included), ``authorize`` (grants, isolation, the
handle's permissions and row filter, the default database's policy), the time budget, the files
the call resolves, the adapter's read (its kept statement is checked against the schema version
read with the row), the row filter, and one audit row. What it leaves out is only glue: the
``Call`` and result models, the generic audit row builder's questions (a read names one database,
its own operation and its id), and the envelope's per-model plan, looked up once here.

Nothing about access is kept between calls: the target is resolved and ``authorize`` asked on every
read, so a grant revoked, an alias re-pointed, a handle closed or a collection dropped in this
process or another is seen by the next read exactly as on the generic path.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from dbhandles.adapters import reach_guard
from dbhandles.adapters.error_scope import scoped as error_scope
from dbhandles.budget import begin as begin_budget
from dbhandles.budget import begin_stop, end_stop
from dbhandles.budget import end as end_budget
from dbhandles.clock import iso_now
from dbhandles.commands.audit_rows import audit_collection, record_failure
from dbhandles.commands.base import EVERY_COLLECTION, Command, client_session, handle_target
from dbhandles.commands.fast_params import parse_simple
from dbhandles.commands.records import ReadParams, data_read
from dbhandles.documents import seen
from dbhandles.security import paths
from dbhandles.security.audit import begin_notes, end_notes
from dbhandles.security.policy import authorize
from dbhandles.security.redaction import restricted

if TYPE_CHECKING:
    from dbhandles.context import Context
    from dbhandles.registry import HandleEntry
    from dbhandles.service import Service

__all__ = ["point_read", "takes"]


def takes(command: Command) -> bool:
    """Whether ``command`` is the ``data/read`` this path was written for (its handler, params,
    operation, target rule and audit names): another command put under the name (tests do) takes
    the generic path. ``Service`` decides it once per command (its plan)."""
    return (
        command.handler is data_read
        and command.params is ReadParams
        and command.operation == "read"
        and command.target is handle_target
        and not command.admin_only
        and command.audit_names is None
    )


def point_read(
    service: Service, command: Command, params: dict[str, Any], context: Context, budget_ms: int
) -> dict[str, Any] | None:
    """The success envelope of ``command`` (one this path ``takes``) with these params, or ``None``
    when the call is not one this path takes (params that are not all plain strings a validator
    accepts, a ``sessionId`` in them): the caller then runs the generic path, and nothing was
    done yet.

    Args:
        context: the caller's context, whose session id ``Service.execute`` has already checked.
        budget_ms: the command's time budget in milliseconds (``Service``'s plan).

    Raises:
        DbHandlesError: the read's failure, audited and masked as the generic path does.
    """
    parsed = parse_simple(ReadParams, params)
    if parsed is None or parsed.session_id is not None or "\x00" in parsed.id:
        return None  # an id holding U+0000 is judged by the handler (``documents.check_held_id``)
    entry: HandleEntry | None = None
    files = paths.begin_call()
    notes = begin_notes()
    target: str | None = None
    noted: str | None = None
    try:
        try:
            # ``handle_target``, written out (``Command.target`` is it: ``takes``).
            entry = service.registry.resolve_for(parsed.db_handle, context.actor, context.is_admin)
            reach_guard.clear()  # what authorize finds, checked again by the adapter (as Service)
            authorize(command, parsed, context, entry, service.access)
            # ``parse_simple`` ran the validators of both (``validate_collection``,
            # ``check_record_id``): the handler's second check is for models built without them.
            collection, record_id = parsed.collection, parsed.id
            budget = begin_budget(budget_ms)
            stop = begin_stop(service._stop_error)  # a shutdown's, as on the generic path
            try:
                # ``Lease(registry, entry)``, written out: the same acquire and release, without
                # the lease object and its two method calls.
                registry = service.registry
                conn = registry._acquire(entry)
                try:
                    adapter = conn.adapter
                    # What the adapter's errors may quote, and whether its session checks again
                    # what authorize found (a restricted handle's: ``adapters.reach_guard``).
                    with error_scope(restricted=restricted(entry), reading=True):
                        record = seen(adapter.read_one, collection, record_id, entry.row_filter)
                    # What the name reached, as the read's schema cache saw it (``audit_collection``).
                    reached = (
                        None if collection == EVERY_COLLECTION
                        else adapter.known_collection(collection)
                    )  # fmt: skip
                finally:
                    registry._release(entry, conn)
            finally:
                end_stop(stop)
                end_budget(budget)
        finally:
            target = paths.end_call(files)
            noted = end_notes(notes)
    except BaseException as exc:
        record_failure(service, command, params, parsed, context, entry, exc, target, noted)
        raise
    handle = entry.handle
    audit = service.audit
    if audit.enabled:
        # ``record_outcome``'s row for a read, written out: one database, its own operation.
        audit.record_call(
            time.time(), context.actor, context.session_id, handle, command.name,
            command.operation,
            reached or audit_collection(service, entry, collection, fresh=False),
            record_id, None, target,
        )  # fmt: skip
    # ``success_envelope`` of ``ReadResult`` (tests/test_read_path.py compares the two).
    envelope: dict[str, Any] = {"success": True, "timestamp": iso_now()}
    if context.session_id is not None:
        shown = client_session(context.session_id)
        if shown is not None:
            envelope["sessionId"] = shown
    envelope["dbHandle"] = handle
    envelope["collection"] = collection
    envelope["id"] = record_id
    envelope["data"] = record
    envelope["found"] = record is not None
    return envelope
