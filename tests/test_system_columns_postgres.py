"""Issue #14, outside round 20, on PostgreSQL: system columns another tool wrote into a collection
table (an empty id or one past 512 characters; a version below 1, or NULL in a table another tool
made without ``NOT NULL``; a ``created_at`` / ``updated_at`` that is not the timestamp dbhandles
writes). Such a row is unreadable as one whose ``data`` is: left out of every listing, count,
facet, cursor, schema, export, copy and move, counted in ``unreadable``, named by a read and an
update (``query_failed`` naming the field), answered as a missing id behind a row filter, never
written back; a copy meeting one in its target counts a conflict and goes on (docs/filters.md
"Values"; tests/test_system_columns_round20.py for SQLite)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dbhandles import Service
from dbhandles.values import MAX_VERSION
from tests.unreadable_rows import assert_every_door_names, query_pages

pytestmark = pytest.mark.postgres

T = "2026-01-01T00:00:00.000Z"
#: Rows another tool inserted: id -> (createdAt, updatedAt, version); data is ``{"n": 2}``.
BAD_ROWS: dict[str, tuple[Any, Any, Any]] = {
    "": (T, T, 1),
    "x" * 513: (T, T, 1),
    "v0": (T, T, 0),
    "vneg": (T, T, -5),
    "vlow": (T, T, -(2**31)),
    "cjson": ('{"a":1}', T, 1),
    "cspace": ("2026-01-01 00:00:00.000Z", T, 1),
    "cdate": ("2026-01-01", T, 1),
    "cmore": (T + "x", T, 1),
    "cempty": ("", T, 1),
    "uform": (T, "2026-01-01T00:00:00Z", 1),
    "uline": (T, T + "\n", 1),
}
#: The ids a read can name, with the words its answer gives.
NAMED = {
    "v0": "its version 0 is not an integer from 1 to 2147483647",
    "vneg": "its version -5 is not",
    "vlow": "its version -2147483648 is not",
    "cjson": 'its createdAt "{\\"a\\":1}" is not a timestamp as dbhandles writes one',
    "cspace": 'its createdAt "2026-01-01 00:00:00.000Z" is not',
    "cdate": 'its createdAt "2026-01-01" is not',
    "cmore": "its createdAt",
    "cempty": 'its createdAt "" is not',
    "uform": 'its updatedAt "2026-01-01T00:00:00Z" is not',
    "uline": "its updatedAt",
}
#: Rows another tool wrote that are read in full: the edges of each bound.
EDGES: dict[str, tuple[Any, Any, Any]] = {
    "y" * 512: (T, T, 1),
    "top": ("9999-12-31T23:59:59.999Z", "0000-01-01T00:00:00.000Z", MAX_VERSION),
}


def _connect(pg: dict[str, Any]) -> psycopg.Connection[Any]:
    conn = psycopg.connect(pg["url"], autocommit=True)
    conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(pg["schema"])))
    return conn


def _database(service: Service, tmp_path: Path) -> dict[str, Any]:
    from tests.pgserver import postgres_config

    pg = postgres_config(tmp_path)
    db = service.execute("data/open", {"adapter": "postgres", "config": pg})["dbHandle"]
    for record_id, n in [("a", 1), ("b", 2)]:
        service.execute("data/create", {"dbHandle": db, "collection": "c", "id": record_id,
                                        "data": {"n": n}})  # fmt: skip
    service.execute("data/close", {"dbHandle": db})
    with _connect(pg) as conn:  # another tool, with the collection's own columns
        for record_id, (created, updated, version) in {**BAD_ROWS, **EDGES}.items():
            conn.execute(
                "INSERT INTO c (id, data, created_at, updated_at, version) "
                "VALUES (%s, '{\"n\": 2}', %s, %s, %s)",
                (record_id, created, updated, version),
            )
    return pg


def _stored(pg: dict[str, Any], table: str = "c") -> list[Any]:
    with _connect(pg) as conn:
        rows = conn.execute(sql.SQL("SELECT id, data::text, created_at, updated_at, version "
                                    "FROM {}").format(sql.Identifier(table))).fetchall()  # fmt: skip
    return sorted(rows, key=repr)


def _open(service: Service, pg: dict[str, Any], **permissions: Any) -> str:
    params: dict[str, Any] = {"adapter": "postgres", "config": {**pg, "mode": "readwrite"}}
    if permissions:
        params["permissions"] = permissions
    return str(service.execute("data/open", params)["dbHandle"])


SHOWN = sorted(["a", "b", *EDGES])


@pytest.mark.parametrize("row_filter", [False, True])
def test_every_listing_door_leaves_out_rows_whose_system_columns_are_foreign(
    service: Service, tmp_path: Path, row_filter: bool
) -> None:
    pg = _database(service, tmp_path)
    before = _stored(pg)
    permissions = {"rowFilter": {"n": {"$gte": 1}}} if row_filter else {}
    db = _open(service, pg, **permissions)
    ask = lambda command, **p: service.execute(command, {"dbHandle": db, "collection": "c", **p})  # noqa: E731
    listed = ask("data/list", orderBy="id")
    assert [r["id"] for r in listed["items"]] == SHOWN
    assert listed["unreadable"] == (None if row_filter else len(BAD_ROWS))
    assert sorted(r["id"] for r in ask("data/list", filter={"n": 2})["items"]) == SHOWN[1:]
    by_version = ask("data/list", filter={"version": {"$lte": 1}}, orderBy="id")["items"]
    assert [r["id"] for r in by_version] == ["a", "b", "y" * 512]
    assert [r["id"] for r in ask("data/list", orderBy="-createdAt", limit=1)["items"]] == ["top"]
    assert ask("data/list", orderBy="updatedAt")["count"] == len(SHOWN)
    assert ask("data/count")["total"] == len(SHOWN)
    assert ask("data/count", filter={"n": 2})["total"] == len(SHOWN) - 1
    groups = ask("data/count", groupBy=["n"])["groups"]
    assert {g["key"]["n"]: g["count"] for g in groups} == {1: 1, 2: len(SHOWN) - 1}
    schema = ask("data/schema")
    assert schema["recordCount"] == len(SHOWN)
    assert schema["unreadable"] == (None if row_filter else len(BAD_ROWS))
    opened = ask("data/query-open", pageSize=1, orderBy="id")
    assert query_pages(service, opened["queryHandle"]) == SHOWN
    if not row_filter:  # export works on whole collections: refused through a row filter
        out = tmp_path / "out.jsonl"
        assert ask("data/export", output=str(out))["exported"] == len(SHOWN)
        assert len(out.read_bytes().splitlines()) == len(SHOWN)
    target = service.execute("data/open", {"adapter": "memory", "config": {}})["dbHandle"]
    copied = service.execute("data/copy", {"from": {"dbHandle": db, "collection": "c"},
                                           "to": {"dbHandle": target, "collection": "c"}})  # fmt: skip
    assert copied["copied"] == len(SHOWN)
    if not row_filter:
        moved = service.execute("data/copy", {"from": {"dbHandle": db, "collection": "c"},
                                              "to": {"dbHandle": db, "collection": "d"},
                                              "move": True, "batchSize": 1})  # fmt: skip
        assert moved["deleted"] == len(SHOWN) and moved["batches"] >= 2
        assert sorted(row[0] for row in _stored(pg, "d")) == SHOWN
        before = [row for row in before if row[0] not in SHOWN]
    assert _stored(pg) == before  # the foreign rows stay as written


@pytest.mark.parametrize("record_id", sorted(NAMED))
def test_a_read_or_update_names_the_field_and_writes_nothing(
    service: Service, tmp_path: Path, record_id: str
) -> None:
    pg = _database(service, tmp_path)
    before = _stored(pg)
    db = _open(service, pg)
    base = {"dbHandle": db, "collection": "c", "id": record_id}
    assert_every_door_names(
        service, db, record_id, f'record "{record_id}" of collection "c": ', NAMED[record_id]
    )
    assert _stored(pg) == before
    hidden = _open(service, pg, rowFilter={"n": 2})
    for door in ("data/read", "data/update", "data/delete"):
        extra = {"data": {"q": 1}} if door == "data/update" else {}
        params = {"dbHandle": hidden, "collection": "c", **extra}
        missing = service.dispatch(door, {**params, "id": "zz"})
        answer = service.dispatch(door, {**params, "id": record_id})
        for envelope in (missing, answer):
            envelope.pop("timestamp", None)
        assert repr(answer).replace(record_id, "ID") == repr(missing).replace("zz", "ID"), door
    assert _stored(pg) == before
    # Without a row filter a delete takes the row away: how a user clears what another tool wrote.
    deleted = service.execute("data/delete", base)
    assert deleted["deleted"] is True
    assert _stored(pg) == [row for row in before if row[0] != record_id]


def test_a_table_another_tool_made_without_not_null_leaves_its_null_rows_out(
    service: Service, tmp_path: Path
) -> None:
    """The collection's shape does not hold ``NOT NULL``: a NULL in any column is unreadable
    (``data`` NULL included), named by a read, never a crash."""
    from tests.pgserver import postgres_schema

    pg = postgres_schema(
        tmp_path,
        'CREATE TABLE c (id text COLLATE "C" PRIMARY KEY, data jsonb, created_at text, '
        "updated_at text, version integer)",
        f"""INSERT INTO c VALUES ('ok', '{{"n": 1}}', '{T}', '{T}', 1),
            ('nv', '{{"n": 1}}', '{T}', '{T}', NULL), ('nc', '{{"n": 1}}', NULL, '{T}', 1),
            ('nu', '{{"n": 1}}', '{T}', NULL, 1), ('nd', NULL, '{T}', '{T}', 1)""",
    )
    db = _open(service, pg)
    base = {"dbHandle": db, "collection": "c"}
    listed = service.execute("data/list", base)
    assert [r["id"] for r in listed["items"]] == ["ok"] and listed["unreadable"] == 4
    assert service.execute("data/count", base)["total"] == 1
    words = {"nv": "its version null is not", "nc": "its createdAt null is not",
             "nu": "its updatedAt null is not", "nd": "is SQL NULL, not a JSON object"}  # fmt: skip
    for record_id, said in words.items():
        answer = service.dispatch("data/read", {**base, "id": record_id})
        assert answer["code"] == "query_failed" and said in answer["error"], answer


@pytest.mark.parametrize("on_conflict", ["skip", "abort", "replace"])
def test_a_copy_meeting_an_unreadable_target_row_counts_a_conflict_and_goes_on(
    service: Service, tmp_path: Path, on_conflict: str
) -> None:
    pg = _database(service, tmp_path)
    before = _stored(pg)
    target = _open(service, pg)
    source = service.execute("data/open", {"adapter": "memory", "config": {}})["dbHandle"]
    for record_id in ["v0", "cdate", "new"]:
        service.execute("data/create", {"dbHandle": source, "collection": "c", "id": record_id,
                                        "data": {"n": 9}})  # fmt: skip
    answer = service.dispatch("data/copy", {"from": {"dbHandle": source, "collection": "c"},
                                            "to": {"dbHandle": target, "collection": "c"},
                                            "onConflict": on_conflict})  # fmt: skip
    if on_conflict == "abort":
        assert answer["code"] == "conflict" and "cannot read" in answer["error"], answer
    else:
        assert sorted(answer["conflictIds"]) == ["cdate", "v0"], answer
        assert answer["copied"] == 1 and answer["replaced"] == 0, answer
    stored = _stored(pg)
    assert [row for row in stored if row[0] != "new"] == before  # the unreadable rows as written
