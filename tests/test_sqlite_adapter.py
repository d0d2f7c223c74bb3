"""The sqlite adapter: opening modes and paths, storage layout, foreign tables, indexes, concurrency, errors."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dbhandles.adapters.base import Query, Record
from dbhandles.adapters.sqlite import SqliteAdapter, SqliteConfig, SqliteSession
from dbhandles.adapters.sqlite_errors import translate_error, translating
from dbhandles.adapters.sqlite_schema import json_functions_innocuous
from dbhandles.errors import (
    AccessDenied,
    DatabaseNotFound,
    DbHandlesError,
    InvalidConfig,
    InvalidFilter,
    InvalidParams,
    NotADatabase,
    NotSupported,
    ReadOnly,
    RecordExists,
    StorageBusy,
    StorageError,
)
from dbhandles.filters import parse_filter, parse_order_by

Opener = Callable[..., SqliteAdapter]


def record(record_id: str, **fields: Any) -> Record:
    return {
        "id": record_id,
        **fields,
        "createdAt": "2024-01-01T00:00:00.000Z",
        "updatedAt": "2024-01-01T00:00:00.000Z",
        "version": 1,
    }


@pytest.fixture
def open_sqlite() -> Iterator[Opener]:
    """Open adapters the way ``data/open`` does (parse, prepare, construct); close them all after."""
    opened: list[SqliteAdapter] = []

    def opener(path: str | Path, **config: Any) -> SqliteAdapter:
        parsed = SqliteAdapter.parse_config({"path": str(path), **config})
        adapter = SqliteAdapter(SqliteAdapter.prepare(parsed))
        opened.append(adapter)
        return adapter

    yield opener
    for adapter in opened:
        adapter.close()


@pytest.fixture
def db(open_sqlite: Opener, tmp_path: Path) -> SqliteAdapter:
    return open_sqlite(tmp_path / "test.db", mode="create")


def insert(adapter: SqliteAdapter, collection: str, *records: Record) -> None:
    with adapter.session(write=True) as session:
        session.insert_many(collection, list(records))


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


# -- config ------------------------------------------------------------------------------------------


def test_config_accepts_camel_case_and_the_filename_alias(tmp_path: Path) -> None:
    config = SqliteAdapter.parse_config({"filename": "x.db", "busyTimeout": 10, "wal": False})
    assert isinstance(config, SqliteConfig)
    assert (config.path, config.busy_timeout, config.wal, config.mode) == (
        "x.db",
        10,
        False,
        "readwrite",
    )
    both = SqliteAdapter.parse_config({"path": "a.db", "filename": "b.db", "busy_timeout": 1})
    assert isinstance(both, SqliteConfig) and both.path == "a.db"


def test_config_without_a_path_names_config_path() -> None:
    with pytest.raises(InvalidConfig) as info:
        SqliteAdapter.parse_config({"mode": "create"})
    assert info.value.field == "config.path"
    with pytest.raises(InvalidConfig, match="unknown key"):
        SqliteAdapter.parse_config({"path": "x.db", "journal": "wal"})


def test_public_config_shows_the_canonical_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    config = SqliteAdapter.prepare(
        SqliteAdapter.parse_config({"filename": "link/x.db", "mode": "create"})
    )
    public = config.public()
    assert public["path"] == str((tmp_path / "real" / "x.db").resolve())
    assert "filename" not in public and public["busyTimeout"] == 5000


def test_handles_on_one_file_share_a_connection_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    key = SqliteAdapter.connection_key
    a = key(SqliteAdapter.parse_config({"path": "x.db"}))
    b = key(SqliteAdapter.parse_config({"path": str(tmp_path / "sub" / ".." / "x.db")}))
    ro = key(SqliteAdapter.parse_config({"path": "x.db", "mode": "readonly"}))
    assert a == b == f"sqlite:{(tmp_path / 'x.db').resolve()}:rw"
    assert ro == f"sqlite:{(tmp_path / 'x.db').resolve()}:ro"


# -- modes and paths -----------------------------------------------------------------------------------


def test_create_mode_creates_the_file_and_its_folders(open_sqlite: Opener, tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "new.db"
    adapter = open_sqlite(path, mode="create")
    insert(adapter, "notes", record("1", text="hi"))
    assert path.is_file()
    assert path.read_bytes()[:16] == b"SQLite format 3\x00"


def test_readwrite_on_a_missing_file_is_database_not_found(tmp_path: Path) -> None:
    for mode in ("readwrite", "readonly"):
        with pytest.raises(DatabaseNotFound, match='"mode": "create"'):
            SqliteAdapter.prepare(
                SqliteAdapter.parse_config({"path": str(tmp_path / "no.db"), "mode": mode})
            )
    assert not (tmp_path / "no.db").exists()


def test_file_deleted_after_open_is_not_recreated(open_sqlite: Opener, tmp_path: Path) -> None:
    path = tmp_path / "gone.db"
    raw(path).close()
    adapter = open_sqlite(path)
    path.unlink()
    with pytest.raises(DatabaseNotFound), adapter.session():
        pass
    assert not path.exists()


def test_a_file_deleted_under_an_open_connection_is_noticed(
    open_sqlite: Opener, tmp_path: Path
) -> None:
    """The connection would keep reading and writing the unlinked file: it is dropped instead, and
    nothing is re-created, even for a handle that was opened with mode create."""
    path = tmp_path / "gone.db"
    adapter = open_sqlite(path, mode="create")
    insert(adapter, "notes", record("1"))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    with pytest.raises(DatabaseNotFound, match="was deleted while this handle was open"):
        adapter.read_one("notes", "1")
    with (
        pytest.raises(DatabaseNotFound, match="was deleted while this handle was open"),
        adapter.session(),
    ):
        pass
    assert not path.exists()
    # data/open with mode create makes the file again; the shared connection then opens it.
    open_sqlite(path, mode="create")
    with adapter.session(write=True) as session:
        assert session.get("notes", "1") is None
        session.insert("notes", record("2"))
    assert adapter.read_one("notes", "2") is not None


def test_a_file_replaced_under_an_open_connection_is_reopened(
    open_sqlite: Opener, tmp_path: Path
) -> None:
    path, other = tmp_path / "live.db", tmp_path / "restored.db"
    adapter = open_sqlite(path, mode="create")
    insert(adapter, "notes", record("old"))
    restored = open_sqlite(other, mode="create")
    insert(restored, "notes", record("restored"))
    restored.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    os.replace(other, path)  # a restore from a backup, say
    assert adapter.read_one("notes", "old") is None
    assert adapter.read_one("notes", "restored") is not None


def test_readonly_refuses_writes(open_sqlite: Opener, tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    insert(open_sqlite(path, mode="create"), "notes", record("1"))
    ro = open_sqlite(path, mode="readonly")
    with pytest.raises(ReadOnly), ro.session(write=True):
        pass
    with pytest.raises(ReadOnly):
        ro.ensure_indexes("notes", [("text",)])
    with pytest.raises(ReadOnly):
        ro.vacuum()
    with ro.session() as session:
        assert session.get("notes", "1") == record("1")
        assert session.find("missing", Query()) == [] and session.count("missing", None) == 0


def test_readonly_is_enforced_by_the_driver(open_sqlite: Opener, tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    insert(open_sqlite(path, mode="create"), "notes", record("1"))
    ro = open_sqlite(path, mode="readonly")
    with ro.session():
        pass
    conn = ro._conn
    assert conn is not None
    # Bypassing every Python check: the connection itself was opened with mode=ro.
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("INSERT INTO notes VALUES ('2', '{}', 'x', 'x', 1)")
    with pytest.raises(ReadOnly), translating():
        conn.execute("CREATE TABLE evil (x)")


@pytest.mark.parametrize("kind", ["folder", "text file", "short file", "/dev/null"])
def test_what_is_not_an_sqlite_file_is_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "target"
    if kind == "folder":
        path.mkdir()
    elif kind == "text file":
        path.write_text("name,score\nada,3\n" * 10)
    elif kind == "short file":
        path.write_bytes(b"SQLite")
    else:
        path = Path("/dev/null")
    for mode in ("create", "readwrite", "readonly"):
        with pytest.raises(NotADatabase):
            SqliteAdapter.prepare(SqliteAdapter.parse_config({"path": str(path), "mode": mode}))


def test_an_empty_file_is_an_empty_database(open_sqlite: Opener, tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    with open_sqlite(path).session() as session:
        assert session.collections() == []


@pytest.mark.parametrize(
    "name", ["a b.db", "q?mode=ro.db", "hash#frag.db", "pct%41%2f.db", "é ü?#%.db"]
)
def test_paths_are_never_read_as_uri_syntax(open_sqlite: Opener, tmp_path: Path, name: str) -> None:
    adapter = open_sqlite(tmp_path / name, mode="create")
    insert(adapter, "notes", record("1"))
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))) == [
        name
    ]
    with adapter.session() as session:
        assert session.get("notes", "1") is not None


# -- storage layout ------------------------------------------------------------------------------------


def test_table_shape_and_stored_json(db: SqliteAdapter) -> None:
    insert(db, "Notes", record("n1", text="hi", meta={"score": 2}))
    conn = raw(Path(db.path))
    try:
        columns = conn.execute(
            "SELECT name, type, pk, \"notnull\" FROM pragma_table_info('notes')"
        ).fetchall()
        assert columns == [
            ("id", "TEXT", 1, 1),
            ("data", "TEXT", 0, 1),
            ("created_at", "TEXT", 0, 1),
            ("updated_at", "TEXT", 0, 1),
            ("version", "INTEGER", 0, 1),
        ]
        row = conn.execute("SELECT * FROM notes").fetchone()
        assert row == ("n1", '{"text":"hi","meta":{"score":2}}', "2024-01-01T00:00:00.000Z",
                       "2024-01-01T00:00:00.000Z", 1)  # fmt: skip
        indexes = [r[0] for r in conn.execute("SELECT name FROM pragma_index_list('notes')")]
        assert "_dbh_ix:notes:createdAt" in indexes
    finally:
        conn.close()


def test_records_round_trip(db: SqliteAdapter) -> None:
    with db.session(write=True) as session:
        session.insert("notes", record("a", n=1, tags=["x"], nested={"deep": [None, 1.5]}))
        session.replace("notes", {**record("a", n=2), "version": 2})
        session.replace("notes", record("b", n=3))  # replacing a missing record stores it
    with db.session() as session:
        assert session.get("notes", "a") == {**record("a", n=2), "version": 2}
        assert session.get("notes", "zz") is None and session.get("other", "a") is None
    with db.session(write=True) as session:
        assert session.delete("notes", "a") is True
        assert session.delete("notes", "a") is False and session.delete("other", "a") is False
        assert session.truncate("notes") == 1 and session.truncate("other") == 0
    with db.session() as session:
        assert session.collections() == ["notes"] and session.count("notes", None) == 0


def test_collection_names_are_case_insensitive(db: SqliteAdapter) -> None:
    insert(db, "TrainingExamples", record("1"))
    insert(db, "trainingexamples", record("2"))
    with db.session() as session:
        assert session.collections() == ["TrainingExamples"]
        assert session.count("TRAININGEXAMPLES", None) == 2


def test_reads_never_create_tables(db: SqliteAdapter) -> None:
    with db.session() as session:
        assert session.find("ghost", Query()) == []
        assert session.get("ghost", "1") is None
        assert session.count("ghost", parse_filter({"a": 1})) == 0
        assert session.collections() == []


def test_duplicate_ids_are_record_exists_and_roll_back(db: SqliteAdapter) -> None:
    insert(db, "notes", record("1"))
    with pytest.raises(RecordExists, match='"1"'), db.session(write=True) as session:
        session.insert("notes", record("1"))
    with pytest.raises(RecordExists), db.session(write=True) as session:
        session.insert_many("notes", [record("2"), record("3"), record("2")])
    with db.session() as session:
        assert [r["id"] for r in session.find("notes", Query())] == ["1"]


class Boom(Exception):
    """An error raised by the caller's own code inside a session."""


def _insert_then_fail(adapter: SqliteAdapter, *records: Record) -> None:
    with adapter.session(write=True) as session:
        session.insert_many("notes", list(records))
        raise Boom


def test_an_error_in_a_write_session_rolls_everything_back(db: SqliteAdapter) -> None:
    with pytest.raises(Boom):
        _insert_then_fail(db, record("1"))
    with db.session() as session:
        assert session.collections() == []
    insert(db, "notes", record("2"))  # the write lock was released


def test_writes_need_a_write_session(db: SqliteAdapter) -> None:
    with pytest.raises(DbHandlesError, match="write=True"), db.session() as session:
        session.insert("notes", record("1"))


def _open_write_session(adapter: SqliteAdapter) -> None:
    with adapter.session(write=True):
        pass


def test_nested_sessions_use_savepoints(db: SqliteAdapter) -> None:
    with db.session(write=True) as outer:
        outer.insert("notes", record("1"))
        with pytest.raises(Boom):
            _insert_then_fail(db, record("2"))
        with db.session() as reader:
            assert reader.count("notes", None) == 1
    with db.session(), pytest.raises(DbHandlesError, match="nested"):
        _open_write_session(db)


def test_bad_records_and_filters_are_invalid_params(db: SqliteAdapter) -> None:
    with pytest.raises(InvalidParams, match="createdAt"), db.session(write=True) as session:
        session.insert("notes", {"id": "1", "updatedAt": "x", "version": 1})
    with pytest.raises(InvalidParams, match="string"), db.session(write=True) as session:
        session.insert("notes", record(5))  # type: ignore[arg-type]
    with pytest.raises(InvalidParams), db.session(write=True) as session:
        session.insert("bad name", record("1"))
    insert(db, "notes", record("1", n=1))
    with db.session() as session:
        # An integer past 64 bits compares by value (the wide-integer contract test).
        assert session.count("notes", parse_filter({"n": 2**64})) == 0
        assert session.count("notes", parse_filter({"n": {"$lt": 2**64}})) == 1
        with pytest.raises(InvalidFilter, match="Unicode"):
            session.count("notes", parse_filter({"n": "\ud800"}))
        with pytest.raises(InvalidParams, match="after"):
            session.find("notes", Query(after=((3, 5),)))
        with pytest.raises(InvalidParams, match="after"):
            session.find("notes", Query(after=((3, "a"), (1, True))))


# -- foreign tables ------------------------------------------------------------------------------------


def test_foreign_tables_are_read_but_not_listed_as_collections_nor_written(
    open_sqlite: Opener, tmp_path: Path
) -> None:
    path = tmp_path / "user.db"
    conn = raw(path)
    conn.execute("CREATE TABLE people (name TEXT, age INTEGER)")
    conn.execute("INSERT INTO people VALUES ('ada', 36)")
    conn.execute("CREATE VIEW adults AS SELECT * FROM people WHERE age >= 18")
    conn.execute("CREATE INDEX by_age ON people (age)")
    shape = "(id TEXT PRIMARY KEY, data TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, version INTEGER NOT NULL)"
    conn.execute(f"CREATE TABLE _dbh_handles {shape}")
    conn.execute(f"CREATE TABLE Made_Elsewhere {shape}")  # same shape, other tool: a collection
    conn.close()
    adapter = open_sqlite(path)
    with adapter.session() as session:
        assert session.collections() == ["Made_Elsewhere"]
    ada = {"id": 1, "name": "ada", "age": 36}
    # A view has no key: its id is the JSON array of its columns (docs/foreign-tables.md).
    adult = {"id": '["ada",36]', "name": "ada", "age": 36}
    for name, row in (("people", ada), ("PEOPLE", ada), ("adults", adult)):
        with adapter.session() as session:
            assert session.find(name, Query()) == [row]
            assert session.get(name, str(row["id"])) == row
        with pytest.raises(ReadOnly, match="was not created by dbhandles and is read-only"):
            insert(adapter, name, record("1"))
    with (
        pytest.raises(InvalidParams, match="not a dbhandles collection"),
        adapter.session() as session,
    ):
        session.find("by_age", Query())  # an index is no table
    with pytest.raises(InvalidParams, match="not a dbhandles collection"):
        insert(adapter, "by_age", record("1"))
    insert(adapter, "made_elsewhere", record("1"))
    conn = raw(path)
    assert conn.execute("SELECT * FROM people").fetchall() == [("ada", 36)]
    conn.close()


def test_schema_changes_by_other_connections_are_seen(open_sqlite: Opener, tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    writer = open_sqlite(path, mode="create")
    with writer.session():
        pass
    reader = open_sqlite(path, mode="readonly")
    with reader.session() as session:
        assert session.collections() == [] and session.count("notes", None) == 0
    insert(writer, "notes", record("1"))
    with reader.session() as session:
        assert session.collections() == ["notes"] and session.count("notes", None) == 1


def test_a_foreign_trigger_cannot_run_functions(open_sqlite: Opener, tmp_path: Path) -> None:
    """trusted_schema is OFF while the schema holds objects dbhandles did not write."""
    path = tmp_path / "hostile.db"
    adapter = open_sqlite(path, mode="create")
    insert(adapter, "notes", record("1"))
    conn = raw(path)
    conn.execute("CREATE TABLE log (x)")
    # regexp() is the adapter's own function: not innocuous, so an untrusted schema may not call it.
    conn.execute(
        "CREATE TRIGGER t AFTER INSERT ON notes BEGIN INSERT INTO log VALUES (regexp('a', 'a')); END"
    )
    conn.close()
    with pytest.raises(AccessDenied, match=r"uses regexp\(\)"):
        insert(adapter, "notes", record("2"))
    with adapter.session() as session:
        assert session.count("notes", None) == 1
        assert adapter._conn is not None
        assert adapter._conn.execute("PRAGMA trusted_schema").fetchone() == (0,)
    if not json_functions_innocuous():
        with pytest.raises(NotSupported):
            adapter.ensure_indexes("notes", [("text",)])


def test_triggers_on_other_tables_leave_json_indexes_working(
    open_sqlite: Opener, tmp_path: Path
) -> None:
    """Like the handle store's append-only audit table in the default database."""
    path = tmp_path / "default.db"
    conn = raw(path)
    conn.execute("CREATE TABLE _dbh_audit (at TEXT)")
    conn.execute(
        "CREATE TRIGGER _dbh_audit_no_delete BEFORE DELETE ON _dbh_audit "
        "BEGIN SELECT RAISE(ABORT, 'append-only'); END"
    )
    conn.close()
    adapter = open_sqlite(path)
    adapter.ensure_indexes("notes", [("meta", "score")])
    insert(adapter, "notes", record("1", meta={"score": 1}))
    with adapter.session() as session:
        assert session.count("notes", parse_filter({"meta.score": 1})) == 1


def test_a_database_with_json_indexes_opens_again(open_sqlite: Opener, tmp_path: Path) -> None:
    """SQLite before 3.45 cannot parse a schema holding JSON expression indexes under
    ``trusted_schema=OFF``: a connection starts trusting and its catalog decides (a reopen, an
    idle connection released and made again, a pooled reader, a second process)."""
    path = tmp_path / "indexed.db"
    adapter = open_sqlite(path, mode="create")
    adapter.ensure_indexes("notes", [("meta", "score")])
    insert(adapter, "notes", record("1", meta={"score": 1}))
    adapter.close()
    again = open_sqlite(path)
    insert(again, "notes", record("2", meta={"score": 1}))
    with again.session() as session:
        assert session.count("notes", parse_filter({"meta.score": 1})) == 2
    # A trigger dbhandles did not write still turns the trust off (see the test above).
    conn = raw(path)
    conn.execute("CREATE TABLE log (x)")
    conn.execute(
        "CREATE TRIGGER t AFTER INSERT ON notes BEGIN INSERT INTO log VALUES (regexp('a', 'a')); END"
    )
    conn.close()
    with pytest.raises(DbHandlesError):
        insert(open_sqlite(path), "notes", record("3", meta={"score": 1}))


# -- indexes -------------------------------------------------------------------------------------------


def _plan(adapter: SqliteAdapter, collection: str, spec: Any) -> str:
    where = adapter.compiler.where(parse_filter(spec))
    assert adapter._conn is not None
    rows = adapter._conn.execute(
        f'EXPLAIN QUERY PLAN SELECT id FROM "{collection}" WHERE {where.sql}', where.params
    ).fetchall()
    return " | ".join(str(row[-1]) for row in rows)


def test_expression_indexes_are_used(db: SqliteAdapter) -> None:
    insert(
        db,
        "examples",
        *(record(str(i), meta={"score": i % 7}, label=f"l{i % 3}") for i in range(200)),
    )
    db.ensure_indexes("examples", [("meta", "score"), ("label",), ("updatedAt",), ("version",)])
    db.ensure_indexes("examples", [("meta", "score")])  # idempotent
    with db.session():
        assert "_dbh_ix:examples:meta.score" in _plan(db, "examples", {"meta.score": 3})
        assert "_dbh_ix:examples:meta.score" in _plan(db, "examples", {"meta.score": {"$gt": 3}})
        assert "_dbh_ix:examples:label" in _plan(db, "examples", {"label": {"$in": ["l1", "l2"]}})
        assert "_dbh_ix:examples:version" in _plan(db, "examples", {"version": 1})
    with db.session(write=True) as session:  # writes keep working with the JSON indexes in place
        session.insert("examples", record("new", meta={"score": 3}))
    with db.session() as session:
        assert session.count("examples", parse_filter({"meta.score": 3})) == 30


def test_ensure_indexes_creates_the_collection(db: SqliteAdapter) -> None:
    db.ensure_indexes("fresh", [("a",)])
    with db.session() as session:
        assert session.collections() == ["fresh"]


# -- lifecycle and concurrency -------------------------------------------------------------------------


def test_release_then_reuse(db: SqliteAdapter) -> None:
    insert(db, "notes", record("1"))
    db.release()
    assert db._conn is None and not db.closed
    insert(db, "notes", record("2"))
    with db.session() as session:
        assert session.count("notes", None) == 2
    db.close()
    db.close()  # idempotent
    with pytest.raises(StorageError), db.session():
        pass


def test_threads_share_one_adapter(db: SqliteAdapter) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(25):
                insert(db, "notes", record(f"{n}-{i}", n=n))
                with db.session() as session:
                    assert session.get("notes", f"{n}-{i}") is not None
                if i == 10 and n == 0:
                    db.release()
        except BaseException as exc:  # reported below, on the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with db.session() as session:
        assert session.count("notes", None) == 150
        assert session.count("notes", parse_filter({"n": 3})) == 25


def test_a_second_writer_gets_storage_busy(open_sqlite: Opener, tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    first = open_sqlite(path, mode="create")
    insert(first, "notes", record("0"))
    second = SqliteAdapter(
        SqliteAdapter.prepare(SqliteAdapter.parse_config({"path": str(path), "busyTimeout": 0}))
    )
    try:
        with first.session(write=True) as session:
            session.insert("notes", record("1"))
            with pytest.raises(StorageBusy), second.session(write=True):
                pass
        insert(second, "notes", record("2"))
        with second.session() as session:
            assert session.count("notes", None) == 3
    finally:
        second.close()


def test_wal_is_on_by_default_and_can_be_left_off(open_sqlite: Opener, tmp_path: Path) -> None:
    for wal, expected in ((True, "wal"), (False, "delete")):
        adapter = open_sqlite(tmp_path / f"{wal}.db", mode="create", wal=wal)
        with adapter.session():
            assert adapter._conn is not None
            assert adapter._conn.execute("PRAGMA journal_mode").fetchone() == (expected,)


def test_vacuum_and_size(db: SqliteAdapter) -> None:
    assert db.size_bytes() > 0
    insert(db, "blobs", *(record(str(i), text="x" * 2000) for i in range(300)))
    full = db.size_bytes()
    with db.session(write=True) as session:
        session.truncate("blobs")
    db.vacuum()
    assert db.size_bytes() < full / 4
    assert not os.path.exists(db.path + "-wal") or os.path.getsize(db.path + "-wal") == 0


# -- error translation ---------------------------------------------------------------------------------


def _sqlite3_exceptions() -> list[type[BaseException]]:
    found = {
        value
        for value in vars(sqlite3).values()
        if isinstance(value, type) and issubclass(value, sqlite3.Error | sqlite3.Warning)
    }
    return sorted(found, key=lambda cls: cls.__name__)


@pytest.mark.parametrize("cls", _sqlite3_exceptions(), ids=lambda cls: cls.__name__)
def test_every_sqlite3_exception_is_translated(cls: type[BaseException]) -> None:
    with pytest.raises(DbHandlesError) as info, translating(path="/x.db"):
        raise cls("something failed")
    assert isinstance(info.value.__cause__, cls)


def test_sqlite3_exception_classes_are_all_covered() -> None:
    names = {cls.__name__ for cls in _sqlite3_exceptions()}
    assert names >= {
        "DataError", "DatabaseError", "Error", "IntegrityError", "InterfaceError", "InternalError",
        "NotSupportedError", "OperationalError", "ProgrammingError", "Warning",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (sqlite3.OperationalError("database is locked"), StorageBusy),
        (sqlite3.OperationalError("database table is locked"), StorageBusy),
        (sqlite3.OperationalError("attempt to write a readonly database"), ReadOnly),
        (sqlite3.IntegrityError("UNIQUE constraint failed: notes.id"), RecordExists),
        (sqlite3.DatabaseError("file is not a database"), NotADatabase),
        (sqlite3.DatabaseError("database disk image is malformed"), StorageError),
        (sqlite3.OperationalError("too many SQL variables"), InvalidFilter),
        (OverflowError("Python int too large to convert to SQLite INTEGER"), InvalidFilter),
        (sqlite3.OperationalError("no such table: x"), StorageError),
        (sqlite3.ProgrammingError("Cannot operate on a closed database."), StorageError),
    ],
)
def test_driver_errors_map_to_the_tree(exc: BaseException, expected: type[DbHandlesError]) -> None:
    assert type(translate_error(exc)) is expected


def _read_after_the_connection_died(adapter: SqliteAdapter) -> None:
    with adapter.session() as session:
        assert isinstance(session, SqliteSession)
        session.conn.close()
        session.get("notes", "1")


def test_no_driver_exception_escapes_a_session(db: SqliteAdapter) -> None:
    insert(db, "notes", record("1"))
    with pytest.raises(DbHandlesError) as info:
        _read_after_the_connection_died(db)
    assert isinstance(info.value.__cause__, sqlite3.Error)
    db.release()
    with db.session() as session:
        assert session.get("notes", "1") is not None


def test_order_by_reserved_and_json_fields(db: SqliteAdapter) -> None:
    insert(
        db, "notes", record("b", s=2), record("a", s="x"), record("c", s=None), record("d", s=True)
    )
    with db.session() as session:
        rows = session.find("notes", Query(order=parse_order_by(["-s"]), limit=3))
    assert [r["id"] for r in rows] == ["a", "b", "d"]


# -- bulk paths ----------------------------------------------------------------------------------------


def test_insert_many_can_skip_existing_ids(db: SqliteAdapter) -> None:
    insert(db, "notes", record("1", n=1))
    with db.session(write=True) as session:
        batch = [record("1", n=9), record("2", n=2), record("2", n=9), record("3", n=3)]
        assert session.insert_many("notes", batch, skip_existing=True) == 2
        assert session.insert_many("notes", [], skip_existing=True) == 0
    with db.session() as session:
        assert [(r["id"], r["n"]) for r in session.find("notes", Query())] == [
            ("1", 1),
            ("2", 2),
            ("3", 3),
        ]


def test_insert_many_raw_stores_rows_as_given(db: SqliteAdapter) -> None:
    rows = [
        (
            f"r{i}",
            f'{{"i":{i},"text":"t{i}"}}',
            "2024-01-01T00:00:00.000Z",
            "2024-01-02T00:00:00.000Z",
            1,
        )
        for i in range(5)
    ]
    with db.session(write=True) as session:
        assert isinstance(session, SqliteSession)
        assert session.insert_many_raw("notes", rows, skip_existing=True) == 5
        assert session.insert_many_raw("notes", rows[:2], skip_existing=True) == 0
        with pytest.raises(RecordExists):
            session.insert_many_raw("notes", rows[:1])
    with db.session() as session:
        assert session.get("notes", "r3") == {
            "id": "r3", "i": 3, "text": "t3", "createdAt": "2024-01-01T00:00:00.000Z",
            "updatedAt": "2024-01-02T00:00:00.000Z", "version": 1,
        }  # fmt: skip
        assert session.count("notes", parse_filter({"i": {"$gte": 3}})) == 2


def test_bulk_load_defers_checkpoints_then_restores(db: SqliteAdapter) -> None:
    insert(db, "notes", record("0"))
    conn = db._conn
    assert conn is not None
    with db.bulk_load():
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        for batch in range(3):
            insert(db, "notes", *(record(f"{batch}-{i}", text="x" * 100) for i in range(200)))
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone() == (1000,)
    with db.session() as session:
        assert session.count("notes", None) == 601
