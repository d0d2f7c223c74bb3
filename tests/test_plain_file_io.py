"""No plain file I/O on a live database file: POSIX locks belong to a process and an inode, so one
``open()``/``close()`` of a database file releases every SQLite lock the process holds on it, and another
process then deletes the write-ahead log under it (issue 10; see ``dbhandles.dbfiles``)."""

from __future__ import annotations

import ast
import contextlib
import hashlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import dbhandles
from dbhandles import Service
from dbhandles.adapters.jsonfile import JsonFileAdapter
from dbhandles.adapters.sqlite import SqliteAdapter
from dbhandles.adapters.sqlite_config import check_target
from dbhandles.dbfiles import (
    check_plain,
    create_empty,
    is_side_file,
    is_sqlite_database,
    open_plain,
)
from dbhandles.errors import DbHandlesError, NotADatabase, PathNotAllowed

PACKAGE = Path(dbhandles.__file__).parent

#: Modules that may call ``open()`` and its relatives, and why none of their files is a database.
ALLOWED = {
    "dbfiles.py": "the one place: the gate (check_plain) and O_EXCL creation",
    "new_files.py": "dbfiles' O_EXCL creation and renames, in a pinned folder, after check_plain",
    "lock_files.py": "lock files beside a database, after dbfiles.check_plain (writing: no link, no "
    "database, no hard link), so no database descriptor is ever closed",
    "pinned_look.py": "a file's first bytes in its pinned folder (dbfiles' gate, open_undo, "
    "database_files), under OPENING and only when no connection of this process holds it (so no "
    "lock is released); a pinned folder's names (O_DIRECTORY: never a file)",
    "pinned.py": "folders only (O_PATH | O_DIRECTORY | O_NOFOLLOW), never a file",
    "cli/session.py": "the CLI's session-id file in the home folder",
    "cli/transport.py": "server.json and admin.token in the home folder",
    "cli/__init__.py": "os.devnull",
    "importer/worker.py": "os.devnull in the parser process (which holds no connection)",
    "security/tokens.py": "admin.token in the home folder",
    "server/public.py": "the package's static files (the dashboard), read once per server",
    "adapters/sqlite_trust.py": "an in-memory probe (:memory:) of the functions this SQLite has",
    "adapters/jsonfile.py": "a new mkstemp file and its folder (for fsync); the database file and its "
    ".lock go through dbfiles",
    "cli/help.py": "the repository's generated docs (docs/cli.md), never a database",
    "cli/help_text.py": "the package's help_text.json next to the module, never a database",
    "file_kinds.py": "an O_PATH look (opens nothing, releases no lock) before SQLite opens read-only "
    "or dbfiles.open_plain reads (then through that look), and SQLite's own immutable probe",
    "store/jobs.py": "/proc/<pid>/stat and the boot id (a job owner's start token), never a database",
    "commands/open_undo.py": "a new database file made O_EXCL in its pinned folder: it opens no "
    "existing file, so it releases no lock",
}

#: Calls that open a file by name with plain I/O.
_OPENERS = {"open", "read_bytes", "read_text", "write_bytes", "write_text", "mkstemp", "connect"}
#: Owners whose ``open()`` opens no file: psycopg's connection pool, ``HandleRegistry.open`` (a
#: handle) and ``QueryCursors.open`` (a query cursor).
_NOT_FILES = {"self._pool", "pool", "registry", "service.cursors"}


def _opening_calls(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == "open":
            yield node.lineno, "open"
        elif isinstance(func, ast.Attribute) and func.attr in _OPENERS:
            owner = ast.unparse(func.value)
            if func.attr == "connect" and owner != "sqlite3":
                continue  # only sqlite3.connect opens a file; adapters' connect() do not
            if func.attr == "open" and owner in _NOT_FILES:
                continue
            yield node.lineno, f"{owner}.{func.attr}"


def test_only_allowlisted_modules_open_files_by_name() -> None:
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        calls = [f"line {n}: {what}" for n, what in _opening_calls(ast.parse(path.read_text()))]
        # sqlite_schema's probe is an in-memory database, no file at all.
        calls = [c for c in calls if not (module == "adapters/sqlite_schema.py" and "sqlite3" in c)]
        if calls and module not in ALLOWED:
            found[module] = calls
    assert not found, (
        "plain file I/O outside dbhandles.dbfiles (use dbfiles.open_plain / connect_sqlite / "
        f"create_empty, or add the module to ALLOWED with the reason no database is opened): {found}"
    )
    assert all((PACKAGE / module).exists() for module in ALLOWED), "stale ALLOWED entry"


def test_the_lint_finds_an_open() -> None:
    tree = ast.parse("open(p, 'rb')\nPath(p).read_bytes()\nsqlite3.connect(p)\nthing.connect()\n")
    assert [what for _, what in _opening_calls(tree)] == [
        "open",
        "Path(p).read_bytes",
        "sqlite3.connect",
    ]


# -- locks survive every check this process makes on its own live database ------------------------


def _wal_database(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.execute("SELECT count(*) FROM t").fetchone()
    return conn


def _other_process_opens_and_closes(path: Path) -> None:
    code = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "c.execute('SELECT count(*) FROM t').fetchone(); c.close()"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=60)


def _swallow(action: Callable[[], object]) -> None:
    with contextlib.suppress(DbHandlesError):  # refusing is fine: what matters is the locks
        action()


CHECKS: dict[str, Callable[[Path], object]] = {
    "is_sqlite_database": lambda p: is_sqlite_database(str(p)),
    "check_target": lambda p: check_target(str(p)),
    "create_empty": lambda p: create_empty(str(p)),
    "check_plain": lambda p: _swallow(lambda: check_plain(p, "input")),
    "check_plain(-wal)": lambda p: _swallow(lambda: check_plain(f"{p}-wal", "input")),
    "check_plain(-shm)": lambda p: _swallow(lambda: check_plain(f"{p}-shm", "input")),
    "open_plain": lambda p: _swallow(lambda: open_plain(p, "rb", "input")),
    "sqlite prepare": lambda p: SqliteAdapter.prepare(
        SqliteAdapter.parse_config({"path": str(p), "mode": "create"})
    ),
    "json prepare": lambda p: _swallow(
        lambda: JsonFileAdapter.prepare(JsonFileAdapter.parse_config({"path": str(p)}))
    ),
}


@pytest.mark.parametrize("check", list(CHECKS))
def test_a_check_on_a_live_database_keeps_its_write_ahead_log(tmp_path: Path, check: str) -> None:
    path = tmp_path / "live.sqlite"
    conn = _wal_database(path)
    try:
        CHECKS[check](path)
        _other_process_opens_and_closes(path)
        assert (tmp_path / "live.sqlite-wal").exists(), "the other process deleted our WAL"
    finally:
        conn.close()


def test_the_reproduction_fails_without_the_rule(tmp_path: Path) -> None:
    """The test above can fail: a plain open/close is exactly what deletes the log."""
    path = tmp_path / "live.sqlite"
    conn = _wal_database(path)
    try:
        with open(path, "rb") as file:  # what the old header check did
            file.read(16)
        _other_process_opens_and_closes(path)
        assert not (tmp_path / "live.sqlite-wal").exists()
    finally:
        conn.close()


def test_a_service_importing_and_exporting_on_its_own_home_keeps_the_log(tmp_path: Path) -> None:
    """The whole flow in one process: the default database is live while the import and the
    export check their files; another process on the home then closes its connections."""
    home = tmp_path / "home"
    data = tmp_path / "in.jsonl"
    data.write_text('{"id": "a", "n": 1}\n{"id": "b", "n": 2}\n')
    with Service(home=home) as service:
        service.execute("data/create", {"collection": "c", "id": "x", "data": {}})
        service.execute(
            "data/import",
            {"input": str(data), "output": str(tmp_path / "o.sqlite"), "collection": "c"},
        )
        service.execute(
            "data/export",
            {"dbHandle": "default", "collection": "c", "output": str(tmp_path / "c.jsonl")},
        )
        _other_process_opens_and_closes_default(home)
        assert (home / "default.sqlite-wal").exists()
        assert service.execute("data/read", {"collection": "c", "id": "x"})["data"]["id"] == "x"


def _other_process_opens_and_closes_default(home: Path) -> None:
    code = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "c.execute('SELECT count(*) FROM sqlite_master').fetchone(); c.close()"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(home / "default.sqlite")], check=True, timeout=60
    )


# -- what the gate refuses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["db.sqlite-wal", "db.sqlite-shm", "db-journal", "x.db-mj0123ABCD", "default.sqlite-wal"],
)
def test_side_files_are_refused_by_name_even_when_missing(tmp_path: Path, name: str) -> None:
    assert is_side_file(tmp_path / name)
    with pytest.raises(PathNotAllowed, match="SQLite's own files"):
        check_plain(tmp_path / name, "input")


def test_a_hard_link_to_a_live_side_file_is_refused(tmp_path: Path) -> None:
    from dbhandles.dbfiles import connect_sqlite

    path = tmp_path / "live.sqlite"
    conn = connect_sqlite(str(path), "rwc")
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE t (x)")
        os.link(tmp_path / "live.sqlite-shm", tmp_path / "innocent.jsonl")
        os.link(path, tmp_path / "also-innocent.jsonl")
        for name in ("innocent.jsonl", "also-innocent.jsonl"):
            with pytest.raises(PathNotAllowed, match="that this service has open"):
                check_plain(tmp_path / name, "input")
    finally:
        conn.close()
    # Closed: the main file is still an SQLite database, refused for what it is.
    with pytest.raises(PathNotAllowed, match="is an SQLite database"):
        check_plain(tmp_path / "also-innocent.jsonl", "input")


def test_plain_files_pass_and_databases_do_not(tmp_path: Path) -> None:
    (tmp_path / "data.jsonl").write_text('{"a": 1}\n')
    (tmp_path / "empty").write_bytes(b"")
    check_plain(tmp_path / "data.jsonl", "input")
    check_plain(tmp_path / "empty", "input")
    check_plain(tmp_path / "missing.jsonl", "input")
    sqlite3.connect(tmp_path / "db.sqlite").execute("CREATE TABLE t (x)").connection.close()
    assert is_sqlite_database(str(tmp_path / "db.sqlite"))
    assert not is_sqlite_database(str(tmp_path / "data.jsonl"))
    assert not is_sqlite_database(str(tmp_path / "empty"))
    with pytest.raises(PathNotAllowed, match="is an SQLite database"):
        check_plain(tmp_path / "db.sqlite", "output")


def test_create_empty_never_opens_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    assert create_empty(str(path), 0o600)
    assert path.stat().st_mode & 0o777 == 0o600
    path.write_bytes(b"keep")
    assert not create_empty(str(path))
    assert path.read_bytes() == b"keep"
    os.symlink(tmp_path / "elsewhere", tmp_path / "link")
    assert not create_empty(str(tmp_path / "link"))  # a planted symlink is not followed
    assert not (tmp_path / "elsewhere").exists()


def test_the_json_adapter_refuses_a_sqlite_database(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "db.sqlite").execute("CREATE TABLE t (x)").connection.close()
    with Service(home=tmp_path / "home") as service:
        for path in (tmp_path / "db.sqlite", tmp_path / "db.sqlite-wal"):
            with pytest.raises(PathNotAllowed, match="SQLite"):
                service.execute("data/open", {"adapter": "json", "config": {"path": str(path)}})


def test_the_sqlite_adapter_refuses_side_files_and_non_databases(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "db.sqlite").execute("CREATE TABLE t (x)").connection.close()
    (tmp_path / "db.sqlite-journal").write_bytes(b"x" * 600)
    (tmp_path / "notes.txt").write_text("not a database, long enough to have a header" * 3)
    with Service(home=tmp_path / "home") as service:
        for name in ("db.sqlite-journal", "notes.txt"):
            with pytest.raises(NotADatabase):
                service.execute(
                    "data/open", {"adapter": "sqlite", "config": {"path": str(tmp_path / name)}}
                )


# -- opening a database changes nothing in it -------------------------------------------------------


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rollback_database(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE people (name TEXT)")
    conn.execute("INSERT INTO people VALUES ('ada')")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("mode", ["readwrite", "readonly", "create"])
def test_opening_and_reading_a_database_changes_nothing_in_it(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "theirs.sqlite"
    _rollback_database(path)
    before = _digest(path)
    with Service(home=tmp_path / "home") as service:
        handle = service.execute(
            "data/open", {"adapter": "sqlite", "config": {"path": str(path), "mode": mode}}
        )["dbHandle"]
        service.execute("data/schema", {"dbHandle": handle})
        service.execute("data/list", {"dbHandle": handle, "collection": "c"})
        service.execute("data/close", {"dbHandle": handle})
    assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "theirs.sqlite"]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()


def test_a_write_keeps_the_journal_mode_unless_wal_is_asked_for(tmp_path: Path) -> None:
    kept, switched = tmp_path / "kept.sqlite", tmp_path / "switched.sqlite"
    _rollback_database(kept)
    _rollback_database(switched)
    with Service(home=tmp_path / "home") as service:
        for path, extra in ((kept, {}), (switched, {"wal": True})):
            handle = service.execute(
                "data/open", {"adapter": "sqlite", "config": {"path": str(path), **extra}}
            )["dbHandle"]
            service.execute("data/create", {"dbHandle": handle, "collection": "c", "data": {}})
            service.execute("data/close", {"dbHandle": handle})
    for path, expected in ((kept, "delete"), (switched, "wal")):
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == expected, path.name
        conn.close()


def test_a_new_database_is_created_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    with Service(home=tmp_path / "home") as service:
        handle = service.execute(
            "data/open", {"adapter": "sqlite", "config": {"path": str(path), "mode": "create"}}
        )["dbHandle"]
        service.execute("data/create", {"dbHandle": handle, "collection": "c", "data": {}})
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
