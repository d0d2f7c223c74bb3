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

from typing import Any

from dbhandles.context import Context
from dbhandles.errors import ConstraintViolation
from dbhandles.handle_entry import HandleEntry
from dbhandles.security.paths import HOME_SHOWN, shown
from dbhandles.settings import Settings
from dbhandles.values import json_text

__all__ = [
    "AUDIENCE_KEY",
    "HOME_SHOWN",
    "audience",
    "redacted",
    "restricted",
    "shown_path",
]

#: The payload key of a job's event (import, export, copy) that names the actor who ran it: the
#: server delivers such an event only to that actor and to administrators (``server/ws_guard.py``).
AUDIENCE_KEY = "actor"


def shown_path(settings: Settings, context: Context, path: str | None) -> str | None:
    """``path`` as a result or event shows it to ``context`` (``paths.shown``): the local user
    and administrators see it as is; a remote non-admin actor sees a file of the home as
    ``<home>/<name>``, one of its own space by its name there, another of the data root as
    ``<data>/...`` (the default data root lies next to the home)."""
    return shown(settings, context, path)


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
