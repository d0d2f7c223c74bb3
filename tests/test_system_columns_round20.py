"""Issue #14, outside round 20: system columns another tool wrote into a SQLite collection (an id
that is a BLOB, empty, holding U+0000, too long; a version that is no integer from 1 to
``MAX_VERSION``; a createdAt/updatedAt that is not the timestamp dbhandles writes). Such a row is
unreadable as one whose ``data`` is: left out of every listing, count, facet, export, copy and
move, counted in ``unreadable``, named by a read (``query_failed``), never written back; a copy
meeting one in its target counts a conflict and goes on. A foreign integer key takes the whole
int64 range. (JSON files: tests/test_json_unkept_values.py; docs/filters.md "Values".)"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.adapters.sqlite_values import system_problem
from tests.foreign_rows import open_sqlite
from tests.unreadable_rows import assert_every_door_names, query_pages

T = "'2026-01-01T00:00:00.000Z'"
#: Rows another tool inserted, as SQL values (id, createdAt, updatedAt, version), by a name.
BAD_ROWS: dict[str, str] = {
    "blob id": f"x'6869', {T}, {T}, 1",
    "empty id": f"'', {T}, {T}, 1",
    "nul id": f"'a' || char(0) || 'b', {T}, {T}, 1",
    "long id": f"'{'x' * 513}', {T}, {T}, 1",
    "version text": f"'v1', {T}, {T}, 'abc'",
    "version real": f"'v2', {T}, {T}, 1.5",
    "version negative": f"'v3', {T}, {T}, -5",
    "version zero": f"'v4', {T}, {T}, 0",
    "version past max": f"'v5', {T}, {T}, 2147483648",
    "created json": f"'t1', '{{\"a\":1}}', {T}, 1",
    "created number": f"'t2', 5, {T}, 1",
    "updated other form": f"'t3', {T}, '2026-01-01 00:00:00', 1",
}
#: The ids a read can name (text), with a word its answer gives.
NAMED = {"v1": 'version "abc"', "v2": "version 1.5", "v3": "version -5", "v4": "version 0",
         "v5": "version 2147483648", "t1": "createdAt", "t2": "createdAt", "t3": "updatedAt"}  # fmt: skip


def _database(service: Service, path: Path) -> None:
    db = open_sqlite(service, {"path": str(path), "mode": "create"})
    for record_id, n in [("a", 1), ("b", 2)]:
        service.execute("data/create", {"dbHandle": db, "collection": "c", "id": record_id,
                                        "data": {"n": n}})  # fmt: skip
    service.execute("data/close", {"dbHandle": db})
    conn = sqlite3.connect(path)
    try:  # another tool, with the collection's own columns
        for values in BAD_ROWS.values():
            conn.execute(f"INSERT INTO c (id, created_at, updated_at, version, data) "
                         f"VALUES ({values}, '{{\"n\":2}}')")  # fmt: skip
        conn.commit()
    finally:
        conn.close()


def _shared(service: Service, tmp_path: Path) -> tuple[Path, list[Any]]:
    """``tmp_path/shared.sqlite`` made by :func:`_database`, and its rows as stored then."""
    path = tmp_path / "shared.sqlite"
    _database(service, path)
    return path, _stored(path)


def _stored(path: Path) -> list[Any]:
    conn = sqlite3.connect(path)
    try:
        return sorted(conn.execute("SELECT * FROM c").fetchall(), key=repr)
    finally:
        conn.close()


@pytest.mark.parametrize("row_filter", [False, True])
def test_every_listing_door_leaves_out_rows_whose_system_columns_are_foreign(
    service: Service, tmp_path: Path, row_filter: bool
) -> None:
    path, before = _shared(service, tmp_path)
    permissions = {"rowFilter": {"n": {"$gte": 1}}} if row_filter else {}
    db = open_sqlite(service, {"path": str(path)}, **permissions)
    ask = lambda command, **p: service.execute(command, {"dbHandle": db, "collection": "c", **p})  # noqa: E731
    listed = ask("data/list", orderBy="id")
    assert [r["id"] for r in listed["items"]] == ["a", "b"]
    assert listed["unreadable"] == (None if row_filter else len(BAD_ROWS))
    assert [r["id"] for r in ask("data/list", filter={"n": 2})["items"]] == ["b"]
    assert [r["id"] for r in ask("data/list", filter={"version": {"$gte": 1}})["items"]] == [
        "a",
        "b",
    ]
    assert ask("data/list", orderBy="-createdAt")["count"] == 2
    assert ask("data/count")["total"] == 2
    if not row_filter:
        schema = service.execute("data/schema", {"dbHandle": db, "collection": "c"})
        assert schema["recordCount"] == 2 and schema["unreadable"] == len(BAD_ROWS), schema
    opened = ask("data/query-open", pageSize=1, orderBy="id")
    assert query_pages(service, opened["queryHandle"]) == ["a", "b"]
    assert ask("data/count", filter={"n": 2})["total"] == 1
    groups = ask("data/count", groupBy=["n"])["groups"]
    assert {g["key"]["n"]: g["count"] for g in groups} == {1: 1, 2: 1}
    if not row_filter:
        out = tmp_path / "out.jsonl"
        assert ask("data/export", output=str(out))["exported"] == 2
        assert len(out.read_bytes().splitlines()) == 2
    target = open_sqlite(service, {"path": str(tmp_path / "t.sqlite"), "mode": "create"})
    copied = service.execute("data/copy", {"from": {"dbHandle": db, "collection": "c"},
                                           "to": {"dbHandle": target, "collection": "c"}})  # fmt: skip
    assert copied["copied"] == 2
    if not row_filter:
        moved = service.execute("data/copy", {"from": {"dbHandle": db, "collection": "c"},
                                              "to": {"dbHandle": db, "collection": "d"},
                                              "move": True, "batchSize": 1})  # fmt: skip
        assert moved["deleted"] == 2 and moved["batches"] >= 2
        before = [row for row in before if row[0] not in ("a", "b")]
    assert _stored(path) == before  # the foreign rows stay as written


@pytest.mark.parametrize("record_id", sorted(NAMED))
def test_a_read_or_update_names_the_row_and_writes_nothing(
    service: Service, tmp_path: Path, record_id: str
) -> None:
    path, before = _shared(service, tmp_path)
    db = open_sqlite(service, {"path": str(path)})
    assert_every_door_names(
        service, db, record_id, f'record "{record_id}" of collection "c"', NAMED[record_id]
    )
    assert _stored(path) == before
    hidden = open_sqlite(service, {"path": str(path)}, rowFilter={"n": 2})
    missing = service.dispatch("data/read", {"dbHandle": hidden, "collection": "c", "id": "zz"})
    answer = service.dispatch("data/read", {"dbHandle": hidden, "collection": "c", "id": record_id})
    assert answer["found"] is False and missing["found"] is False  # behind a row filter: missing


@pytest.mark.parametrize("on_conflict", ["skip", "abort", "replace"])
def test_a_copy_meeting_an_unreadable_target_row_counts_a_conflict_and_goes_on(
    service: Service, tmp_path: Path, on_conflict: str
) -> None:
    path, before = _shared(service, tmp_path)
    target = open_sqlite(service, {"path": str(path)})
    source = open_sqlite(service, {"path": str(tmp_path / "s.sqlite"), "mode": "create"})
    for record_id in ["v1", "new"]:
        service.execute("data/create", {"dbHandle": source, "collection": "c", "id": record_id,
                                        "data": {"n": 9}})  # fmt: skip
    answer = service.dispatch("data/copy", {"from": {"dbHandle": source, "collection": "c"},
                                            "to": {"dbHandle": target, "collection": "c"},
                                            "onConflict": on_conflict})  # fmt: skip
    if on_conflict == "abort":
        assert answer["code"] == "conflict" and '"v1"' in answer["error"], answer
        assert "cannot read" in answer["error"]
    else:
        assert answer["conflictIds"] == ["v1"] and answer["copied"] == 1, answer
        assert answer["replaced"] == 0
    stored = _stored(path)
    assert [row for row in stored if row[0] != "new"] == before  # the unreadable row as written


def test_the_python_and_sql_rules_agree(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "rule.sqlite")
    try:
        from dbhandles.adapters.sqlite_values import SYSTEM_READABLE

        conn.execute("CREATE TABLE c (id, created_at, updated_at, version)")
        for values in [*BAD_ROWS.values(), f"'ok', {T}, {T}, 1", f"'ok2', {T}, {T}, 2147483647"]:
            conn.execute(f"INSERT INTO c VALUES ({values})")
        for row in conn.execute(
            f"SELECT id, created_at, updated_at, version, {SYSTEM_READABLE} FROM c"
        ):
            assert (system_problem(*row[:4]) is None) == bool(row[4]), row
    finally:
        conn.close()


def test_a_foreign_integer_key_takes_the_whole_int64_range(
    service: Service, tmp_path: Path
) -> None:
    """foreign-tables.md: an integer key is read, updated and deleted by that JSON number or its
    text, -2**63 included (it is listed as that number)."""
    path = tmp_path / "ends.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE ends (id INTEGER PRIMARY KEY, n INTEGER)")
    conn.executemany("INSERT INTO ends VALUES (?, ?)", [(-(2**63), 1), (2**63 - 1, 2)])
    conn.commit()
    conn.close()
    db = open_sqlite(service, {"path": str(path)})
    base = {"dbHandle": db, "collection": "ends"}
    listed = service.execute("data/list", {**base, "orderBy": "id"})["items"]
    assert [r["id"] for r in listed] == [-(2**63), 2**63 - 1]
    for key in [-(2**63), str(-(2**63)), 2**63 - 1]:
        assert service.execute("data/read", {**base, "id": key})["found"], key
    service.execute("data/update", {**base, "id": -(2**63), "data": {"n": 5}})
    assert service.execute("data/read", {**base, "id": -(2**63)})["data"]["n"] == 5
    assert service.execute("data/delete", {**base, "id": -(2**63)})["deleted"]
    for beyond in [-(2**63) - 1, 2**63]:
        answer = service.dispatch("data/read", {**base, "id": beyond})
        assert answer["code"] == "invalid_params" and "-2**63" in answer["error"], answer


@pytest.mark.parametrize("on_conflict", ["skip", "replace"])
def test_a_copy_into_a_json_file_holding_an_id_twice_is_refused_as_read_only(
    service: Service, tmp_path: Path, on_conflict: str
) -> None:
    """The same rule on the json adapter: the id's records are unreadable (given twice), and the
    file read-only, so the copy is refused before it writes (copy.md)."""
    stamp = "2026-01-01T00:00:00.000Z"
    record = {"createdAt": stamp, "updatedAt": stamp, "version": 1}
    path = tmp_path / "twice.json"
    path.write_text(json.dumps({"format": "dbhandles-json", "version": 1, "collections": {
        "c": [{"id": "a", "n": 1, **record}, {"id": "a", "n": 2, **record}]}}))  # fmt: skip
    before = path.read_bytes()
    target = service.execute("data/open", {"adapter": "json", "config": {"path": str(path)}})
    source = service.execute("data/open", {"adapter": "memory", "config": {}})["dbHandle"]
    service.execute(
        "data/create", {"dbHandle": source, "collection": "c", "id": "a", "data": {"n": 3}}
    )
    answer = service.dispatch("data/copy", {"from": {"dbHandle": source, "collection": "c"},
                                            "to": {"dbHandle": target["dbHandle"], "collection": "c"},
                                            "onConflict": on_conflict})  # fmt: skip
    assert answer["code"] == "read_only" and "given 2 times" in answer["error"], answer
    assert path.read_bytes() == before
