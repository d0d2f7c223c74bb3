"""Issue #13/#17: a listening process polls the SQLite event log every ``poll_seconds`` while other
processes' rows come, and backs off to ``IDLE_POLL_SECONDS`` while none do (a lone server woke 200
times a second for nothing). The waits asked for are recorded, never timed."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dbhandles.events import EventBus
from dbhandles.events.sqlite_log import IDLE_POLL_SECONDS, SqliteEventLog


class _Waits:
    """Stands for the log's stop event: records each wait asked for, runs ``before[i]`` at the
    i-th, and stops the loop after ``count`` waits."""

    def __init__(self, count: int, before: dict[int, Callable[[], None]]) -> None:
        self.asked: list[float] = []
        self.count, self.before = count, before

    def wait(self, seconds: float) -> bool:
        self.asked.append(seconds)
        action = self.before.get(len(self.asked))
        if action is not None:
            action()
        return len(self.asked) > self.count

    def set(self) -> None:
        self.count = 0


def test_idle_polls_back_off_and_a_row_brings_the_fast_pace_back(tmp_path: Path) -> None:
    bus = EventBus()
    got: list[tuple[str, dict[str, Any]]] = []
    bus.subscribe("*", lambda event: got.append((event.name, event.payload)))
    log = SqliteEventLog(tmp_path, bus, poll_seconds=0.005, origin="me")
    log._read_db = log._open()  # as ``listen`` does, without its thread: the loop runs here

    def another_process_logs() -> None:
        with sqlite3.connect(tmp_path / "events.sqlite") as other:
            other.execute(
                "INSERT INTO events (at, origin, name, payload) VALUES (0, 'other', 'x:y', '{}')"
            )
        other.close()

    waits = _Waits(10, {7: another_process_logs})
    log._stop = waits  # type: ignore[assignment]
    try:
        log.poll()  # the first look (as the thread's first poll): nothing logged yet
        log._read_loop()
    finally:
        log.close()
    fast, idle = 0.005, IDLE_POLL_SECONDS
    assert waits.asked[:7] == [fast, 0.01, 0.02, 0.04, idle, idle, idle]
    # The row logged during the 7th wait is found by the poll after it: the next wait is fast.
    assert waits.asked[7:] == [fast, 0.01, 0.02, 0.04]
    assert got == [("x:y", {})]


def test_a_local_event_reads_the_log_only_after_another_process_wrote(tmp_path: Path) -> None:
    """Before delivering a local event, the log is read for other processes' rows only when its
    ``data_version`` moved (a lone server's writes query nothing); a row another process logged is
    still delivered first."""
    bus = EventBus()
    log = SqliteEventLog(tmp_path, bus, poll_seconds=3600, origin="me").attach()
    got: list[str] = []
    bus.subscribe("*", lambda event: got.append(event.name))  # listens: the thread waits an hour
    try:
        assert log.listening
        bus.publish("local:first", {})  # the first reads the log once (nothing seen yet)
        reads: list[str] = []
        assert log._read_db is not None
        log._read_db.set_trace_callback(reads.append)
        for i in range(5):
            bus.publish(f"local:{i}", {})
        assert not [sql for sql in reads if "FROM events" in sql]
        with sqlite3.connect(tmp_path / "events.sqlite") as other:
            other.execute(
                "INSERT INTO events (at, origin, name, payload) VALUES (0, 'other', 'x:y', '{}')"
            )
        other.close()
        bus.publish("local:5", {})
        bus.publish("local:6", {})
        assert len([sql for sql in reads if "FROM events" in sql]) == 1
        assert got == [
            "local:first",
            *(f"local:{i}" for i in range(5)),
            "x:y",
            "local:5",
            "local:6",
        ]
    finally:
        log.close()
