"""What a refused write may say through a handle whose rights are restricted (docs/security.md).

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

from dbhandles.errors import ConstraintViolation
from dbhandles.handle_entry import HandleEntry

__all__ = ["redacted", "restricted"]

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
    named = f" {name!r}" if isinstance(name, str) else ""
    about = f" ({error.field})" if error.field else ""
    return ConstraintViolation(
        f"a {label + ' ' if label else ''}constraint{named} refused the write{about}; nothing "
        "was written",
        field=error.field,
        details=kept or None,
    )
