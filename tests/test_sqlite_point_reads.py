"""Point reads (``SqliteAdapter.read_one``) see every schema change another connection makes.

``read_one`` reads the schema version in the same statement as the row instead of asking
``PRAGMA schema_version`` first (``SqliteSession.get_current``); each test changes the schema
through a plain ``sqlite3`` connection (as another process would) between two reads and checks
that the second read answers from the new schema, never from the catalog cached before.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbhandles.adapters.sqlite import SqliteAdapter
from dbhandles.adapters.sqlite_guard import guard_of
from dbhandles.errors import InvalidParams, StorageBusy
from tests.foreign_rows import another_connection

SHAPE = (
    "(id TEXT PRIMARY KEY, data TEXT NOT NULL, created_at TEXT NOT NULL, "
    "updated_at TEXT NOT NULL, version INTEGER NOT NULL)"
)
STAMP = "2024-01-01T00:00:00.000Z"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "shared.db"


@pytest.fixture
def other(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection to the file: its DDL moves the schema version as another process's."""
    with another_connection(path) as conn:
        yield conn


@pytest.fixture(params=["readwrite", "readonly"])
def reader(
    request: pytest.FixtureRequest, path: Path, other: sqlite3.Connection
) -> Iterator[SqliteAdapter]:
    adapter = SqliteAdapter(
        SqliteAdapter.prepare(
            SqliteAdapter.parse_config({"path": str(path), "mode": request.param})
        )
    )
    yield adapter
    adapter.close()


def _collection(conn: sqlite3.Connection, name: str, record_id: str, data: str) -> None:
    conn.execute(f'CREATE TABLE "{name}" {SHAPE}')
    conn.execute(f'INSERT INTO "{name}" VALUES (?, ?, ?, ?, 1)', (record_id, data, STAMP, STAMP))


def test_a_collection_created_after_a_miss_is_read(
    reader: SqliteAdapter, other: sqlite3.Connection
) -> None:
    assert reader.read_one("notes", "1") is None  # the catalog now knows "no such table"
    _collection(other, "notes", "1", '{"text": "hi"}')
    found = reader.read_one("notes", "1")
    assert found is not None and found["text"] == "hi" and found["id"] == "1"


def test_a_collection_dropped_elsewhere_reads_as_missing(
    reader: SqliteAdapter, other: sqlite3.Connection
) -> None:
    _collection(other, "notes", "1", "{}")
    assert reader.read_one("notes", "1") is not None
    other.execute("DROP TABLE notes")
    assert reader.read_one("notes", "1") is None


def test_a_collection_replaced_by_a_table_of_another_shape_is_read_as_that_table(
    reader: SqliteAdapter, other: sqlite3.Connection
) -> None:
    _collection(other, "notes", "1", '{"text": "hi"}')
    assert reader.read_one("notes", "1") == {
        "id": "1", "text": "hi", "createdAt": STAMP, "updatedAt": STAMP, "version": 1
    }  # fmt: skip
    # The same five columns and one more: the old statement still prepares, and would
    # read it as a collection if the catalog were not checked with the row.
    other.execute("DROP TABLE notes")
    other.execute(
        "CREATE TABLE notes (id TEXT PRIMARY KEY, data TEXT, created_at TEXT, updated_at TEXT, "
        "version INTEGER, extra TEXT)"
    )
    other.execute("INSERT INTO notes VALUES ('1', '{\"text\": \"hi\"}', 'c', 'u', 1, 'x')")
    found = reader.read_one("notes", "1")
    assert found is not None and found["extra"] == "x" and "text" not in found


def test_a_foreign_table_replaced_by_a_collection_is_read_as_a_collection(
    reader: SqliteAdapter, other: sqlite3.Connection
) -> None:
    other.execute("CREATE TABLE people (name TEXT PRIMARY KEY, age INTEGER)")
    other.execute("INSERT INTO people VALUES ('ada', 36)")
    assert reader.read_one("people", "ada") == {"id": "ada", "name": "ada", "age": 36}
    assert reader.read_one("people", "bob") is None
    other.execute("DROP TABLE people")
    _collection(other, "people", "ada", '{"age": 40}')
    found = reader.read_one("people", "ada")
    assert found is not None and found["age"] == 40 and "name" not in found


def test_a_name_that_was_an_index_is_read_once_it_is_a_collection(
    reader: SqliteAdapter, other: sqlite3.Connection
) -> None:
    other.execute("CREATE TABLE people (name TEXT, age INTEGER)")
    other.execute("CREATE INDEX by_age ON people (age)")
    with pytest.raises(InvalidParams, match="not a dbhandles collection"):
        reader.read_one("by_age", "1")
    other.execute("DROP INDEX by_age")
    _collection(other, "by_age", "1", '{"n": 1}')
    found = reader.read_one("by_age", "1")
    assert found is not None and found["n"] == 1


def test_a_read_waiting_on_a_lock_reports_its_own_error(
    path: Path, other: sqlite3.Connection
) -> None:
    """An error that is not a stale schema (a lock held too long) is the read's answer, once."""
    other.execute("PRAGMA journal_mode = DELETE")
    _collection(other, "notes", "1", "{}")
    adapter = SqliteAdapter(
        SqliteAdapter.prepare(
            SqliteAdapter.parse_config({"path": str(path), "mode": "readonly", "busyTimeout": 0})
        )
    )
    try:
        assert adapter.read_one("notes", "1") is not None
        other.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StorageBusy):
                adapter.read_one("notes", "1")
        finally:
            other.execute("ROLLBACK")
        assert adapter.read_one("notes", "1") is not None
    finally:
        adapter.close()


def test_a_collection_read_from_the_kept_statement_then_replaced_is_read_as_the_new_table(
    reader: SqliteAdapter, other: sqlite3.Connection
) -> None:
    """The second read of a collection runs the statement kept for it (``read_one``); a table of
    the same name and columns made since, but not by dbhandles (its columns declared otherwise),
    is read as the foreign table it is, not through that statement."""
    _collection(other, "notes", "1", '{"text": "hi"}')
    for _ in range(2):
        found = reader.read_one("notes", "1")
        assert found is not None and found["text"] == "hi"
    assert reader.read_one("notes", "2") is None  # a miss through the kept statement
    other.execute("DROP TABLE notes")
    other.execute(
        "CREATE TABLE notes (id TEXT PRIMARY KEY, data TEXT, created_at TEXT, updated_at TEXT, "
        "version INTEGER)"
    )
    other.execute("INSERT INTO notes VALUES ('1', '{\"text\": \"hi\"}', 'c', 'u', 1)")
    found = reader.read_one("notes", "1")
    assert found is not None and "text" not in found and found["data"] == {"text": "hi"}
    assert found["created_at"] == "c"


def test_the_kept_statement_of_a_collection_follows_an_unrelated_schema_change(
    reader: SqliteAdapter, other: sqlite3.Connection
) -> None:
    """Another table created elsewhere moves the schema version: reads through the kept
    statement go on answering from the collection, and a row added since is found."""
    _collection(other, "notes", "1", '{"n": 1}')
    assert reader.read_one("notes", "1") is not None
    assert reader.read_one("notes", "1") is not None
    other.execute("CREATE TABLE unrelated (x INTEGER)")
    other.execute("INSERT INTO notes VALUES ('2', '{\"n\": 2}', ?, ?, 1)", (STAMP, STAMP))
    for record_id, n in (("1", 1), ("2", 2), ("2", 2)):
        found = reader.read_one("notes", record_id)
        assert found is not None and found["n"] == n
    assert reader.read_one("notes", "3") is None


def test_a_foreign_table_with_an_integer_key_is_read_from_its_kept_statement_until_altered(
    reader: SqliteAdapter, other: sqlite3.Connection
) -> None:
    """A foreign table keyed by an integer (the rowid's alias) keeps its point statement and
    reader (``ForeignReader.point``): ids that are no integer miss without it, a row added since
    is found, and a column added elsewhere shows in the next read."""
    other.execute("CREATE TABLE people (n INTEGER PRIMARY KEY, name TEXT, tags TEXT)")
    other.execute("INSERT INTO people VALUES (1, 'ada', '[\"x\"]')")
    for _ in range(3):  # the first read keeps the statement; the others run it
        assert reader.read_one("people", "1") == {"id": 1, "n": 1, "name": "ada", "tags": ["x"]}
    for missing in ("2", "ada", "1.5", "", "01x"):
        assert reader.read_one("people", missing) is None
    other.execute("INSERT INTO people VALUES (2, 'bob', NULL)")
    assert reader.read_one("people", "2") == {"id": 2, "n": 2, "name": "bob", "tags": None}
    other.execute("ALTER TABLE people ADD COLUMN age INTEGER DEFAULT 7")
    assert reader.read_one("people", "1") == {
        "id": 1, "n": 1, "name": "ada", "tags": ["x"], "age": 7
    }  # fmt: skip


def test_a_kept_foreign_statement_is_dropped_when_the_key_changes_kind(
    reader: SqliteAdapter, other: sqlite3.Connection
) -> None:
    """The table re-created elsewhere with a text key and a row whose key is NULL: reads go back
    to ``get_current`` (a statement per id, the rowid while a key holds NULL), never through
    the statement kept for the integer key."""
    other.execute("CREATE TABLE people (n INTEGER PRIMARY KEY, name TEXT)")
    other.execute("INSERT INTO people VALUES (1, 'ada')")
    for _ in range(2):
        assert reader.read_one("people", "1") == {"id": 1, "n": 1, "name": "ada"}
    other.execute("DROP TABLE people")
    other.execute("CREATE TABLE people (n TEXT PRIMARY KEY, name TEXT)")
    other.execute("INSERT INTO people VALUES ('x1', 'ada')")
    for _ in range(2):
        assert reader.read_one("people", "x1") == {"id": "x1", "n": "x1", "name": "ada"}
    assert reader.read_one("people", "1") is None
    other.execute("DROP TABLE people")
    _collection(other, "people", "1", '{"age": 40}')
    found = reader.read_one("people", "1")
    assert found is not None and found["age"] == 40 and "name" not in found


def test_a_kept_statement_runs_without_preparing_anything_until_the_schema_changes(
    reader: SqliteAdapter, other: sqlite3.Connection
) -> None:
    """Reads through the kept statement prepare nothing (the guard, which SQLite calls only while
    it prepares, is not called), hits and misses alike; a schema change elsewhere makes SQLite
    prepare it again at the next read, which still answers from the collection."""
    _collection(other, "notes", "1", '{"n": 1}')
    for _ in range(3):
        assert reader.read_one("notes", "1") is not None
    guard = guard_of(reader._conn)
    assert guard is not None
    calls = guard.calls
    for record_id in ("1", "2", "1", "2"):
        assert (reader.read_one("notes", record_id) is None) == (record_id == "2")
    assert guard.calls == calls
    other.execute("CREATE TABLE unrelated (x INTEGER)")
    found = reader.read_one("notes", "1")
    assert found is not None and found["n"] == 1
    assert guard.calls > calls


def test_a_miss_of_a_kept_statement_prepared_again_is_confirmed_on_the_new_schema(
    reader: SqliteAdapter, other: sqlite3.Connection
) -> None:
    """The collection is replaced elsewhere by a table keyed by another column, which still has
    an ``id`` column: the kept statement (``WHERE id = ?``) prepares there and misses, but the
    read is confirmed against the schema and answered from the table as it now is."""
    _collection(other, "notes", "1", '{"n": 1}')
    for _ in range(2):
        assert reader.read_one("notes", "1") is not None
    assert reader.read_one("notes", "k") is None  # a miss through the kept statement
    other.execute("DROP TABLE notes")
    other.execute(
        "CREATE TABLE notes (id TEXT, data TEXT, created_at TEXT, updated_at TEXT, "
        "version INTEGER, k TEXT PRIMARY KEY)"
    )
    other.execute("INSERT INTO notes VALUES ('zzz', '{}', 'c', 'u', 1, 'k')")
    found = reader.read_one("notes", "k")
    assert found is not None and found["id"] == "k" and found["k"] == "k"
    assert found["data"] == {}


def test_a_kept_integer_key_statement_prepared_again_reads_the_new_table(
    reader: SqliteAdapter, other: sqlite3.Connection
) -> None:
    """A foreign table's kept integer-key statement, its table re-created elsewhere with a text
    key: the stale statement is never trusted, hit or miss; the new table answers."""
    other.execute("CREATE TABLE people (n INTEGER PRIMARY KEY, name TEXT)")
    other.executemany("INSERT INTO people VALUES (?, ?)", [(1, "ada"), (2, "bo")])
    for _ in range(3):
        assert reader.read_one("people", "1") == {"id": 1, "n": 1, "name": "ada"}
    assert reader.read_one("people", "5") is None
    other.execute("DROP TABLE people")
    other.execute("CREATE TABLE people (n INTEGER, name TEXT, tag TEXT PRIMARY KEY)")
    other.executemany("INSERT INTO people VALUES (?, ?, ?)", [(1, "cy", "5"), (5, "di", "1")])
    assert reader.read_one("people", "5") == {"id": "5", "n": 1, "name": "cy", "tag": "5"}
    assert reader.read_one("people", "1") == {"id": "1", "n": 5, "name": "di", "tag": "1"}
    assert reader.read_one("people", "2") is None
