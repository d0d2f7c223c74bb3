"""Issue #12/#14, outside round 16: rows another tool wrote into a SQLite collection that dbhandles
cannot read in full (nested deeper than create allows, U+0000 that SQLite's JSON functions cut, a
key twice, a reserved field such as ``id`` contradicting the row's column, malformed text beside
them). Such a row is unreadable on every door: named by ``data/read`` and refused by an update
without a row filter, answered as a missing id behind one, left out of every listing, count,
group, cursor, export, copy and move; the SQL functions that judge rows never raise
(docs/filters.md "Values", docs/security.md section 5)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbhandles import Service
from dbhandles.adapters.sqlite_values import (
    DOCUMENT_FUNCTION,
    RECORD_FUNCTION,
    Unreadable,
    load_record,
    loads,
    record_call,
    register,
)
from dbhandles.values import MAX_DEPTH
from tests.foreign_rows import open_sqlite, written_by_another_tool
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

#: What another tool wrote over rows dbhandles made, by id. Each names alice as its owner as far as
#: a reader that cut, overrode or stopped early could tell.
UNREADABLE: dict[str, Any] = {
    "deep600": '{"owner":"alice","x":' + nest(600) + "}",  # orjson cannot write it back
    "deep100": '{"owner":"alice","x":' + nest(100) + "}",  # orjson can, create refuses it
    "deep64": '{"owner":"alice","x":' + nest(MAX_DEPTH, "0") + "}",  # the first level refused
    "truncated": '{"owner":"alice"',
    "rawnul": '{"owner":"alice\x00","t":1}',
    "nuljunk": '{"owner":"alice"}\x00junk',
    "escnul": '{"owner":"alice\\u0000bob","t":"public\\u0000SECRET-TAIL"}',
    "dup": '{"owner":"alice","owner":"bob"}',
    "i2": '{"id":"zz","owner":"alice"}',
    "ver": '{"owner":"alice","version":99}',
    "made": '{"createdAt":"2000-01-01T00:00:00.000Z","owner":"alice"}',
    "number": "5",  # a scalar (the column's TEXT affinity keeps an integer as text)
}
#: Rows read in full though another tool wrote them: the deepest nesting create accepts, escapes.
READABLE_FOREIGN = {
    "deep63": '{"owner":"alice","x":' + nest(MAX_DEPTH - 1, "0") + "}",
    "escaped": '{"\\u006fwner": "alice", "s": 1}',
}
ALICE = ["a1", "a2", "a3", "deep63", "escaped"]
READABLE = sorted([*ALICE, "b1"])


def _database(service: Service, path: Path) -> None:
    db = open_sqlite(service, {"path": str(path), "mode": "create"})
    for record_id in [*READABLE, *UNREADABLE]:
        owner = "bob" if record_id == "b1" else "alice"
        service.execute("data/create", {"dbHandle": db, "collection": "c", "id": record_id,
                                        "data": {"owner": owner, "n": len(record_id)}})  # fmt: skip
    service.execute("data/close", {"dbHandle": db})
    with sqlite3.connect(path) as conn:  # another tool
        conn.executemany("UPDATE c SET data = ? WHERE id = ?",
                         [(t, i) for i, t in {**UNREADABLE, **READABLE_FOREIGN}.items()])  # fmt: skip
    conn.close()


def _stored(path: Path) -> dict[str, Any]:
    with sqlite3.connect(path) as conn:
        rows = dict(conn.execute("SELECT id, data FROM c").fetchall())
    conn.close()
    return rows


@pytest.mark.parametrize("row_filter", [False, True])
def test_every_listing_door_leaves_out_rows_not_read_in_full(
    service: Service, tmp_path: Path, row_filter: bool
) -> None:
    path = tmp_path / "shared.sqlite"
    _database(service, path)
    permissions = {"rowFilter": {"owner": "alice"}} if row_filter else {}
    db = open_sqlite(service, {"path": str(path)}, **permissions)
    shown = ALICE if row_filter else READABLE
    ask = lambda command, **p: service.execute(command, {"dbHandle": db, "collection": "c", **p})  # noqa: E731
    listed = ask("data/list", orderBy="id")
    assert ids(listed["items"]) == sorted(shown)
    assert listed["count"] == len(shown)
    assert listed["unreadable"] == (None if row_filter else len(UNREADABLE))
    assert all("zz" not in str(r) and "SECRET" not in str(r) for r in listed["items"])
    assert ids(ask("data/list", filter={"owner": "alice"}, orderBy="id")["items"]) == sorted(ALICE)
    assert ids(ask("data/list", filter={"id": "i2"})["items"]) == []
    assert sorted(ids(ask("data/list", orderBy=["-owner", "id"])["items"])) == sorted(shown)
    assert ask("data/list", fields=["owner"], orderBy="id")["items"] == [
        {"id": i, "owner": "bob" if i == "b1" else "alice"} for i in sorted(shown)
    ]
    assert list_pages(service, db, orderBy="id") == sorted(shown)
    assert sorted(list_pages(service, db, orderBy=["-owner", "n"])) == sorted(shown)
    assert ask("data/count")["total"] == len(shown)
    assert ask("data/count", filter={"owner": "alice"})["total"] == len(ALICE)
    groups = ask("data/count", groupBy=["owner"])["groups"]
    expected = {"alice": len(ALICE)} if row_filter else {"alice": len(ALICE), "bob": 1}
    assert {g["key"]["owner"]: g["count"] for g in groups} == expected
    opened = ask("data/query-open", pageSize=2, orderBy="id")
    assert query_pages(service, opened["queryHandle"]) == sorted(shown)
    if not row_filter:  # export works on whole collections: refused through a row filter
        out = tmp_path / "out.jsonl"
        assert ask("data/export", output=str(out))["exported"] == len(shown)
        assert len(out.read_bytes().splitlines()) == len(shown)
    target = open_sqlite(service, {"path": str(tmp_path / "t.sqlite"), "mode": "create"})
    service.execute("data/copy", {"from": {"dbHandle": db, "collection": "c"},
                                  "to": {"dbHandle": target, "collection": "c"}})  # fmt: skip
    copied = service.execute("data/list", {"dbHandle": target, "collection": "c", "orderBy": "id"})
    assert ids(copied["items"]) == sorted(shown)
    stored = _stored(path)
    assert {i: stored[i] for i in UNREADABLE} == UNREADABLE  # nothing written over them


def test_move_moves_only_rows_read_in_full_and_leaves_the_others(
    service: Service, tmp_path: Path
) -> None:
    path = tmp_path / "shared.sqlite"
    _database(service, path)
    db = open_sqlite(service, {"path": str(path)})
    service.execute("data/copy", {"from": {"dbHandle": db, "collection": "c"},
                                  "to": {"dbHandle": db, "collection": "d"}, "move": True})  # fmt: skip
    moved = service.execute("data/list", {"dbHandle": db, "collection": "d", "orderBy": "id"})
    assert ids(moved["items"]) == READABLE  # no "zz": the row's id is its id column
    assert _stored(path) == UNREADABLE  # the rows not read in full stay, as written


@pytest.mark.parametrize("door", ID_DOORS)
def test_a_row_not_read_in_full_behind_a_row_filter_answers_as_a_missing_id(
    service: Service, tmp_path: Path, door: str
) -> None:
    path = tmp_path / "shared.sqlite"
    _database(service, path)
    db = open_sqlite(service, {"path": str(path)}, rowFilter={"owner": "alice"})
    assert_answers_as_missing(service, db, door, UNREADABLE)
    stored = _stored(path)
    assert {i: stored[i] for i in UNREADABLE} == UNREADABLE


def test_without_a_row_filter_read_and_update_name_the_row_and_write_nothing(
    service: Service, tmp_path: Path
) -> None:
    path = tmp_path / "shared.sqlite"
    _database(service, path)
    db = open_sqlite(service, {"path": str(path)})
    for record_id in UNREADABLE:
        assert_every_door_names(service, db, record_id, f'record "{record_id}" of collection "c"')
    assert _stored(path) == {**_stored(path), **UNREADABLE}
    for record_id in READABLE_FOREIGN:  # read in full: readable, and its id is its column
        read = service.execute("data/read", {"dbHandle": db, "collection": "c", "id": record_id})
        assert read["data"]["id"] == record_id and read["data"]["owner"] == "alice"


@pytest.mark.parametrize("levels", [MAX_DEPTH - 1, MAX_DEPTH])
def test_the_depth_bound_of_a_stored_row_is_the_one_create_applies(
    service: Service, tmp_path: Path, levels: int
) -> None:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    db = open_sqlite(service, {"path": str(tmp_path / "m.sqlite"), "mode": "create"})
    created = service.dispatch("data/create", {"dbHandle": db, "collection": "c",
                                               "data": {"x": value}})  # fmt: skip
    text = '{"x":' + nest(levels, "0") + "}"
    try:
        load_record(text)
        readable = True
    except Unreadable:
        readable = False
    assert readable is created["success"]


def test_a_foreign_column_holding_json_too_deep_or_cut_is_its_plain_text(
    service: Service, tmp_path: Path
) -> None:
    texts = [
        '{"a":' + nest(600) + "}", '{"a":' + nest(300) + "}", '{"a":' + nest(100) + "}",
        '{"t":"x\\u0000y"}', '{"a":' + nest(MAX_DEPTH - 2, "1") + "}", '{"ok":1}',
    ]  # fmt: skip
    db, table, field = written_by_another_tool(service, tmp_path / "f.sqlite", "foreign column",
                                               texts)  # fmt: skip
    rows = service.execute("data/list", {"dbHandle": db, "collection": table, "orderBy": "id"})
    docs = [r[field] for r in rows["items"]]
    assert docs[:4] == texts[:4]
    assert isinstance(docs[4], dict) and docs[5] == {"ok": 1}
    for i, text in enumerate(texts[:4]):
        read = service.execute("data/read", {"dbHandle": db, "collection": table, "id": i})
        assert read["data"][field] == text
    found = service.execute("data/list", {"dbHandle": db, "collection": table,
                                          "filter": {f"{field}.a": {"$exists": True}}})  # fmt: skip
    assert ids(found["items"]) == [4]
    assert service.execute("data/count", {"dbHandle": db, "collection": table,
                                          "filter": {f"{field}.t": "x"}})["total"] == 0  # fmt: skip
    for i in range(4):  # a string for equality too (the string guard once asked json_valid)
        assert ids(service.execute("data/list", {"dbHandle": db, "collection": table,
                                                  "filter": {field: texts[i]}})["items"]) == [i]  # fmt: skip


# -- the SQL functions are total ------------------------------------------------------------------

#: Texts near JSON: objects cut short, doubled, nested deep, holding NUL raw or escaped.
NEAR_JSON = st.builds(
    lambda head, depth, tail: head + "[" * depth + tail,
    st.sampled_from(['{"owner":"alice"', '{"id":"zz","a":', '{"a":', "[", "", '{"a":"\\u0000"}']),
    st.integers(0, 1100),
    st.text(alphabet='{}[]":,0a\x00\\u', max_size=30),
)
VALUES = st.one_of(
    st.text(), st.binary(), NEAR_JSON, st.integers(-(2**63), 2**63 - 1), st.floats(), st.none()
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VALUES)
def test_the_record_and_document_functions_never_raise(value: Any) -> None:
    conn = sqlite3.connect(":memory:")
    try:
        register(conn)
        record, document = conn.execute(
            f"SELECT {RECORD_FUNCTION}(?), {DOCUMENT_FUNCTION}(?)", (value, value)
        ).fetchone()
    finally:
        conn.close()
    if isinstance(value, bytes):  # the same bytes as TEXT (perhaps no UTF-8), as a query passes it
        conn = sqlite3.connect(":memory:")
        try:
            register(conn)
            (as_text,) = conn.execute(
                f"SELECT {record_call('CAST(? AS TEXT)')}", (value,)
            ).fetchone()
        finally:
            conn.close()
        assert as_text == record
    if record is not None:  # a canonical text, read in full as a record
        assert load_record(record) == load_record(value)
    if document is not None:
        assert loads(document) == loads(value)


def test_a_row_whose_text_is_not_utf8_is_unreadable_on_every_door(
    service: Service, tmp_path: Path
) -> None:
    """Python's ``sqlite3`` decodes TEXT before a SQL function sees it: text that is not UTF-8
    failed every listing and count (``user-defined function raised exception``) and told a
    row-filtered handle that the hidden id exists."""
    path = tmp_path / "shared.sqlite"
    db = open_sqlite(service, {"path": str(path), "mode": "create"})
    for record_id in ("a1", "u1"):
        service.execute("data/create", {"dbHandle": db, "collection": "c", "id": record_id,
                                        "data": {"owner": "alice"}})  # fmt: skip
    service.execute("data/close", {"dbHandle": db})
    bad = b'{"owner":"alice","t":"\xff"}'
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE c SET data = CAST(? AS TEXT) WHERE id = 'u1'", (bad,))
    conn.close()
    for permissions in ({}, {"rowFilter": {"owner": "alice"}}):
        db = open_sqlite(service, {"path": str(path)}, **permissions)
        ask = lambda c, db=db, **p: service.dispatch(c, {"dbHandle": db, "collection": "c", **p})  # noqa: E731
        assert ids(ask("data/list")["items"]) == ["a1"]
        assert ids(ask("data/list", orderBy="-owner")["items"]) == ["a1"]
        assert ask("data/count", filter={"owner": "alice"})["total"] == 1
        assert ask("data/count", groupBy=["owner"])["groups"] == [
            {"key": {"owner": "alice"}, "count": 1}
        ]
        for door in ("read", "update", "delete", "batch-update"):
            if permissions:  # hidden: answered exactly as a missing id
                assert_answers_as_missing(service, db, door, ["u1"])
            elif door in ("read", "update"):
                answer = service.dispatch(*id_doors(db, "u1")[door])
                assert answer["code"] == "query_failed" and 'record "u1"' in answer["error"]
    with sqlite3.connect(path) as conn:
        (stored,) = conn.execute("SELECT CAST(data AS BLOB) FROM c WHERE id = 'u1'").fetchone()
    conn.close()
    assert stored == bad
