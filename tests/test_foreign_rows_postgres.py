"""Issue #14, outside round 7: rows another tool wrote into a PostgreSQL collection that dbhandles
cannot read in full (a number past the double range or past 64 bits, which ``jsonb`` keeps as
``numeric``; a reserved field such as ``id`` contradicting the row's column; nesting deeper than
create allows; no object). As on SQLite, such a row is unreadable on every door: named by
``data/read`` and refused by an update without a row filter, answered as a missing id behind one,
left out of every listing, count, group, cursor, schema, export, copy and move, counted in
``unreadable`` (docs/filters.md "Values"; ``tests/test_foreign_rows_round16.py`` for SQLite)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dbhandles import Service
from dbhandles.values import MAX_DEPTH
from tests.unreadable_rows import (
    ID_DOORS,
    assert_answers_as_missing,
    assert_every_door_names,
    id_doors,
    ids,
    list_pages,
    nest,
    query_pages,
)

pytestmark = pytest.mark.postgres
#: ``createdAt`` / ``updatedAt`` as dbhandles writes them: another text makes the row unreadable.
STAMP = "2026-01-01T00:00:00.000Z"


#: What another tool wrote over rows dbhandles made, by id; each names alice as its owner.
UNREADABLE: dict[str, str] = {
    "e400": '{"owner": "alice", "n": 1e400}',
    "neg308": '{"owner": "alice", "n": [1, {"m": -2e308}]}',
    "u64": '{"owner": "alice", "n": 18446744073709551616}',
    "p63": '{"owner": "alice", "n": 9223372036854775808}',
    "m63": '{"owner": "alice", "n": -9223372036854775809}',
    "big_float": '{"owner": "alice", "n": 1.5e300}',
    # Numbers a double rounds: read as 0.0, 1.0, 2.0**63 and 0.1 while filters compare the decimal.
    "tiny": '{"owner": "alice", "n": 1e-400}',
    "one_plus": '{"owner": "alice", "n": 1.00000000000000000001}',
    "p63_half": '{"owner": "alice", "n": 9223372036854775808.5}',
    "tenth_plus": '{"owner": "alice", "n": [0.1000000000000000000001]}',
    "resid": '{"id": "zz", "owner": "alice", "label": "a"}',
    "ver": '{"owner": "alice", "version": 99}',
    "made": '{"owner": "alice", "createdAt": "2000-01-01T00:00:00.000Z"}',
    "upd": '{"owner": "alice", "updatedAt": "2000-01-01T00:00:00.000Z"}',
    "deep64": '{"owner": "alice", "x": ' + nest(MAX_DEPTH, "0") + "}",
    "deep65": '{"owner": "alice", "x": ' + nest(MAX_DEPTH + 1) + "}",
    "deep100": '{"owner": "alice", "x": ' + nest(100) + "}",
    "array": '[{"owner": "alice"}]',
    "scalar": '"alice"',
}
#: Rows read in full though another tool wrote them: the edges of each bound.
READABLE_FOREIGN = {
    "highest": '{"owner": "alice", "n": 9223372036854775807}',
    "deep63": '{"owner": "alice", "x": ' + nest(MAX_DEPTH - 1, "0") + "}",
    "deep64empty": '{"owner": "alice", "x": ' + nest(MAX_DEPTH) + "}",
    # Numbers the reader keeps exactly: the shortest text of a double, however spelled; the first
    # lies halfway between two doubles, 7.05109937377281e+16 as dbhandles writes it.
    "halfway": '{"owner": "alice", "m": 70510993737728100.0}',
    "trailing": '{"owner": "alice", "m": [1.50, 5e-324, 0.30000000000000004]}',
}
ALICE = sorted(["a1", "a2", *READABLE_FOREIGN])
READABLE = sorted([*ALICE, "b1"])


def _connect(pg: dict[str, Any]) -> psycopg.Connection[Any]:
    conn = psycopg.connect(pg["url"], autocommit=True)
    conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(pg["schema"])))
    return conn


def _database(service: Service, tmp_path: Path) -> dict[str, Any]:
    from tests.pgserver import postgres_config

    pg = postgres_config(tmp_path)
    db = service.execute("data/open", {"adapter": "postgres", "config": pg})["dbHandle"]
    for record_id in [*READABLE, *UNREADABLE]:
        owner = "bob" if record_id == "b1" else "alice"
        service.execute("data/create", {"dbHandle": db, "collection": "c", "id": record_id,
                                        "data": {"owner": owner, "n": len(record_id)}})  # fmt: skip
    service.execute("data/close", {"dbHandle": db})
    with _connect(pg) as conn:  # another tool
        for record_id, text in {**UNREADABLE, **READABLE_FOREIGN}.items():
            conn.execute("UPDATE c SET data = %s::jsonb WHERE id = %s", (text, record_id))
    return pg


def _stored(pg: dict[str, Any]) -> dict[str, str]:
    with _connect(pg) as conn:
        return dict(conn.execute("SELECT id, data::text FROM c").fetchall())


def _open(service: Service, pg: dict[str, Any], **permissions: Any) -> str:
    params: dict[str, Any] = {"adapter": "postgres", "config": {**pg, "mode": "readwrite"}}
    if permissions:
        params["permissions"] = permissions
    return str(service.execute("data/open", params)["dbHandle"])


@pytest.mark.parametrize("row_filter", [False, True])
def test_every_listing_door_leaves_out_rows_not_read_in_full(
    service: Service, tmp_path: Path, row_filter: bool
) -> None:
    pg = _database(service, tmp_path)
    before = _stored(pg)
    permissions = {"rowFilter": {"owner": "alice"}} if row_filter else {}
    db = _open(service, pg, **permissions)
    shown = ALICE if row_filter else READABLE
    ask = lambda command, **p: service.execute(command, {"dbHandle": db, "collection": "c", **p})  # noqa: E731
    listed = ask("data/list", orderBy="id")
    assert ids(listed["items"]) == sorted(shown)
    assert listed["count"] == len(shown)
    assert listed["unreadable"] == (None if row_filter else len(UNREADABLE))
    assert all("zz" not in str(r) for r in listed["items"])
    assert ids(ask("data/list", filter={"owner": "alice"}, orderBy="id")["items"]) == ALICE
    numbered = [i for i in ["a1", "a2", "b1", "highest"] if i in shown]
    assert ids(ask("data/list", filter={"n": {"$gte": 0}}, orderBy=["n", "id"])["items"]) == sorted(
        numbered, key=lambda i: (2**63 if i == "highest" else len(i), i)
    )
    assert ids(ask("data/list", filter={"id": "zz"})["items"]) == []
    assert sorted(ids(ask("data/list", orderBy=["-n", "id"])["items"])) == sorted(shown)
    assert list_pages(service, db, orderBy="id") == sorted(shown)
    assert list_pages(service, db, orderBy=["n", "id"]) == ids(
        ask("data/list", orderBy=["n", "id"])["items"]
    )
    assert list_pages(service, db, orderBy=["-n", "id"]) == ids(
        ask("data/list", orderBy=["-n", "id"])["items"]
    )
    assert ids(ask("data/list", filter={"n": 0})["items"]) == []
    assert ids(ask("data/list", filter={"n": 1.0})["items"]) == []
    assert sorted(list_pages(service, db, orderBy=["-owner", "n"])) == sorted(shown)
    assert ask("data/count")["total"] == len(shown)
    assert ask("data/count", filter={"owner": "alice"})["total"] == len(ALICE)
    groups = ask("data/count", groupBy=["owner"])["groups"]
    expected = {"alice": len(ALICE)} if row_filter else {"alice": len(ALICE), "bob": 1}
    assert {g["key"]["owner"]: g["count"] for g in groups} == expected
    schema = ask("data/schema")
    assert schema["recordCount"] == len(shown)
    assert schema["unreadable"] == (None if row_filter else len(UNREADABLE))
    opened = ask("data/query-open", pageSize=2, orderBy="id")
    assert query_pages(service, opened["queryHandle"]) == sorted(shown)
    if not row_filter:  # export works on whole collections: refused through a row filter
        out = tmp_path / "out.jsonl"
        assert ask("data/export", output=str(out))["exported"] == len(shown)
        assert len(out.read_bytes().splitlines()) == len(shown)
    target = service.execute("data/open", {"adapter": "memory", "config": {}})["dbHandle"]
    service.execute("data/copy", {"from": {"dbHandle": db, "collection": "c"},
                                  "to": {"dbHandle": target, "collection": "c"}})  # fmt: skip
    copied = service.execute("data/list", {"dbHandle": target, "collection": "c", "orderBy": "id"})
    assert ids(copied["items"]) == sorted(shown)
    assert _stored(pg) == before  # nothing written over them


def test_move_moves_only_rows_read_in_full_and_leaves_the_others(
    service: Service, tmp_path: Path
) -> None:
    pg = _database(service, tmp_path)
    before = _stored(pg)
    db = _open(service, pg)
    service.execute("data/copy", {"from": {"dbHandle": db, "collection": "c"},
                                  "to": {"dbHandle": db, "collection": "d"}, "move": True})  # fmt: skip
    moved = service.execute("data/list", {"dbHandle": db, "collection": "d", "orderBy": "id"})
    assert ids(moved["items"]) == READABLE  # no "zz": the row's id is its id column
    assert _stored(pg) == {i: before[i] for i in UNREADABLE}  # the others stay, as written


def test_a_row_not_read_in_full_behind_a_row_filter_answers_as_a_missing_id(
    service: Service, tmp_path: Path
) -> None:
    pg = _database(service, tmp_path)
    before = _stored(pg)
    db = _open(service, pg, rowFilter={"owner": "alice"})
    for door in ID_DOORS:
        assert_answers_as_missing(service, db, door, UNREADABLE)
    assert _stored(pg) == before


def test_without_a_row_filter_read_and_update_name_the_row_and_write_nothing(
    service: Service, tmp_path: Path
) -> None:
    pg = _database(service, tmp_path)
    before = _stored(pg)
    db = _open(service, pg)
    for record_id in UNREADABLE:
        assert_every_door_names(service, db, record_id, f'record "{record_id}" of collection "c"')
    assert _stored(pg) == before
    words = service.dispatch(*id_doors(db, "resid")["read"])["error"]
    assert 'holds the reserved field "id"' in words
    assert "outside the 64 bits" in service.dispatch(*id_doors(db, "e400")["read"])["error"]
    assert (
        "not the shortest text of a double"
        in service.dispatch(*id_doors(db, "tiny")["read"])["error"]
    )
    assert "deeper than 64 levels" in service.dispatch(*id_doors(db, "deep64")["read"])["error"]
    assert (
        "is a JSON array, not an object"
        in service.dispatch(*id_doors(db, "array")["read"])["error"]
    )
    # The row's id is its column: "zz" is no record.
    assert not service.execute("data/read", {"dbHandle": db, "collection": "c", "id": "zz"})[
        "found"
    ]
    for record_id in READABLE_FOREIGN:  # the edges of each bound read in full
        read = service.execute("data/read", {"dbHandle": db, "collection": "c", "id": record_id})
        assert read["data"]["id"] == record_id and read["data"]["owner"] == "alice"
    # -2**63 is read in full (as on SQLite); a copy refuses it as it refuses it from a JSON file.
    with _connect(pg) as conn:
        conn.execute(
            "UPDATE c SET data = %s::jsonb WHERE id = 'a1'", ('{"n": -9223372036854775808}',)
        )
    lowest = service.execute("data/read", {"dbHandle": db, "collection": "c", "id": "a1"})
    assert lowest["data"]["n"] == -(2**63)


def test_a_float_dbhandles_wrote_past_64_bits_is_read_in_full(
    service: Service, tmp_path: Path
) -> None:
    """dbhandles writes a float with a fraction (``1e300`` as ``1000...0.0``), which ``jsonb``
    keeps apart from an integer: only another tool's integer-like number there is unreadable."""
    from dbhandles.adapters.postgres import PostgresAdapter
    from tests.pgserver import postgres_config

    pg = postgres_config(tmp_path)
    adapter = PostgresAdapter(PostgresAdapter.prepare(PostgresAdapter.parse_config(pg)))
    try:
        stamp = {"createdAt": STAMP, "updatedAt": STAMP, "version": 1}
        with adapter.session(write=True) as session:
            for i, number in enumerate([1e300, -1.7976931348623157e308, 9.3e18, 2.0**63]):
                session.insert("c", {"id": f"f{i}", "n": number, **stamp})
        with adapter.session(write=False) as session:
            assert session.count("c", None) == 4 and session.unreadable("c") == 0
            assert session.get("c", "f1") == {"id": "f1", "n": -1.7976931348623157e308, **stamp}
    finally:
        adapter.close()
