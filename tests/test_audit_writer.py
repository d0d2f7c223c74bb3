"""The audit writer (``security/audit.py``): rows go to the store as plain value tuples, exactly
what ``AuditRow.storable`` would have stored, in the order they were queued, and none is lost when
the store refuses a write."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbhandles.security.audit import AuditLog
from dbhandles.store import AuditRow, SqliteHandleStore
from dbhandles.store.schema import AUDIT, values
from dbhandles.store.sql import SqlHandleStore

_TEXT = st.text(
    alphabet=st.characters(codec=None, exclude_categories=()), max_size=12
) | st.sampled_from(["plain", "a\nb", "s\x00", "x\ud800", "café", "\x85", ""])
_MAYBE = st.none() | _TEXT


def _item(**changes: Any) -> tuple[Any, ...]:
    fields: dict[str, Any] = {
        "at": 1_796_000_000.123, "actor": "alice", "session_id": "alice/s1", "handle": "h1",
        "command": "data/read", "operation": "read", "collection": "c", "record_id": "r1",
        "code": None, "target": None,
    }  # fmt: skip
    fields.update(changes)
    return tuple(fields.values())


@given(
    actor=_TEXT, session_id=_MAYBE, handle=_MAYBE, collection=_MAYBE, record_id=_MAYBE,
    code=st.none() | st.sampled_from(["not_found", "bad\x00code"]), target=_MAYBE,
)  # fmt: skip
def test_audit_values_are_what_storable_stores(
    actor: str,
    session_id: str | None,
    handle: str | None,
    collection: str | None,
    record_id: str | None,
    code: str | None,
    target: str | None,
) -> None:
    item = _item(actor=actor, session_id=session_id, handle=handle, collection=collection,
                 record_id=record_id, code=code, target=target)  # fmt: skip
    row = AuditLog._row(item).storable()
    assert AuditLog._values(item) == dataclasses.astuple(row)
    assert AuditLog._values(AuditLog._row(item)) == dataclasses.astuple(row)
    # The store writes these values as they are: they must be what ``values`` makes of the row.
    assert values(AUDIT, row) == dataclasses.astuple(row)


def test_audit_values_escape_what_the_store_cannot_hold() -> None:
    item = _item(session_id="alice/s\x00", collection="c\ud800", target="/a\n/b\x01")
    stored = dict(zip([f.name for f in dataclasses.fields(AuditRow)], AuditLog._values(item),
                      strict=True))  # fmt: skip
    assert stored["session_id"] == "alice/s\\x00"
    assert stored["collection"] == "c\\ud800"
    assert stored["target"] == "/a\n/b\\x01"  # newlines separate targets: kept
    assert stored["success"] is True


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteHandleStore]:
    made = SqliteHandleStore(tmp_path / "default.sqlite")
    yield made
    made.close()


def test_audit_rows_are_written_in_queue_order(store: SqliteHandleStore) -> None:
    log = AuditLog(store)
    for i in range(5):
        log.record_call(1_796_000_000.0, "alice", None, "h1", "data/read", "read", "c", f"r{i}",
                        None if i % 2 else "not_found", "/x\n/y" if i == 3 else None)  # fmt: skip
    log.record(AuditRow("2026-11-30T00:00:00.000Z", "bob", None, None, "data/list", "read", "c\x00",
                        None, True, None))  # fmt: skip
    log.close()
    rows = sorted(store.query_audit(limit=100), key=lambda r: (r.actor, r.record_id or ""))
    assert [r.record_id for r in rows if r.actor == "alice"] == [f"r{i}" for i in range(5)]
    assert [r.success for r in rows if r.actor == "alice"] == [False, True, False, True, False]
    assert [r.target for r in rows if r.actor == "alice"][3] == "/x\n/y"
    assert [r.collection for r in rows if r.actor == "bob"] == ["c\\x00"]


class _Failing(SqliteHandleStore):
    """A store that refuses every write while ``down``, and one given record id always."""

    down = True
    refused = "poison"

    def append_audit_values(self, rows: list[tuple[Any, ...]]) -> None:
        if self.down or any(self.refused in row for row in rows):
            raise RuntimeError("the store refuses")
        super().append_audit_values(rows)


def test_audit_rows_wait_for_a_store_that_is_down(tmp_path: Path) -> None:
    store = _Failing(tmp_path / "default.sqlite")
    try:
        log = AuditLog(store)
        log.record_call(1.0, "alice", None, "h1", "data/read", "read", "c", "r1", None)
        log.flush()  # refused whole: kept for the next flush
        log.record_call(2.0, "alice", None, "h1", "data/read", "read", "c", "r2", None)
        store.down = False
        log.flush()
        assert sorted(r.record_id or "" for r in store.query_audit(limit=10)) == ["r1", "r2"]
        log.record_call(3.0, "alice", None, "h1", "data/read", "read", "c", "poison", None)
        log.record_call(4.0, "alice", None, "h1", "data/read", "read", "c", "r4", None)
        log.flush()  # one row refused on its own: dropped (and logged), the other written
        assert sorted(r.record_id or "" for r in store.query_audit(limit=10)) == ["r1", "r2", "r4"]
        log.close()
    finally:
        store.close()


class _Name(str):
    """A ``str`` subclass: not a plain text, so its row takes ``AuditRow.storable``'s path."""


@pytest.mark.parametrize(
    "changes",
    [
        {"record_id": 7},
        {"record_id": 0},
        {"collection": _Name("c")},
        {"actor": _Name("alice")},
        {"session_id": b"s1"},
        {"target": ""},
        {"handle": "", "collection": "", "record_id": ""},
    ],
)
def test_audit_values_of_other_types_are_what_storable_stores(changes: dict[str, Any]) -> None:
    # The fast path takes only plain ``str`` (or ``None``) texts; any other value, a falsy one
    # included, is stored as ``AuditRow.storable`` stores it.
    item = _item(**changes)
    assert AuditLog._values(item) == dataclasses.astuple(AuditLog._row(item).storable())


class _Held(SqliteHandleStore):
    """A store whose first audit write waits until the test lets it go."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.entered, self.release = threading.Event(), threading.Event()
        self.first = True

    def append_audit_values(self, rows: list[tuple[Any, ...]]) -> None:
        if self.first:
            self.first = False
            self.entered.set()
            self.release.wait()
        super().append_audit_values(rows)


def test_a_flush_returns_after_the_flush_already_writing(tmp_path: Path) -> None:
    # data/audit flushes, then reads: a flush must not return while another (the writer
    # thread's) still holds rows queued before it, and batches go in queue order.
    store = _Held(tmp_path / "default.sqlite")
    try:
        log = AuditLog(store)
        log.record_call(1.0, "alice", None, "h1", "data/read", "read", "c", "r1", None)
        writer = threading.Thread(target=log.flush)
        writer.start()
        assert store.entered.wait(60)
        log.record_call(1.0, "alice", None, "h1", "data/read", "read", "c", "r2", None)
        second = threading.Thread(target=log.flush)
        second.start()
        second.join(0.5)
        assert second.is_alive()  # waits for the first flush: r1 is not in the store yet
        store.release.set()
        writer.join()
        second.join()
        rows = store.query_audit(limit=10)  # the same time: the last written first
        assert [r.record_id for r in rows] == ["r2", "r1"]
        log.close()
    finally:
        store.release.set()  # a failed assertion must not leave the first flush waiting
        store.close()


#: Texts as ``AuditRow.storable`` leaves them (what the store is given): no surrogate, no NUL.
_STORED = st.none() | st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8)
_ROW_VALUES = st.tuples(
    st.sampled_from(["2026-11-30T00:00:00.000Z", "2026-11-30T00:00:01.000Z"]),
    st.sampled_from(["alice", "bob"]), st.none() | st.just("alice/s1"), _STORED,
    st.sampled_from(["data/read", "data/list"]), st.sampled_from(["read", "write,delete"]),
    _STORED, _STORED, st.booleans(), st.none() | st.just("not_found"), _STORED,
)  # fmt: skip


@given(rows=st.lists(_ROW_VALUES, max_size=12))
def test_audit_rows_binding_no_none_nor_bool_store_what_the_generic_insert_stores(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[Any, ...]]
) -> None:
    """``SqliteHandleStore.append_audit_values`` writes runs of rows alike in where their ``None``
    values are and in ``success`` by statements with ``NULL``, ``1`` and ``0`` in place (no value
    that ``sqlite3`` adapts): the table then holds what the generic insert of every value gives,
    row for row, in the same order, with the same storage classes."""
    folder = tmp_path_factory.mktemp("audit")
    fast, generic = (SqliteHandleStore(folder / f"{n}.sqlite") for n in ("fast", "generic"))
    try:
        half = len(rows) // 2  # two flushes: a run may start anew in the second
        for part in (rows[:half], rows[half:]):
            fast.append_audit_values(part)
            SqlHandleStore.append_audit_values(generic, part)
        read = (
            "SELECT rowid, at, actor, session_id, handle, command, operation, collection, "
            "record_id, success, typeof(success), code, target FROM _dbh_audit ORDER BY rowid"
        )
        assert fast._read(read) == generic._read(read)
        stored = [dataclasses.astuple(row) for row in fast.query_audit(limit=100)]
        assert sorted(stored, key=repr) == sorted(
            ((*row[:8], bool(row[8]), *row[9:]) for row in rows), key=repr
        )
    finally:
        fast.close()
        generic.close()
