"""Time budgets: a query's deadline, which every adapter enforces, and a job's share of the CPU.

``Service.execute`` runs each command's handler inside ``query_budget(settings.query_timeout_ms)``
(imports and exports excepted: they are long jobs). The deadline lives in a context variable, so it
follows the command down to the adapter without being passed around, and a worker thread that
runs another command has its own. Adapters enforce it on every statement that evaluates a filter
(``find``, ``count``): SQLite with a progress handler, PostgreSQL with ``statement_timeout``, the
memory and json adapters by checking the clock while they scan. Past it the query ends with
``QueryTimeout`` (``query_timeout``) and the connection is left as it was, ready for the next command.

A command can also be told to stop before its deadline, or when it has none (a job): ``stopping``
adds a *stop check* for what runs inside it (``jobs.run_job``: the job was cancelled;
``Service.execute``: the service is shutting down), and ``stop_error`` asks them all. Every SQLite
connection of an adapter carries ``interrupt_requested`` as its progress handler, so any statement
it runs (a page, a count, an export's or a copy's read, an import's insert, a vacuum, a schema
read) is interrupted within ``PROGRESS_STEPS`` virtual-machine steps of the stop, and ends with the
stop's error (``interruption``) rather than running on: a view that never ends cannot hold a job
thread or a worker past a cancel or a shutdown.

A job that runs in the server process (``jobs.JobRunner``) holds Python's GIL while it works, and each
thread that answers a request has to win the GIL back many times per request, each time waiting up to
Python's switch interval (5 ms) while the job holds it. A ``Pacer`` makes the job pause after each batch
for as long as its work took the CPU, times ``(1 - duty) / duty``, so the requests find the GIL free for
at least ``1 - duty`` of the time; and while it is entered (``with pacer:``) the switch interval is
``SWITCH_INTERVAL``, so a request waits at most that long for each turn (measured: a reader's p99 while
a memory database imports, 38 ms at 5 ms, 6 ms at 0.5 ms).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from types import TracebackType

from dbhandles.errors import DbHandlesError, QueryTimeout

__all__ = [
    "MAX_PAUSE",
    "PROGRESS_STEPS",
    "SWITCH_INTERVAL",
    "BudgetToken",
    "Pacer",
    "StopCheck",
    "begin",
    "begin_stop",
    "check",
    "deadline",
    "end",
    "end_stop",
    "exceeded",
    "expired",
    "interrupt_requested",
    "interruption",
    "query_budget",
    "remaining_ms",
    "spend",
    "stop_checks",
    "stop_error",
    "stopping",
]

#: SQLite virtual-machine steps between two calls of a connection's progress handler (a deadline
#: or a stop is seen within that many steps: well under a millisecond of SQLite's work).
PROGRESS_STEPS = 10_000

#: The longest pause of a ``Pacer`` in seconds: a batch that took longer is paced for this long only,
#: so a cancellation (read at the next batch) never waits more than this.
MAX_PAUSE = 1.0
#: Python's thread switch interval (``sys.setswitchinterval``, seconds) while a paced job runs.
SWITCH_INTERVAL = 0.0005

#: Paced jobs running in this process, and the switch interval to restore when the last one ends.
_pacing_lock = threading.Lock()
_pacing = 0
_switch_interval = 0.005

#: ``(deadline on the time.monotonic() clock, the budget in ms, why it was spent early or None)``
#: of the running command, if any.
_current: ContextVar[tuple[float, int, str | None] | None] = ContextVar(
    "dbhandles_query_budget", default=None
)
#: What ``begin`` gives to end a budget with (``end``).
BudgetToken = Token[tuple[float, int, str | None] | None]

#: A stop check: the error the running command must stop with now, or ``None`` to go on. Called
#: from SQLite's progress handler, so it must be cheap and must not raise.
StopCheck = Callable[[], DbHandlesError | None]
#: The stop checks of the running command, outermost first.
_stops: ContextVar[tuple[StopCheck, ...]] = ContextVar("dbhandles_stop_checks", default=())


class stopping:
    """A ``with`` block whose statements stop once ``check`` returns an error (see the module
    docstring); nested blocks add their checks to the outer ones'."""

    __slots__ = ("_token", "check")

    def __init__(self, check: StopCheck) -> None:
        self.check = check
        self._token: Token[tuple[StopCheck, ...]] | None = None

    def __enter__(self) -> None:
        self._token = _stops.set((*_stops.get(), self.check))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _stops.reset(self._token)
            self._token = None


def begin_stop(check: StopCheck) -> Token[tuple[StopCheck, ...]]:
    """Add ``check`` for what runs next in this context, as ``with stopping(check):`` does (the
    dispatcher's form); give the token to ``end_stop``."""
    return _stops.set((*_stops.get(), check))


def end_stop(token: Token[tuple[StopCheck, ...]]) -> None:
    """Remove the check ``begin_stop`` added."""
    _stops.reset(token)


def stop_checks() -> tuple[StopCheck, ...]:
    """The stop checks of the running command (for a thread that watches it from outside)."""
    return _stops.get()


def stop_error() -> DbHandlesError | None:
    """The error of the first stop check of the running command that says stop, else ``None``."""
    for stop in _stops.get():
        error = stop()
        if error is not None:
            return error
    return None


def interrupt_requested() -> bool:
    """Whether the running command was told to stop: the progress handler of every SQLite
    connection of an adapter (``PROGRESS_STEPS``); true makes SQLite end the statement with
    ``SQLITE_INTERRUPT``, which the adapter reports as ``interruption()``."""
    return bool(_stops.get()) and stop_error() is not None


def interruption() -> DbHandlesError:
    """The error for a statement interrupted by its connection's progress handler: the stop's
    (a cancelled job's ``job_cancelled``, a shutdown's), else the time budget's ``QueryTimeout``."""
    return stop_error() or exceeded()


class query_budget:
    """A ``with`` block run with a deadline ``ms`` milliseconds from its start (``0`` or less: no
    budget). A budget inside another keeps whichever deadline comes first.

    A class rather than a ``@contextmanager`` generator: every command enters one, ``data/read``
    included, and this costs a third as much.
    """

    __slots__ = ("_token", "ms")

    def __init__(self, ms: int) -> None:
        self.ms = ms
        self._token: BudgetToken | None = None

    def __enter__(self) -> None:
        self._token = begin(self.ms)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        end(self._token)
        self._token = None


def begin(ms: int) -> BudgetToken | None:
    """Start a budget of ``ms`` milliseconds (``0`` or less: none) for what runs next in this
    context, as ``with query_budget(ms):`` does, without the object: the dispatcher's form. Pass
    the token to ``end`` when it is over (``None``: nothing was started, an outer budget ends
    first or there is none)."""
    if ms <= 0:
        return None
    until = time.monotonic() + ms / 1000
    outer = _current.get()
    if outer is None or until < outer[0]:
        return _current.set((until, ms, None))
    return None


def end(token: BudgetToken | None) -> None:
    """End the budget ``begin`` started (nothing for ``None``)."""
    if token is not None:
        _current.reset(token)


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


def spend(reason: str | None = None) -> None:
    """Mark the running command's budget as spent, so every later ``check`` (and ``deadline``) says
    so, and ``exceeded`` gives ``reason`` (why it was stopped before its deadline) when there is
    one: ``regex.search`` does this before it stops a match that cannot finish in time, because
    SQLite turns the error its ``regexp`` function raises into a bare ``OperationalError``, which
    ``sqlite_errors`` then reports as ``QueryTimeout``. The ``query_budget`` block's exit undoes it.
    """
    current = _current.get()
    if current is not None:
        _current.set((min(current[0], time.monotonic()), current[1], reason or current[2]))


def expired() -> bool:
    """Whether the running command has a budget and is past its deadline."""
    end = deadline()
    return end is not None and time.monotonic() > end


def exceeded() -> QueryTimeout:
    """The error for a query stopped at the deadline (naming the budget and how to change it), or
    before it for the reason given to ``spend``."""
    current = _current.get()
    budget = f"its time budget of {current[1]} ms" if current else "its time budget"
    if current is not None and current[2] is not None:
        return QueryTimeout(
            f"the query was stopped before its deadline: {current[2]}, more than was left of "
            f"{budget}; narrow the filter (a shorter field, a simpler pattern), or raise "
            "DBHANDLES_QUERY_TIMEOUT_MS"
        )
    return QueryTimeout(
        f"the query ran past {budget} and was stopped; narrow the filter (an indexed field, a "
        "smaller collection), or raise DBHANDLES_QUERY_TIMEOUT_MS"
    )


class Pacer:
    """Keeps the thread that calls ``pause`` to ``duty`` of the CPU (``0 < duty <= 1``).

    Measured with the thread's own CPU clock (``time.thread_time``): the time it waited for the GIL
    or for a disk is not work, and is not paid for with a pause.
    """

    __slots__ = ("_entered", "_since", "duty", "paused")

    def __init__(self, duty: float) -> None:
        self.duty = duty
        #: Seconds slept in all.
        self.paused = 0.0
        self._since = time.thread_time()
        self._entered = False

    def __enter__(self) -> Pacer:
        """Lower the process's switch interval to ``SWITCH_INTERVAL`` until the last paced job
        exits (not with ``duty`` 1)."""
        global _pacing, _switch_interval
        if self.duty < 1:
            with _pacing_lock:
                if _pacing == 0:
                    _switch_interval = sys.getswitchinterval()
                    sys.setswitchinterval(min(_switch_interval, SWITCH_INTERVAL))
                _pacing += 1
            self._entered = True
        self._since = time.thread_time()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        global _pacing
        if self._entered:
            self._entered = False
            with _pacing_lock:
                _pacing -= 1
                if _pacing == 0:
                    sys.setswitchinterval(_switch_interval)

    def pause(self) -> float:
        """Sleep ``(1 - duty) / duty`` times the CPU time this thread used since the last pause
        (at most ``MAX_PAUSE``); return the seconds slept. With ``duty`` 1, at once."""
        now = time.thread_time()
        worked, self._since = now - self._since, now
        if self.duty >= 1 or worked <= 0:
            return 0.0
        rest = min(worked * (1 - self.duty) / self.duty, MAX_PAUSE)
        time.sleep(rest)
        self.paused += rest
        self._since = time.thread_time()
        return rest
