"""Schema versions of the system tables: the first release's homes are upgraded, at start-up, once.

``fixtures/v1_home.sqlite`` and ``fixtures/v1_home_postgres.sql`` are what release 0527062 (schema
version 1, which stored no version) made; ``fixtures/make_v1_homes.py`` says how. Opened by this code,
each is upgraded to ``SCHEMA_VERSION``, keeps its rows, and then has exactly the tables, columns,
indexes and triggers of a new home. Steps run in order and once, also when two processes start on
the same home at once; a home that needs newer code is refused with ``state_too_new``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbhandles import Service, StateTooNew
from dbhandles.adapters.postgres import PostgresAdapter
from dbhandles.adapters.postgres_config import PostgresConfig
from dbhandles.errors import HandleNotFound
from dbhandles.store import (
    AuditRow,
    CursorRow,
    DatabaseRow,
    GrantRow,
    HandleRow,
    SqliteHandleStore,
    TokenRow,
)
from dbhandles.store.jobs import JobRow
from dbhandles.store.migrations import SCHEMA_VERSION, STEPS, Step
from dbhandles.store.postgres import PostgresHandleStore
from dbhandles.store.schema import (
    AUDIT,
    CURSORS,
    DATABASES,
    GRANTS,
    HANDLES,
    JOBS,
    TOKENS,
    Dialect,
)
from dbhandles.store.sql import SqlHandleStore, Tx
from tests.pgserver import postgres_config, require_postgres
from tests.servers import envelope_of, jtag_env, run_jtag

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
FIXTURE_SCHEMA = "dbh_v1_fixture"
#: As the release stored them (``Permissions.to_wire()``).
PERMISSIONS = {"read": True, "write": False, "delete": True, "schema": True,
               "allowedCollections": ["notes"], "deniedCollections": [], "isolationMode": "none"}  # fmt: skip
RELEASE_HOST = "release-host"

# -- what the fixtures hold --------------------------------------------------------------------------

HANDLE_ROWS = [
    HandleRow("h_mem", "memory", {}, 1_700_000_000_000, 1_700_000_000_500, True,
              "ann", PERMISSIONS),
    HandleRow("h_file", "sqlite", {"path": "/srv/notes.sqlite", "mode": "create"},
              1_700_000_001_000, 1_700_000_001_000, False),
]  # fmt: skip
#: The same after the upgrade (version 4): the memory handle, which lived with its process, is gone
#: with its alias; the file handle is stored readwrite, as this code stores one whose file exists.
UPGRADED_HANDLES = [
    dataclasses.replace(HANDLE_ROWS[1], config={"path": "/srv/notes.sqlite", "mode": "readwrite"})
]
CURSOR_ROW = CursorRow("q_1", "h_file", "notes", {"filter": {"a": 1}, "orderBy": []},
                       [[2, 9007199254740993]], 1, 12, 5, False, "s_1", 4_102_444_800_000)  # fmt: skip
TOKEN_ROW = TokenRow("t_1", "ann", "sha256:abc", True, "2024-01-01T00:00:00Z", None, None)
AUDIT_ROWS = [
    AuditRow("2024-01-01T00:00:02Z", "bob", None, "h_mem", "data/create", "create", "c", "r_1",
             False, "permission_denied"),
    AuditRow("2024-01-01T00:00:01Z", "ann", "s_1", "h_file", "data/list", "read", "notes", None,
             True, None),
]  # fmt: skip


def assert_release_rows(store: SqlHandleStore) -> None:
    assert store.list_handles() == UPGRADED_HANDLES
    assert store.get_handle("notes") == UPGRADED_HANDLES[0]
    assert store.get_handle("first") is None
    assert store.aliases() == {"notes": "h_file"}
    # An alias belongs to the owner of the handle it pointed at (version 3).
    assert store.alias_owner("notes") == (True, None)
    assert store.get_cursor("q_1") == CURSOR_ROW
    assert store.list_tokens() == [TOKEN_ROW]
    assert store.query_audit() == AUDIT_ROWS
    # ... and the store keeps working: new rows go after the old ones.
    store.put_handle(HandleRow("h_new", "memory", {}, 1_700_000_002_000, 1_700_000_002_000))
    store.append_audit([dataclasses.replace(AUDIT_ROWS[0], at="2024-01-01T00:00:03Z")])
    assert [h.handle for h in store.list_handles()] == ["h_file", "h_new"]
    assert store.query_audit(limit=1)[0].at == "2024-01-01T00:00:03Z"
    assert store.get_meta("schema.version") == str(SCHEMA_VERSION)


# -- test-only steps: they log the order they ran in, and fail if run twice --------------------------


def _first(tx: Tx, dialect: Dialect) -> None:
    # A plain INSERT: a second run fails on the primary key.
    tx.execute(
        "INSERT INTO _dbh_meta (key, value) VALUES ('test.log', ?)", (str(SCHEMA_VERSION + 1),)
    )
    if os.environ.get("DBH_TEST_SLOW_STEP"):  # hold the lock, so that the other process waits
        time.sleep(0.3)


def _second(tx: Tx, dialect: Dialect) -> None:
    tx.execute(
        "UPDATE _dbh_meta SET value = value || ? WHERE key = 'test.log'",
        (f",{SCHEMA_VERSION + 2}",),
    )


TEST_STEPS = (
    *STEPS,
    Step(SCHEMA_VERSION + 1, "test: log", _first),
    Step(SCHEMA_VERSION + 2, "test: log again", _second, compatible=True),
)
TEST_LOG = f"{SCHEMA_VERSION + 1},{SCHEMA_VERSION + 2}"


def _failing(tx: Tx, dialect: Dialect) -> None:
    raise RuntimeError("step failed")


# -- SQLite ----------------------------------------------------------------------------------------


def v1_sqlite_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    shutil.copyfile(FIXTURES / "v1_home.sqlite", home / "default.sqlite")
    (home / "default.sqlite").chmod(0o600)
    return home


def sqlite_shape(path: Path) -> dict[str, Any]:
    """Every system table's columns, indexes and triggers."""
    db = sqlite3.connect(path)
    try:
        objects = db.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE tbl_name LIKE '\\_dbh\\_%' "
            "ESCAPE '\\' ORDER BY type, name"
        ).fetchall()
        shape: dict[str, Any] = {}
        for kind, name, table, sql in objects:
            if kind == "table":
                shape[name] = db.execute(f"PRAGMA table_info({name})").fetchall()
            elif kind == "index":
                info = db.execute(f"PRAGMA index_info({name})").fetchall()
                listed = [r for r in db.execute(f"PRAGMA index_list({table})") if r[1] == name]
                shape[name] = (table, info, [r[2:] for r in listed])
            else:
                shape[name] = " ".join(sql.split())
        return shape
    finally:
        db.close()


def sqlite_meta(path: Path) -> dict[str, str]:
    db = sqlite3.connect(path)
    try:
        return dict(db.execute("SELECT key, value FROM _dbh_meta").fetchall())
    finally:
        db.close()


def test_row_classes_have_their_tables_columns() -> None:
    tables = ((HANDLES, HandleRow), (CURSORS, CursorRow), (AUDIT, AuditRow), (TOKENS, TokenRow),
              (DATABASES, DatabaseRow), (GRANTS, GrantRow), (JOBS, JobRow))  # fmt: skip
    for table, row in tables:
        assert [f.name for f in dataclasses.fields(row)] == [c.name for c in table.fields]


def test_the_release_sqlite_home_is_upgraded(tmp_path: Path) -> None:
    home = v1_sqlite_home(tmp_path)
    path = home / "default.sqlite"
    before = sqlite_meta(path)
    assert "schema.version" not in before and "_dbh_cursors_session" not in sqlite_shape(path)
    store = SqliteHandleStore(path)
    try:
        assert_release_rows(store)
        assert store.get_meta("default.openedAt") == before["default.openedAt"]
    finally:
        store.close()
    fresh = tmp_path / "fresh.sqlite"
    SqliteHandleStore(fresh).close()
    assert sqlite_shape(path) == sqlite_shape(fresh)
    assert "_dbh_cursors_session" in sqlite_shape(path)
    assert {"_dbh_jobs", "_dbh_jobs_actor"} <= set(sqlite_shape(path))  # version 5
    # Version 3 (owners and grants in the store) is not compatible: code of version 2 would ignore them.
    assert sqlite_meta(path)["schema.requires"] == sqlite_meta(fresh)["schema.requires"] == "3"
    # The service starts on it as on any home.
    with Service(home=home) as svc:
        listed = svc.execute("data/list-handles", {})
    assert listed["success"] is True


def test_owners_come_from_the_handle_table_never_from_owner_files(tmp_path: Path) -> None:
    """Version 3 moves ownership into the store: the owners of databases opened with isolation
    are taken from the handle rows the service wrote; an ``.owner`` file (which a data command
    could have forged) is not read."""
    home = v1_sqlite_home(tmp_path)
    path = home / "default.sqlite"
    strict = json.dumps({**PERMISSIONS, "isolationMode": "strict"})
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for handle, file, owner, permissions in (
            ("h_strict", "/srv/bob.sqlite", "bob", strict),
            ("h_plain", "/srv/plain.sqlite", "bob", json.dumps(PERMISSIONS)),
        ):
            db.execute(
                "INSERT INTO _dbh_handles (handle, adapter, config, opened_at, last_used_at, "
                "emit_events, owner, permissions) VALUES (?, 'sqlite', ?, 1, 1, 1, ?, ?)",
                (handle, json.dumps({"path": file, "mode": "readwrite"}), owner, permissions),
            )
    finally:
        db.close()
    (tmp_path / "forged.sqlite.owner").write_text('{"owner": "alice", "isolationMode": "strict"}')
    store = SqliteHandleStore(path)
    try:
        found = store.get_database("file:/srv/bob.sqlite")
        assert found is not None and (found.owner, found.isolation) == ("bob", "strict")
        assert store.get_database("file:/srv/plain.sqlite") is None
        assert store.get_database(f"file:{tmp_path / 'forged.sqlite'}") is None
    finally:
        store.close()


def test_steps_run_in_order_once_and_all_or_nothing(tmp_path: Path) -> None:
    path = v1_sqlite_home(tmp_path) / "default.sqlite"
    broken = (*STEPS, Step(SCHEMA_VERSION + 1, "test: fails", _failing))
    with pytest.raises(RuntimeError, match="step failed"):
        SqliteHandleStore(path, steps=broken)
    assert "schema.version" not in sqlite_meta(path)  # step 2 was rolled back with it
    assert "_dbh_cursors_session" not in sqlite_shape(path)
    for _ in range(2):  # the second start finds the home current: nothing runs again
        SqliteHandleStore(path, steps=TEST_STEPS).close()
        meta = sqlite_meta(path)
        assert meta["test.log"] == TEST_LOG
        assert meta["schema.version"] == str(SCHEMA_VERSION + 2)
        assert meta["schema.requires"] == str(SCHEMA_VERSION + 1)  # the last step is compatible
    with pytest.raises(ValueError, match="numbered"):
        SqliteHandleStore(path, steps=TEST_STEPS[::-1])


def _set_meta(path: Path, **values: int) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for key, value in values.items():
            db.execute(
                "INSERT INTO _dbh_meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (f"schema.{key}", str(value)),
            )
    finally:
        db.close()


def test_a_home_of_newer_code_is_refused_untouched(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Service(home=home).close()
    path = home / "default.sqlite"
    _set_meta(path, version=99, requires=98)
    shape = sqlite_shape(path)
    with pytest.raises(StateTooNew) as caught:
        Service(home=home)
    message = str(caught.value)
    assert caught.value.code == "state_too_new" and str(path) in message
    assert "schema version 99" in message and f"has {SCHEMA_VERSION}" in message
    assert sqlite_shape(path) == shape and sqlite_meta(path)["schema.version"] == "99"

    proc = run_jtag("data/list-handles", env=jtag_env(home))
    envelope = envelope_of(proc)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert envelope["success"] is False and envelope["code"] == "state_too_new"
    assert "schema version 99" in envelope["error"]


def test_a_newer_home_that_older_code_can_use_is_used_as_it_is(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Service(home=home).close()
    path = home / "default.sqlite"
    _set_meta(path, version=SCHEMA_VERSION + 5, requires=SCHEMA_VERSION)
    with Service(home=home) as svc:
        assert svc.execute("data/list-handles", {})["success"] is True
    assert sqlite_meta(path)["schema.version"] == str(SCHEMA_VERSION + 5)


# -- two processes starting at once ----------------------------------------------------------------

#: Run by each process: open the store with ``TEST_STEPS`` once the parent says go (a line on stdin).
OPEN_STORE = """\
import json, sys
from pathlib import Path
from tests.test_store_upgrade import TEST_STEPS
print("ready", flush=True)
sys.stdin.readline()
kind, where = sys.argv[1], sys.argv[2]
if kind == "sqlite":
    from dbhandles.store import SqliteHandleStore
    store = SqliteHandleStore(Path(where), steps=TEST_STEPS)
else:
    from dbhandles.adapters.postgres import PostgresAdapter
    from dbhandles.store.postgres import PostgresHandleStore
    config = PostgresAdapter.parse_config(json.loads(where))
    store = PostgresHandleStore(config, steps=TEST_STEPS, pool_size=1)
print(json.dumps({k: store.get_meta(k) for k in ("schema.version", "test.log")}), flush=True)
store.close()
"""


def expected_log(home: str) -> str | None:
    # A new home is made in the current shape at once: no step runs there, the test steps neither.
    return TEST_LOG if home == "v1" else None


def start_together(kind: str, where: str) -> list[dict[str, str]]:
    """Two processes open the store at the same moment; what each then read."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "DBH_TEST_SLOW_STEP": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_STORE, kind, where],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for _ in range(2)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n", proc.stderr
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = [proc.communicate(timeout=60) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
    return [json.loads(out) for out, _ in results]


@pytest.mark.parametrize("home", ["fresh", "v1"])
def test_two_processes_start_on_one_sqlite_home(tmp_path: Path, home: str) -> None:
    path = (
        (tmp_path / "home" / "default.sqlite")
        if home == "fresh"
        else (v1_sqlite_home(tmp_path) / "default.sqlite")
    )
    expected = {"schema.version": str(SCHEMA_VERSION + 2), "test.log": expected_log(home)}
    assert start_together("sqlite", str(path)) == [expected, expected]
    fresh = tmp_path / "fresh.sqlite"
    SqliteHandleStore(fresh).close()
    assert sqlite_shape(path) == sqlite_shape(fresh)


# -- PostgreSQL ------------------------------------------------------------------------------------


def _pg_config(tmp_path: Path, schema: str | None = None) -> PostgresConfig:
    config = postgres_config(tmp_path)
    if schema is not None:
        config["schema"] = schema
    parsed = PostgresAdapter.parse_config(config)
    assert isinstance(parsed, PostgresConfig)
    return parsed


def load_v1_schema(tmp_path: Path) -> PostgresConfig:
    """A schema holding what the release made (the fixture loaded under this test's schema name)."""
    config = _pg_config(tmp_path)
    script = (FIXTURES / "v1_home_postgres.sql").read_text()
    assert FIXTURE_SCHEMA in script
    with psycopg.connect(require_postgres().url, autocommit=True) as conn:
        conn.execute(script.replace(FIXTURE_SCHEMA, config.schema_name))
    return config


def pg_shape(schema: str) -> dict[str, Any]:
    """Every table's columns, every index, trigger and function of ``schema`` (its name left out)."""
    queries = {
        "columns": "SELECT table_name, column_name, data_type, is_nullable, column_default "
        "FROM information_schema.columns WHERE table_schema = %(s)s "
        "ORDER BY table_name, ordinal_position",
        "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes "
        "WHERE schemaname = %(s)s ORDER BY indexname",
        "triggers": "SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t "
        "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %(s)s AND NOT t.tgisinternal ORDER BY t.tgname",
        "functions": "SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %(s)s ORDER BY 1",
    }
    with psycopg.connect(require_postgres().url, autocommit=True) as conn:
        found = {k: conn.execute(q, {"s": schema}).fetchall() for k, q in queries.items()}
    return json.loads(re.sub(rf"\b{schema}\b", "S", json.dumps(found)))


@pytest.fixture
def fresh_pg_schema(tmp_path: Path) -> str:
    """A schema this code made."""
    schema = "fresh_" + _pg_config(tmp_path).schema_name
    PostgresHandleStore(_pg_config(tmp_path, schema)).close()
    return schema


@pytest.mark.postgres
def test_the_release_postgres_schema_is_upgraded(tmp_path: Path, fresh_pg_schema: str) -> None:
    config = load_v1_schema(tmp_path)
    store = PostgresHandleStore(config, host_id=RELEASE_HOST)
    try:
        assert_release_rows(store)
        assert store.get_meta("schema.requires") == "3"
    finally:
        store.close()
    assert pg_shape(config.schema_name) == pg_shape(fresh_pg_schema)
    elsewhere = PostgresHandleStore(config, host_id="another-host")
    try:  # the host the release recorded still guards the file handle
        with pytest.raises(HandleNotFound, match=RELEASE_HOST):
            elsewhere.get_handle("notes")
    finally:
        elsewhere.close()


@pytest.mark.postgres
def test_a_postgres_schema_of_newer_code_is_refused(tmp_path: Path) -> None:
    config = load_v1_schema(tmp_path)
    with psycopg.connect(require_postgres().url, autocommit=True) as conn:
        conn.execute(
            f'INSERT INTO "{config.schema_name}"._dbh_meta VALUES (%s, %s)',
            ("schema.version", "99"),
        )
    with pytest.raises(StateTooNew, match="schema version 99") as caught:
        PostgresHandleStore(config)
    assert config.schema_name in str(caught.value)


@pytest.mark.postgres
@pytest.mark.parametrize("home", ["fresh", "v1"])
def test_two_processes_start_on_one_postgres_schema(
    tmp_path: Path, home: str, fresh_pg_schema: str
) -> None:
    config = load_v1_schema(tmp_path) if home == "v1" else _pg_config(tmp_path)
    raw = {"url": require_postgres().url, "schema": config.schema_name, "mode": "create"}
    expected = {"schema.version": str(SCHEMA_VERSION + 2), "test.log": expected_log(home)}
    assert start_together("postgres", json.dumps(raw)) == [expected, expected]
    shape = pg_shape(config.schema_name)
    assert shape == pg_shape(fresh_pg_schema)
