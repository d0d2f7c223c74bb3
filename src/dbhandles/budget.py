"""The time budget of a query: a deadline for the command that runs it, which every adapter enforces.

``Service.execute`` runs each command's handler inside ``query_budget(settings.query_timeout_ms)``
(imports and exports excepted: they are long jobs). The deadline lives in a context variable, so it
follows the command down to the adapter without being passed around, and a worker thread that
runs another command has its own. Adapters enforce it on every statement that evaluates a filter
(``find``, ``count``): SQLite with a progress handler, PostgreSQL with ``statement_timeout``, the
memory and json adapters by checking the clock while they scan. Past it the query ends with
``QueryTimeout`` (``query_timeout``) and the connection is left as it was, ready for the next command.
"""

from __future__ import annotations

import time
from contextvars import ContextVar, Token
from types import TracebackType

from dbhandles.errors import QueryTimeout

__all__ = ["check", "deadline", "exceeded", "query_budget", "remaining_ms"]

#: ``(deadline on the time.monotonic() clock, the budget in ms)`` of the running command, if any.
_current: ContextVar[tuple[float, int] | None] = ContextVar("dbhandles_query_budget", default=None)


class query_budget:
    """A ``with`` block run with a deadline ``ms`` milliseconds from its start (``0`` or less: no
    budget). A budget inside another keeps whichever deadline comes first.

    A class rather than a ``@contextmanager`` generator: every command enters one, ``data/read``
    included, and this costs a third as much.
    """

    __slots__ = ("_token", "ms")

    def __init__(self, ms: int) -> None:
        self.ms = ms
        self._token: Token[tuple[float, int] | None] | None = None

    def __enter__(self) -> None:
        if self.ms <= 0:
            return
        end = time.monotonic() + self.ms / 1000
        outer = _current.get()
        if outer is None or end < outer[0]:
            self._token = _current.set((end, self.ms))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None


def deadline() -> float | None:
    """The running command's deadline (``time.monotonic()`` clock), ``None`` when it has none."""
    current = _current.get()
    return None if current is None else current[0]


def remaining_ms() -> int | None:
    """Whole milliseconds left (at least 1), ``None`` without a budget.

    Raises:
        QueryTimeout: the deadline has passed.
    """
    end = deadline()
    if end is None:
        return None
    left = end - time.monotonic()
    if left <= 0:
        raise exceeded()
    return max(1, int(left * 1000))


def check() -> None:
    """Raise ``QueryTimeout`` when the running command is past its deadline."""
    end = deadline()
    if end is not None and time.monotonic() > end:
        raise exceeded()


def exceeded() -> QueryTimeout:
    """The error for a query stopped at the deadline (naming the budget and how to change it)."""
    current = _current.get()
    budget = f"its time budget of {current[1]} ms" if current else "its time budget"
    return QueryTimeout(
        f"the query ran past {budget} and was stopped; narrow the filter (an indexed field, a "
        "smaller collection), or raise DBHANDLES_QUERY_TIMEOUT_MS"
    )
