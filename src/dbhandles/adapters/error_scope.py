"""What an adapter's error may quote, and what it was doing, for the command being run.

``Service.execute`` runs each command's handler inside ``scoped(...)``; the adapters' error
translation (``postgres_errors.translate_error``) reads it without it being passed down, as
``dbhandles.budget`` does for the time budget. A handle that sees only part of its database
(``security.redaction.restricted``: a row filter, collection lists) gets no value text of the
database's in its errors: a message such as ``invalid input syntax for type integer: "..."``
raised by a row-level security policy or a view may quote a row or a table the handle may not
read (docs/security.md "Cascades on restricted handles").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["ErrorScope", "current", "scoped"]


@dataclass(frozen=True)
class ErrorScope:
    """``restricted``: the handle sees only part of its database (quote no value text);
    ``reading``: the command only reads (a failing constraint refused no write)."""

    restricted: bool = False
    reading: bool = False


_OUTSIDE = ErrorScope()
_SCOPE: ContextVar[ErrorScope | None] = ContextVar("dbhandles_error_scope", default=None)


def current() -> ErrorScope:
    """The scope of the command being run (outside any command: unrestricted, not reading)."""
    return _SCOPE.get() or _OUTSIDE


@contextmanager
def scoped(*, restricted: bool, reading: bool) -> Iterator[None]:
    """Run a block with this error scope (``ErrorScope``), restoring the one before after it."""
    token = _SCOPE.set(ErrorScope(restricted, reading))
    try:
        yield
    finally:
        _SCOPE.reset(token)
