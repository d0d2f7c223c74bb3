"""A foreign table's page counts its rows' text and blobs against ``MAX_PAGE_BYTES`` exactly as
``sqlite_pages.fetch_page`` counts a foreign row (``sqlite_foreign._page_rows``, its own loop for
speed): the same rows pass, and a page is refused at the same row."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbhandles.adapters import sqlite_pages
from dbhandles.adapters.sqlite_foreign import _page_rows
from dbhandles.errors import QueryFailed

VALUES = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=12),  # U+0000 and non-ASCII characters included
    st.binary(max_size=12),
)


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(":memory:")
    yield connection
    connection.close()


def _outcome(read: object) -> object:
    try:
        return ("rows", read())  # type: ignore[operator]
    except QueryFailed as exc:
        return ("refused", exc.message)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(VALUES, VALUES, VALUES), max_size=8),
       bound=st.integers(min_value=0, max_value=60))  # fmt: skip
def test_the_bound_counts_as_fetch_page_counts(rows: list[tuple[object, ...]], bound: int) -> None:
    connection = sqlite3.connect(":memory:")
    try:
        connection.execute("CREATE TABLE t (a, b, c)")
        connection.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
        select = "SELECT rowid, a, b, c FROM t ORDER BY rowid"
        saved = sqlite_pages.MAX_PAGE_BYTES
        sqlite_pages.MAX_PAGE_BYTES = bound  # read by both at each call
        try:
            ours = _outcome(lambda: _page_rows(connection.execute(select), "t"))
            theirs = _outcome(lambda: sqlite_pages.fetch_page(connection.execute(select), "t"))
        finally:
            sqlite_pages.MAX_PAGE_BYTES = saved
        assert ours == theirs
    finally:
        connection.close()


def test_a_refused_page_releases_its_statement(
    conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn.execute("CREATE TABLE t (a)")
    conn.executemany("INSERT INTO t VALUES (?)", [("x" * 10,)] * 5)
    monkeypatch.setattr(sqlite_pages, "MAX_PAGE_BYTES", 25)
    cursor = conn.execute("SELECT rowid, a FROM t")
    with pytest.raises(QueryFailed, match="passed at its record 3"):
        _page_rows(cursor, "t")
    with pytest.raises(sqlite3.ProgrammingError, match="closed cursor"):
        cursor.fetchall()  # closed: its statement reset, its read of the table ended
