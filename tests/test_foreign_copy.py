"""``data/copy`` with tables dbhandles did not create on either side (issue 15): copies into a
table with a key, moves out of one, re-runs after a crash, constraints, conflicts, read-only kinds.

Tables are made by real tools: ``sqlite3`` for SQLite files, plain SQL through psycopg on the
server the suite starts (``pgserver``). Collections are made by dbhandles. Every pair of
(collection | table) x (sqlite, postgres, memory, json) that can exist is covered by ``PAIRS``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.errors import DbHandlesError
from tests.conftest import adapter_config

PG = pytest.mark.postgres

#: The table every test copies into or out of, as each engine spells it.
SQLITE_TABLE = """
CREATE TABLE notes (id TEXT PRIMARY KEY, n INTEGER NOT NULL CONSTRAINT n_positive CHECK (n >= 0),
                    room TEXT, meta TEXT);
CREATE VIEW note_rooms AS SELECT id, room FROM notes;
CREATE TABLE loose (n INTEGER, room TEXT);
"""
PG_TABLE = """
CREATE TABLE notes (id text PRIMARY KEY, n integer NOT NULL CONSTRAINT n_positive CHECK (n >= 0),
                    room text, meta jsonb);
CREATE VIEW note_rooms AS SELECT id, room FROM notes;
CREATE TABLE loose (n integer, room text);
"""


def _sql(
    adapter: str, folder: Path, script: str, rows: list[tuple[Any, ...]] | None = None
) -> None:
    """Run ``script`` (and insert ``rows`` into notes) with the engine's own tool."""
    if adapter == "sqlite":
        conn = sqlite3.connect(folder / "db.sqlite")
        try:
            conn.executescript(script)
            conn.executemany("INSERT INTO notes VALUES (?, ?, ?, ?)", rows or [])
            conn.commit()
        finally:
            conn.close()
        return
    import psycopg
    from psycopg import sql

    pg = adapter_config("postgres", folder)
    with psycopg.connect(pg["url"], autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(pg["schema"])))
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(pg["schema"])))
        if script:
            conn.execute(script)  # type: ignore[arg-type]
        with conn.cursor() as cursor:
            cursor.executemany("INSERT INTO notes VALUES (%s, %s, %s, %s::jsonb)", rows or [])


def _note(i: int) -> dict[str, Any]:
    return {"n": i, "room": "a" if i % 2 else "b", "meta": {"len": i, "tags": ["x", i]}}


def side(service: Service, tmp_path: Path, name: str, kind: str, adapter: str, n: int) -> str:
    """A handle on a database holding ``n`` notes, in a collection or a table (``kind``)."""
    folder = tmp_path / name
    folder.mkdir()
    if kind == "table":
        import orjson

        rows = [(f"r{i:02}", *_note(i).values()) for i in range(n)]
        rows = [(*r[:3], orjson.dumps(r[3]).decode()) for r in rows]
        _sql(adapter, folder, SQLITE_TABLE if adapter == "sqlite" else PG_TABLE, rows)
        config = adapter_config(adapter, folder)
        config.pop("mode", None)
    else:
        config = adapter_config(adapter, folder)
    handle = str(service.execute("data/open", {"adapter": adapter, "config": config})["dbHandle"])
    if kind == "collection" and n:
        ops = [{"op": "create", "collection": "notes", "id": f"r{i:02}", "data": _note(i)}
               for i in range(n)]  # fmt: skip
        service.execute("data/batch", {"dbHandle": handle, "operations": ops})
    return handle


def records(service: Service, handle: str, collection: str = "notes") -> dict[str, Any]:
    page = service.execute("data/list", {"dbHandle": handle, "collection": collection,
                                         "limit": 500, "orderBy": "n"})  # fmt: skip
    return {str(r["id"]): r for r in page["items"]}


def copy(service: Service, a: str, b: str, **params: Any) -> dict[str, Any]:
    return service.execute("data/copy", {"from": {"dbHandle": a, "collection": "notes",
                                                  **params.pop("source", {})},
                                         "to": {"dbHandle": b}, **params})  # fmt: skip


def _user(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in ("id", "n", "room", "meta")}


SIDES = {
    "sqlite-table": ("table", "sqlite"),
    "postgres-table": ("table", "postgres"),
    "sqlite": ("collection", "sqlite"),
    "postgres": ("collection", "postgres"),
    "memory": ("collection", "memory"),
    "json": ("collection", "json"),
}


def _pair(src: str, dst: str) -> Any:
    marks = [PG] if "postgres" in src or "postgres" in dst else []
    return pytest.param(src, dst, marks=marks, id=f"{src}->{dst}")


#: Every pair with a table on at least one side (collection -> collection is tests/test_copy.py).
PAIRS = [
    *(_pair(src, dst) for src in ("sqlite", "postgres", "memory", "json")
      for dst in ("sqlite-table", "postgres-table")),
    *(_pair(src, dst) for src in ("sqlite-table", "postgres-table")
      for dst in ("sqlite", "postgres", "memory", "json", "sqlite-table", "postgres-table")),
]  # fmt: skip


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_move_between_tables_and_collections(
    service: Service, tmp_path: Path, src: str, dst: str
) -> None:
    a = side(service, tmp_path, "a", *SIDES[src], n=8)
    b = side(service, tmp_path, "b", *SIDES[dst], n=0)
    before = {rid: _user(r) for rid, r in records(service, a).items()}
    result = copy(service, a, b, source={"filter": {"n": {"$lt": 5}}, "orderBy": "-n"},
                  move=True, batchSize=2)  # fmt: skip
    counts = {k: result[k] for k in ("read", "copied", "deleted", "conflicts", "batches")}
    assert counts == {"read": 5, "copied": 5, "deleted": 5, "conflicts": 0, "batches": 3}
    moved = records(service, b)
    assert {rid: _user(r) for rid, r in moved.items()} == {
        rid: r for rid, r in before.items() if r["n"] < 5
    }
    if SIDES[dst][0] == "collection":  # a table's row has no reserved fields: the copy's are new
        assert all(r["version"] >= 1 and r["createdAt"] for r in moved.values())
    else:
        assert all("createdAt" not in r and "version" not in r for r in moved.values())
    assert sorted(records(service, a)) == ["r05", "r06", "r07"]
    again = copy(service, a, b, batchSize=2)
    assert (again["copied"], again["skipped"], again["conflicts"]) == (3, 0, 0)
    assert len(records(service, b)) == 8 and len(records(service, a)) == 3


CRASH_PAIRS = [
    _pair("memory", "sqlite-table"),
    _pair("sqlite-table", "json"),
    _pair("sqlite-table", "postgres-table"),
    _pair("postgres-table", "sqlite-table"),
    _pair("postgres", "postgres-table"),
]


@pytest.mark.parametrize(("src", "dst"), CRASH_PAIRS)
def test_a_move_killed_between_copy_and_delete_completes_on_a_rerun(
    service: Service, tmp_path: Path, src: str, dst: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worst moment: the target committed a batch, the source still holds it."""
    from dbhandles.commands import copy_run

    a = side(service, tmp_path, "a", *SIDES[src], n=11)
    b = side(service, tmp_path, "b", *SIDES[dst], n=0)
    before = {rid: _user(r) for rid, r in records(service, a).items()}
    real, calls = copy_run._move, []

    def crash_on_second(*args: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise DbHandlesError("killed")
        real(*args)

    monkeypatch.setattr(copy_run, "_move", crash_on_second)
    with pytest.raises(DbHandlesError, match="killed"):
        copy(service, a, b, move=True, batchSize=4)
    assert len(records(service, b)) == 8 and len(records(service, a)) == 7
    monkeypatch.setattr(copy_run, "_move", real)
    result = copy(service, a, b, move=True, batchSize=4)
    assert (result["skipped"], result["copied"], result["deleted"]) == (4, 3, 7)
    assert {rid: _user(r) for rid, r in records(service, b).items()} == before  # none doubled
    assert records(service, a) == {}


def test_values_the_table_stores_differently_are_still_equal_on_a_rerun(
    service: Service, tmp_path: Path
) -> None:
    """SQLite stores ``true`` as 1: a re-run compares what the table would store, not the JSON."""
    (tmp_path / "t").mkdir()
    conn = sqlite3.connect(tmp_path / "t" / "db.sqlite")
    conn.execute("CREATE TABLE flags (id TEXT PRIMARY KEY, ok INTEGER, score NUMERIC, at TEXT)")
    conn.close()
    a = side(service, tmp_path, "a", "collection", "memory", n=0)
    b = service.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": str(tmp_path / "t" / "db.sqlite")}}
    )["dbHandle"]
    service.execute("data/batch", {"dbHandle": a, "operations": [
        {"op": "create", "collection": "flags", "id": f"f{i}",
         "data": {"ok": i % 2 == 0, "score": "7", "at": None}} for i in range(4)]})  # fmt: skip
    params = {"from": {"dbHandle": a, "collection": "flags"}, "to": {"dbHandle": b}}
    assert service.execute("data/copy", params)["copied"] == 4
    stored = service.execute("data/read", {"dbHandle": b, "collection": "flags", "id": "f0"})
    assert stored["data"] == {"id": "f0", "ok": 1, "score": 7, "at": None}
    again = service.execute("data/copy", {**params, "move": True})
    assert (again["copied"], again["skipped"], again["conflicts"], again["deleted"]) == (0, 4, 0, 4)


@PG
def test_postgres_types_are_equal_on_a_rerun(service: Service, tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    _sql("postgres", tmp_path / "t", "CREATE TABLE notes (id text PRIMARY KEY, n integer, "
         "at timestamptz, price numeric(10,2), ok boolean, meta jsonb)")  # fmt: skip
    config = adapter_config("postgres", tmp_path / "t")
    b = service.execute("data/open", {"adapter": "postgres", "config": config})["dbHandle"]
    a = side(service, tmp_path, "a", "collection", "json", n=0)
    service.execute("data/create", {"dbHandle": a, "collection": "notes", "id": "x1", "data": {
        "n": 1, "at": "2024-03-01T10:00:00+02:00", "price": "7.5", "ok": True,
        "meta": {"b": 1, "a": [1.0]}}})  # fmt: skip
    assert copy(service, a, b)["copied"] == 1
    row = records(service, b)["x1"]
    assert row["at"] == "2024-03-01T08:00:00.000000Z" and row["price"] == 7.5
    again = copy(service, a, b, move=True)
    assert (again["skipped"], again["conflicts"], again["deleted"]) == (1, 0, 1)


@pytest.mark.parametrize("adapter", ["sqlite", pytest.param("postgres", marks=PG)])
def test_a_constraint_violation_names_constraint_field_and_record_and_writes_nothing_of_its_batch(
    service: Service, tmp_path: Path, adapter: str
) -> None:
    a = side(service, tmp_path, "a", "collection", "sqlite", n=5)
    b = side(service, tmp_path, "b", "table", adapter, n=0)
    service.execute("data/update", {"dbHandle": a, "collection": "notes", "id": "r03",
                                    "data": {"n": -3}})  # fmt: skip
    envelope = service.dispatch("data/copy", {"from": {"dbHandle": a, "collection": "notes"},
                                              "to": {"dbHandle": b}, "batchSize": 2,
                                              "move": True})  # fmt: skip
    assert envelope["code"] == "constraint_violation", envelope
    assert envelope["field"] == "data.n" and "r03" in envelope["error"]
    assert envelope["constraint"] == "check" and envelope["name"] == "n_positive"
    assert envelope["record"] == "r03"
    assert (envelope["copied"], envelope["deleted"]) == (2, 2)  # the first batch only
    assert sorted(records(service, b)) == ["r00", "r01"]
    assert sorted(records(service, a)) == ["r02", "r03", "r04"]


@pytest.mark.parametrize("adapter", ["sqlite", pytest.param("postgres", marks=PG)])
def test_a_field_that_is_no_column_is_refused_naming_it(
    service: Service, tmp_path: Path, adapter: str
) -> None:
    a = side(service, tmp_path, "a", "collection", "memory", n=3)
    b = side(service, tmp_path, "b", "table", adapter, n=0)
    service.execute("data/update", {"dbHandle": a, "collection": "notes", "id": "r01",
                                    "data": {"nickname": "x"}})  # fmt: skip
    envelope = service.dispatch("data/copy", {"from": {"dbHandle": a, "collection": "notes"},
                                              "to": {"dbHandle": b}})  # fmt: skip
    assert (envelope["code"], envelope["field"]) == ("invalid_params", "data.nickname")
    assert "r01" in envelope["error"] and envelope["copied"] == 0
    assert records(service, b) == {}


@pytest.mark.parametrize("adapter", ["sqlite", pytest.param("postgres", marks=PG)])
def test_conflicts_with_rows_of_a_table(service: Service, tmp_path: Path, adapter: str) -> None:
    a = side(service, tmp_path, "a", "collection", "json", n=3)
    b = side(service, tmp_path, "b", "table", adapter, n=0)
    service.execute("data/create", {"dbHandle": b, "collection": "notes", "id": "r01",
                                    "data": {"n": 100, "room": "z"}})  # fmt: skip
    skipped = copy(service, a, b, move=True)
    assert (skipped["copied"], skipped["conflicts"], skipped["conflictIds"]) == (2, 1, ["r01"])
    assert sorted(records(service, a)) == ["r01"] and records(service, b)["r01"]["n"] == 100
    aborted = service.dispatch("data/copy", {"from": {"dbHandle": a, "collection": "notes"},
                                             "to": {"dbHandle": b}, "onConflict": "abort"})  # fmt: skip
    assert aborted["code"] == "conflict" and "r01" in aborted["error"]
    replaced = copy(service, a, b, onConflict="replace", move=True)
    assert (replaced["replaced"], replaced["deleted"]) == (1, 1)
    assert _user(records(service, b)["r01"]) == {"id": "r01", **_note(1)}
    assert records(service, a) == {}


@pytest.mark.parametrize("adapter", ["sqlite", pytest.param("postgres", marks=PG)])
def test_views_and_keyless_tables_stay_read_only(
    service: Service, tmp_path: Path, adapter: str
) -> None:
    a = side(service, tmp_path, "a", "table", adapter, n=2)
    b = side(service, tmp_path, "b", "collection", "memory", n=2)
    for name in ("note_rooms", "loose"):
        into = service.dispatch("data/copy", {"from": {"dbHandle": b, "collection": "notes"},
                                              "to": {"dbHandle": a, "collection": name}})  # fmt: skip
        assert (into["code"], into["field"]) == ("read_only", "to.collection"), into
        moved = service.dispatch("data/copy", {"from": {"dbHandle": a, "collection": name},
                                               "to": {"dbHandle": b, "collection": "out"},
                                               "move": True})  # fmt: skip
        assert (moved["code"], moved["field"]) == ("read_only", "move"), moved
    # Copied without move, a view's rows go into a collection.
    view = service.execute("data/copy", {"from": {"dbHandle": a, "collection": "note_rooms"},
                                         "to": {"dbHandle": b, "collection": "rooms"}})  # fmt: skip
    assert view["copied"] == 2


def test_a_move_out_of_an_integer_keyed_table_deletes_by_key(
    service: Service, tmp_path: Path
) -> None:
    path = tmp_path / "legacy.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT)")
    conn.executemany("INSERT INTO events VALUES (?, ?)", [(i, f"k{i}") for i in range(1, 8)])
    conn.commit()
    conn.close()
    a = service.execute("data/open", {"adapter": "sqlite", "config": {"path": str(path)}})
    b = side(service, tmp_path, "b", "collection", "json", n=0)
    params = {"from": {"dbHandle": a["dbHandle"], "collection": "events",
                       "filter": {"id": {"$gt": 4}}}, "to": {"dbHandle": b}, "move": True}  # fmt: skip
    assert service.execute("data/copy", params)["deleted"] == 3
    conn = sqlite3.connect(path)
    try:
        assert [r[0] for r in conn.execute("SELECT id FROM events ORDER BY id")] == [1, 2, 3, 4]
    finally:
        conn.close()
    copies = records(service, b, "events")
    assert sorted(copies) == ["5", "6", "7"] and copies["5"]["kind"] == "k5"


def test_an_archive_into_the_original_systems_table_keeps_times_and_versions(
    service: Service, tmp_path: Path
) -> None:
    """With ``fieldNames: camel`` a table keeps createdAt/updatedAt/version: copied as they are."""
    path = tmp_path / "original.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE chat_messages (id TEXT PRIMARY KEY, room_id TEXT NOT NULL, "
                 "created_at TEXT NOT NULL, updated_at TEXT NOT NULL, version INTEGER NOT NULL)")  # fmt: skip
    conn.close()
    config = {"path": str(path), "fieldNames": "camel"}
    b = service.execute("data/open", {"adapter": "sqlite", "config": config})["dbHandle"]
    a = side(service, tmp_path, "a", "collection", "json", n=0)
    ops = [{"op": "create", "collection": "chatMessages", "id": f"m{i}", "data": {"roomId": "r"}}
           for i in range(3)]  # fmt: skip
    service.execute("data/batch", {"dbHandle": a, "operations": ops})
    service.execute("data/update", {"dbHandle": a, "collection": "chatMessages", "id": "m1",
                                    "data": {"roomId": "s"}})  # fmt: skip
    source = records(service, a, "chatMessages")
    params = {"from": {"dbHandle": a, "collection": "chatMessages"}, "to": {"dbHandle": b}}
    assert service.execute("data/copy", params)["copied"] == 3
    assert records(service, b, "chatMessages") == source  # same fields, times and versions
    again = service.execute("data/copy", {**params, "move": True})
    assert (again["skipped"], again["deleted"]) == (3, 3)
    conn = sqlite3.connect(path)
    try:
        stored = conn.execute("SELECT room_id, version, created_at FROM chat_messages "
                              "WHERE id = 'm1'").fetchone()  # fmt: skip
    finally:
        conn.close()
    assert stored == ("s", 2, source["m1"]["createdAt"])
