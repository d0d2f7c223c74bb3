"""What results, events and refused writes may say to whom (docs/security.md).

Paths: a remote non-admin actor is never shown where the service's home is (``shown_path``), and a
job's events go only to its own actor and administrators (``audience``).

Refused writes:

A constraint is checked by the database against every row of a table, and every table, whatever a
handle may see: a UNIQUE constraint compares with rows a row filter hides, a FOREIGN KEY looks into
a table the handle is denied, and the database's message (PostgreSQL's DETAIL: ``Key (name)=(Lem)
already exists``) can quote them. Through a handle with a row filter or a list of allowed or
denied collections, a ``constraint_violation`` therefore names only the constraint's kind, the
field of the record written and (for a constraint of that table) the constraint's name: never
values, other tables or the database's own text. That a constraint refused the write stays an
oracle of what exists (docs/security.md, "Row-level security").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from dbhandles.context import Context
from dbhandles.errors import ConstraintViolation, DbHandlesError
from dbhandles.handle_entry import HandleEntry
from dbhandles.security.paths import shown
from dbhandles.settings import Settings
from dbhandles.values import json_text

__all__ = [
    "AUDIENCE_KEY",
    "HOME_SHOWN",
    "audience",
    "mask_home",
    "redacted",
    "restricted",
    "shown_path",
]

#: How a result or event names a file of the service's home (the default database) to a remote
#: non-admin actor: where the home is, is not the actor's to know (docs/security.md).
HOME_SHOWN = "<home>"
#: The payload key of a job's event (import, export, copy) that names the actor who ran it: the
#: server delivers such an event only to that actor and to administrators (``server/ws_guard.py``).
AUDIENCE_KEY = "actor"


def shown_path(settings: Settings, context: Context, path: str | None) -> str | None:
    """``path`` as a result or event shows it to ``context`` (``paths.shown``): the local user
    and administrators see it as is; a remote non-admin actor sees a file of the home as
    ``<home>/<name>``, one of its own space by its name there, another of the data root as
    ``<data>/...`` (the default data root lies next to the home)."""
    return shown(settings, context, path)


def mask_home(
    settings: Settings, context: Context, exc: DbHandlesError, given: object = None
) -> None:
    """Show a remote non-admin actor no home in ``exc``'s words: each spelling of the home's
    path (as configured, and real) becomes ``<home>``, as ``shown_path`` shows it in results. A
    backstop for every error a command raises (a driver's words about the default database's
    file, a check naming the file it refused), changed in place, its code and field kept.

    A spelling a string of the caller's own params holds (``given``, at any depth: ``_names``) is
    left as it is: the caller named it, and masking only its answers would tell it that it had
    named the home.
    """
    if context.trusted_local or context.is_admin:
        return
    message = exc.message
    for home in sorted({os.path.abspath(settings.home), os.path.realpath(settings.home)}, key=len,
                       reverse=True):  # fmt: skip
        if home != os.sep and home in message and not _names(given, home):
            message = message.replace(home + os.sep, HOME_SHOWN + "/")
            if message.endswith(home):
                message = message[: -len(home)] + HOME_SHOWN
    if message != exc.message:
        exc.message = message
        exc.args = (message,)


def _names(given: object, text: str) -> bool:
    """Whether a string of ``given`` (params as sent: keys and values, at any depth) holds
    ``text``. A walk with its own stack, not ``str(given)``: params nested past Python's recursion
    limit (a body may nest 1024 levels, a Python caller any number) must get their error envelope,
    never a ``RecursionError`` (docs/security.md, "Audit log")."""
    stack = [given]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if text in value:
                return True
        elif isinstance(value, Mapping):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
        elif isinstance(value, BaseModel):  # a Python caller's params model
            stack.extend(value.__dict__.values())
    return False


def audience(context: Context) -> dict[str, Any]:
    """What a job's event adds to its payload so that only ``context``'s actor (and
    administrators) receive it: a job's events name its files and handles."""
    return {AUDIENCE_KEY: context.actor}


_LABELS = {"not_null": "NOT NULL", "unique": "UNIQUE", "check": "CHECK",
           "foreign_key": "FOREIGN KEY", "exclusion": "EXCLUDE", "partition": "partition"}  # fmt: skip


def restricted(entry: HandleEntry | None) -> bool:
    """Whether ``entry`` sees only part of its database: a row filter, or collection lists."""
    if entry is None:
        return False
    permissions = entry.permissions
    return entry.row_filter is not None or (
        permissions is not None
        and (permissions.allowed_collections is not None or bool(permissions.denied_collections))
    )


def redacted(error: ConstraintViolation) -> ConstraintViolation:
    """``error`` saying only the constraint's kind, its name (unless it is a foreign key, whose
    name may be another table's) and the field (see the module)."""
    details = error.details or {}
    kind = details.get("constraint")
    label = _LABELS.get(kind) if isinstance(kind, str) else None
    name = details.get("name") if kind != "foreign_key" else None
    kept: dict[str, object] = {"constraint": kind} if kind is not None else {}
    if isinstance(name, str):
        kept["name"] = name
    named = f" {json_text(name, 80)}" if isinstance(name, str) else ""
    about = f" ({error.field})" if error.field else ""
    return ConstraintViolation(
        f"a {label + ' ' if label else ''}constraint{named} refused the write{about}; nothing "
        "was written",
        field=error.field,
        details=kept or None,
    )
