"""Keys that are not a column named ``id`` (issue 15): re-runs of ``data/copy`` and of a killed
move skip what is already there, and every engine treats a key column named in ``data`` alike.

A text key named ``code``, a compound key ``(d, k)`` with a date, a ``date`` key and the ``sha``
key sqlite-utils makes (``--pk=sha``), each copied SQLite -> PostgreSQL, PostgreSQL ->
PostgreSQL, PostgreSQL -> SQLite and SQLite -> SQLite. Tables are made with each engine's own tool.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.errors import DbHandlesError, InvalidParams
from tests.conftest import adapter_config

PG = pytest.mark.postgres

#: Table name -> (SQLite DDL, PostgreSQL DDL, row maker).
TABLES: dict[str, tuple[str, str, Any]] = {
    "tk": (
        "CREATE TABLE tk (code TEXT PRIMARY KEY, v TEXT)",
        "CREATE TABLE tk (code text PRIMARY KEY, v text)",
        lambda i: (f"c{i:02}", f"v{i}"),
    ),
    "comp": (
        "CREATE TABLE comp (d TEXT, k INTEGER, v TEXT, PRIMARY KEY (d, k))",
        "CREATE TABLE comp (d date, k integer, v text, PRIMARY KEY (d, k))",
        lambda i: (f"2024-05-0{i % 3 + 1}", i, f"v{i}"),
    ),
    "dk": (
        "CREATE TABLE dk (d DATE PRIMARY KEY, v TEXT)",
        "CREATE TABLE dk (d date PRIMARY KEY, v text)",
        lambda i: (f"2024-05-{i + 1:02}", f"v{i}"),
    ),
    "sha": (
        "CREATE TABLE [sha] ([sha] TEXT PRIMARY KEY, [v] TEXT)",
        "CREATE TABLE sha (sha text PRIMARY KEY, v text)",
        lambda i: (hashlib.sha1(str(i).encode()).hexdigest(), f"v{i}"),
    ),
}

#: A table whose CHECK refuses a negative ``n``.
CHECKED = (
    "CREATE TABLE chk (id TEXT PRIMARY KEY, n INTEGER CONSTRAINT n_positive CHECK (n >= 0))",
    "CREATE TABLE chk (id text PRIMARY KEY, n integer CONSTRAINT n_positive CHECK (n >= 0))",
    lambda i: (f"r{i}", i),
)


def _table(service: Service, tmp_path: Path, name: str, engine: str, table: str, n: int) -> str:
    """A handle on a database whose ``table`` (``TABLES``) holds ``n`` rows."""
    folder = tmp_path / name
    folder.mkdir()
    lite, pg, make = {**TABLES, "chk": CHECKED}[table]
    rows = [make(i) for i in range(n)]
    config = adapter_config(engine, folder)
    if engine == "sqlite":
        conn = sqlite3.connect(folder / "db.sqlite")
        try:
            conn.execute(lite)
            if rows:
                marks = ", ".join("?" for _ in rows[0])
                conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
            conn.commit()
        finally:
            conn.close()
        config.pop("mode", None)
    else:
        import psycopg
        from psycopg import sql

        with psycopg.connect(config["url"], autocommit=True) as pg_conn:
            schema = sql.Identifier(config["schema"])
            pg_conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
            pg_conn.execute(sql.SQL("SET search_path = {}").format(schema))
            pg_conn.execute(pg)  # type: ignore[arg-type]
            if rows:
                marks = ", ".join("%s" for _ in rows[0])
                with pg_conn.cursor() as cursor:
                    cursor.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)  # type: ignore[arg-type]
    return str(service.execute("data/open", {"adapter": engine, "config": config})["dbHandle"])


def _rows(service: Service, handle: str, table: str) -> dict[str, Any]:
    page = service.execute("data/list", {"dbHandle": handle, "collection": table, "limit": 500})
    return {str(r["id"]): r for r in page["items"]}


def _copy(service: Service, a: str, b: str, table: str, **params: Any) -> dict[str, Any]:
    return service.execute(
        "data/copy", {"from": {"dbHandle": a, "collection": table}, "to": {"dbHandle": b}, **params}
    )


def _pair(src: str, dst: str) -> Any:
    marks = [PG] if "postgres" in (src, dst) else []
    return pytest.param(src, dst, marks=marks, id=f"{src}->{dst}")


PAIRS = [_pair(s, d) for s in ("sqlite", "postgres") for d in ("sqlite", "postgres")]


@pytest.mark.parametrize("table", sorted(TABLES))
@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_a_rerun_copy_skips_rows_already_there_whatever_the_key(
    service: Service, tmp_path: Path, src: str, dst: str, table: str
) -> None:
    a = _table(service, tmp_path, "a", src, table, 6)
    b = _table(service, tmp_path, "b", dst, table, 0)
    first = _copy(service, a, b, table, batchSize=4)
    assert (first["copied"], first["skipped"], first["conflicts"]) == (6, 0, 0)
    again = _copy(service, a, b, table, batchSize=4)
    assert (again["copied"], again["skipped"], again["conflicts"]) == (0, 6, 0)
    moved = _copy(service, a, b, table, batchSize=4, move=True)
    assert (moved["skipped"], moved["conflicts"], moved["deleted"]) == (6, 0, 6)
    assert _rows(service, a, table) == {} and len(_rows(service, b, table)) == 6


@pytest.mark.parametrize("table", sorted(TABLES))
@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_a_move_killed_between_copy_and_delete_finishes_whatever_the_key(
    service: Service,
    tmp_path: Path,
    src: str,
    dst: str,
    table: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dbhandles.commands import copy_run

    a = _table(service, tmp_path, "a", src, table, 11)
    b = _table(service, tmp_path, "b", dst, table, 0)
    before = {rid: r["v"] for rid, r in _rows(service, a, table).items()}
    real, calls = copy_run._move, []

    def crash_on_second(*args: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise DbHandlesError("killed")
        real(*args)

    monkeypatch.setattr(copy_run, "_move", crash_on_second)
    with pytest.raises(DbHandlesError, match="killed"):
        _copy(service, a, b, table, move=True, batchSize=4)
    assert len(_rows(service, b, table)) == 8 and len(_rows(service, a, table)) == 7
    monkeypatch.setattr(copy_run, "_move", real)
    result = _copy(service, a, b, table, move=True, batchSize=4)
    assert (result["skipped"], result["copied"], result["conflicts"], result["deleted"]) == (
        4, 3, 0, 7,
    )  # fmt: skip
    assert {rid: r["v"] for rid, r in _rows(service, b, table).items()} == before
    assert _rows(service, a, table) == {}


ENGINES = ["sqlite", pytest.param("postgres", marks=PG)]
COMP_ID = '["2024-05-07",4]'


def _refused(service: Service, command: str, params: dict[str, Any]) -> InvalidParams:
    with pytest.raises(InvalidParams) as caught:
        service.execute(command, params)
    return caught.value


@pytest.mark.parametrize("engine", ENGINES)
def test_a_key_field_that_contradicts_the_id_is_refused_on_create_and_batch(
    service: Service, tmp_path: Path, engine: str
) -> None:
    h = _table(service, tmp_path, "t", engine, "comp", 0)
    base = {"dbHandle": h, "collection": "comp", "id": COMP_ID}
    error = _refused(service, "data/create", {**base, "data": {"d": "2024-05-08", "v": "n"}})
    assert error.field == "data.d" and "is not the key value the id" in error.message
    op = {"op": "create", "collection": "comp", "id": COMP_ID, "data": {"k": 5}}
    error = _refused(service, "data/batch", {"dbHandle": h, "operations": [op]})
    assert error.field == "operations[0].data.k"
    assert error.message.startswith("operations[0] (create): data.k")
    assert _rows(service, h, "comp") == {}
    # The same value is no contradiction, however it is spelled.
    created = service.execute("data/create", {**base, "data": {"d": "2024-05-07", "k": 4}})
    assert created["data"]["d"] == "2024-05-07" and created["data"]["k"] == 4


@pytest.mark.parametrize("engine", ENGINES)
def test_an_update_may_name_key_columns_with_their_values_but_not_change_them(
    service: Service, tmp_path: Path, engine: str
) -> None:
    h = _table(service, tmp_path, "t", engine, "comp", 0)
    base = {"dbHandle": h, "collection": "comp", "id": COMP_ID}
    service.execute("data/create", {**base, "data": {"v": "old"}})
    kept = service.execute("data/update", {**base, "data": {"d": "2024-05-07", "k": 4, "v": "new"}})
    assert kept["data"]["v"] == "new"
    for changed in ({"d": "2024-05-08"}, {"k": 5, "v": "lost"}):
        error = _refused(service, "data/update", {**base, "data": changed})
        assert error.field == "data" and "the key of a record cannot change" in error.message
    assert [(r["d"], r["k"], r["v"]) for r in _rows(service, h, "comp").values()] == [
        ("2024-05-07", 4, "new")
    ]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_copied_record_whose_key_field_contradicts_its_id_is_refused(
    service: Service, tmp_path: Path, engine: str
) -> None:
    b = _table(service, tmp_path, "b", engine, "tk", 0)
    (tmp_path / "a").mkdir()
    a = service.execute("data/open", {"adapter": "memory", "config": {}})["dbHandle"]
    service.execute("data/create", {"dbHandle": a, "collection": "tk", "id": "a",
                                    "data": {"code": "b", "v": "x"}})  # fmt: skip
    error = _refused(service, "data/copy", {"from": {"dbHandle": a, "collection": "tk"},
                                            "to": {"dbHandle": b}})  # fmt: skip
    assert error.field == "data.code" and error.message.startswith('record "a": data.code')
    assert error.message.count("nothing") == 1
    assert _rows(service, b, "tk") == {}


@pytest.mark.parametrize("engine", ENGINES)
def test_a_refused_batch_or_copy_says_once_that_nothing_was_written(
    service: Service, tmp_path: Path, engine: str
) -> None:
    from dbhandles.errors import ConstraintViolation

    b = _table(service, tmp_path, "b", engine, "chk", 0)
    ops = [{"op": "create", "collection": "chk", "id": f"r{i}", "data": {"n": 1 - i}}
           for i in range(3)]  # fmt: skip
    with pytest.raises(ConstraintViolation) as caught:
        service.execute("data/batch", {"dbHandle": b, "operations": ops})
    message = caught.value.message
    assert message.startswith("operations[2] (create): ") and "n_positive" in message
    assert message.endswith("; nothing was applied") and message.count("nothing") == 1
    a = service.execute("data/open", {"adapter": "memory", "config": {}})["dbHandle"]
    service.execute("data/batch", {"dbHandle": a, "operations": ops})
    with pytest.raises(ConstraintViolation) as caught:
        service.execute("data/copy", {"from": {"dbHandle": a, "collection": "chk"},
                                      "to": {"dbHandle": b}})  # fmt: skip
    message = caught.value.message
    assert message.startswith('record "r2": ') and str(caught.value) == message
    assert message.endswith("; nothing of this batch was written")
    assert message.count("nothing") == 1
    assert _rows(service, b, "chk") == {}
