"""PostgreSQL tables and views dbhandles did not create (issue 15, step 7): schema, values, reads,
writes with constraint violations, and filters checked against ``evaluate.py`` by hypothesis.

The schema is built with plain SQL through psycopg, on the server the suite starts (``pgserver``);
every command goes through ``Service.execute``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from psycopg import sql

from dbhandles import Service
from dbhandles.adapters.base import Query, Record
from dbhandles.adapters.postgres import PostgresAdapter
from dbhandles.errors import ConstraintViolation, InvalidParams, ReadOnly, RecordExists
from dbhandles.evaluate import matches, position_of, sort_records
from dbhandles.filters import parse_filter, parse_order_by

pytestmark = pytest.mark.postgres

SCHEMA = """
CREATE TABLE authors (id serial PRIMARY KEY, name text NOT NULL UNIQUE,
                      born integer CHECK (born > 0));
CREATE TABLE books (isbn text PRIMARY KEY, title text NOT NULL,
                    author_id integer REFERENCES authors (id), meta jsonb,
                    price numeric CONSTRAINT price_positive CHECK (price >= 0),
                    version integer NOT NULL DEFAULT 1);
CREATE TABLE typed (k bigint PRIMARY KEY, f double precision, r real, n numeric, ts timestamptz,
                    d date, t time, j json, tags text[], nums integer[], u uuid, b bytea,
                    ok boolean, "Mixed Case" text);
CREATE TABLE pairs (a text, b integer, note text, PRIMARY KEY (a, b));
CREATE TABLE loose (x integer, y text);
CREATE VIEW titles AS SELECT isbn, title FROM books;
INSERT INTO authors (name, born) VALUES ('Le Guin', 1929), ('Lem', 1921);
INSERT INTO books (isbn, title, author_id, meta, price)
    VALUES ('b1', 'The Dispossessed', 1, '{"tags": ["sf", "anarchy"], "score": 0.9}', 9.5),
           ('b2', 'Solaris', 2, NULL, 12);
INSERT INTO typed VALUES
    (1, 1.5, 0.25, 12.50, '2024-03-01 10:00:00.5+02', '2024-03-01', '12:34:56', '{"a": [1, 2]}',
     '{sf,"a b"}', '{1,2}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x00ff10', true, 'x'),
    (2, 'NaN', 'Infinity', 12345678901234567.89, 'infinity', NULL, NULL, 'null', '{}', NULL,
     NULL, NULL, NULL, NULL),
    (3, '-Infinity', NULL, 'NaN', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, false, NULL);
INSERT INTO pairs VALUES ('x', 2, 'two'), ('x', 10, 'ten'), ('y', 1, NULL);
INSERT INTO loose VALUES (1, 'one'), (1, 'one'), (2, NULL);
"""


def _execute(pg: dict[str, Any], script: str, params: tuple[Any, ...] = ()) -> None:
    with psycopg.connect(pg["url"], autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(pg["schema"])))
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(pg["schema"])))
        conn.execute(script, params)  # type: ignore[arg-type]


def _rows(pg: dict[str, Any], query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg["url"], autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(pg["schema"])))
        return conn.execute(query).fetchall()  # type: ignore[arg-type]


@pytest.fixture
def handle(service: Service, pg: dict[str, Any]) -> str:
    _execute(pg, SCHEMA)
    opened = service.execute("data/open", {"adapter": "postgres", "config": pg})
    return str(opened["dbHandle"])


def run(service: Service, name: str, handle: str, **params: Any) -> dict[str, Any]:
    return service.execute(name, {"dbHandle": handle, **params})


# -- schema -------------------------------------------------------------------------------------------


def test_schema_lists_every_table_and_view(service: Service, handle: str) -> None:
    run(service, "data/create", handle, collection="notes", data={"text": "mine"})
    listing = {c["name"]: c for c in run(service, "data/schema", handle)["collections"]}
    assert listing["notes"]["kind"] == "collection"
    assert {n: listing[n]["kind"] for n in ("authors", "books", "typed", "pairs", "loose",
                                            "titles")} == {
        "authors": "table", "books": "table", "typed": "table", "pairs": "table",
        "loose": "table", "titles": "view"}  # fmt: skip
    books = listing["books"]
    assert books["primaryKey"] == ["isbn"] and books["recordCount"] == 2
    assert books["recordCountEstimated"] is False
    price = next(c for c in books["columns"] if c["name"] == "price")
    assert price == {"name": "price", "type": "numeric", "nullable": True, "default": None}
    assert books["foreignKeys"] == [{"name": "books_author_id_fkey", "columns": ["author_id"],
                                     "table": "authors", "references": ["id"],
                                     "onUpdate": "NO ACTION", "onDelete": "NO ACTION"}]  # fmt: skip
    assert {i["name"]: i["origin"] for i in listing["authors"]["indexes"]} == {
        "authors_pkey": "primary key", "authors_name_key": "unique constraint"}  # fmt: skip
    assert listing["pairs"]["primaryKey"] == ["a", "b"]
    assert "readOnly" in listing["loose"] and "readOnly" in listing["titles"]
    assert listing["books"]["reservedFields"] == ["version"]
    one = run(service, "data/schema", handle, collection="typed")
    assert one["table"]["name"] == "typed" and one["recordCount"] == 3
    assert {f["name"] for f in one["fields"]} >= {"k", "ts", "Mixed Case"}


def test_large_tables_show_the_estimate_and_names_match_ignoring_case(
    service: Service, handle: str, pg: dict[str, Any]
) -> None:
    _execute(pg, 'CREATE TABLE "Big" (n integer PRIMARY KEY); '
                 'INSERT INTO "Big" SELECT generate_series(1, 100000); ANALYZE "Big"')  # fmt: skip
    big = next(c for c in run(service, "data/schema", handle)["collections"] if c["name"] == "Big")
    assert big["recordCountEstimated"] is True and 90_000 <= big["recordCount"] <= 110_000
    for name in ("Big", "big", "BIG"):
        assert run(service, "data/read", handle, collection=name, id="7")["data"] == {
            "id": 7,
            "n": 7,
        }
    assert (
        run(service, "data/count", handle, collection="big", filter={"n": {"$lt": 10}})["total"]
        == 9
    )


# -- values -------------------------------------------------------------------------------------------


def test_values_as_json(service: Service, handle: str) -> None:
    one = run(service, "data/read", handle, collection="typed", id="1")["data"]
    assert one == {
        "id": 1, "k": 1, "f": 1.5, "r": 0.25, "n": 12.5, "ts": "2024-03-01T08:00:00.500000Z",
        "d": "2024-03-01", "t": "12:34:56", "j": {"a": [1, 2]}, "tags": ["sf", "a b"],
        "nums": [1, 2], "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "b": {"$base64": base64.b64encode(b"\x00\xff\x10").decode()}, "ok": True,
        "Mixed Case": "x",
    }  # fmt: skip
    two = run(service, "data/read", handle, collection="typed", id="2")["data"]
    # NaN and infinities are null; a numeric with more than 15 digits is its exact text.
    assert (two["f"], two["r"], two["n"], two["ts"]) == (None, None, "12345678901234567.89",
                                                         "infinity")  # fmt: skip
    assert two["tags"] == [] and two["j"] is None
    three = run(service, "data/read", handle, collection="typed", id="3")["data"]
    assert (three["f"], three["n"], three["ok"]) == (None, None, False)
    listed = run(service, "data/list", handle, collection="typed", orderBy=[{"field": "f"}])
    assert [r["id"] for r in listed["items"]] == [2, 3, 1]  # nulls first, then numbers


# -- reads --------------------------------------------------------------------------------------------


def test_reads_by_key_of_every_shape(service: Service, handle: str) -> None:
    assert run(service, "data/read", handle, collection="books", id="b1")["data"]["title"] == (
        "The Dispossessed"
    )
    for missing in ("abc", "01", "99999999999999999999"):
        assert not run(service, "data/read", handle, collection="authors", id=missing)["found"]
    pairs = run(service, "data/list", handle, collection="pairs")["items"]
    assert [p["id"] for p in pairs] == ['["x",10]', '["x",2]', '["y",1]']  # code point order
    read = run(service, "data/read", handle, collection="pairs", id='["x",10]')
    assert read["data"] == {"id": '["x",10]', "a": "x", "b": 10, "note": "ten"}
    assert not run(service, "data/read", handle, collection="pairs", id='["x", 10]')["found"]
    loose = run(service, "data/list", handle, collection="loose")["items"]
    # Equal rows each have an id: the second is numbered (tests/test_foreign_ids.py).
    assert [r["id"] for r in loose] == ['[1,"one"]', '[1,"one"]#2', "[2,null]"]
    assert run(service, "data/read", handle, collection="loose", id="[2,null]")["found"]
    assert run(service, "data/count", handle, collection="titles")["total"] == 2


def test_filters_orders_and_paging(service: Service, handle: str) -> None:
    found = run(service, "data/list", handle, collection="books",
                filter={"meta.tags": "sf", "price": {"$lt": 10}})["items"]  # fmt: skip
    assert [r["id"] for r in found] == ["b1"]
    assert run(service, "data/count", handle, collection="books",
               filter={"meta.score": {"$gte": 0.5}})["total"] == 1  # fmt: skip
    seen: list[Any] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"collection": "pairs", "limit": 1,
                                  "orderBy": [{"field": "note", "direction": "desc"}]}  # fmt: skip
        if cursor:
            params["cursor"] = cursor
        page = run(service, "data/list", handle, **params)
        seen.extend(r["id"] for r in page["items"])
        cursor = page.get("nextCursor")
        if not cursor:
            break
    assert seen == ['["x",2]', '["x",10]', '["y",1]']
    fields = run(service, "data/list", handle, collection="books", fields=["title"])["items"]
    assert fields[0] == {"id": "b1", "title": "The Dispossessed"}


# -- writes -------------------------------------------------------------------------------------------


def test_writes_through_the_key(service: Service, handle: str, pg: dict[str, Any]) -> None:
    created = run(service, "data/create", handle, collection="authors",
                  data={"name": "Tiptree", "born": 1915})  # fmt: skip
    assert created["data"] == {"id": 3, "name": "Tiptree", "born": 1915}  # the serial picked it
    book = run(service, "data/create", handle, collection="books", id="b3",
               data={"title": "Kindred", "meta": {"tags": ["sf"]}, "price": "7.25"})  # fmt: skip
    assert book["data"]["meta"] == {"tags": ["sf"]} and book["data"]["price"] == 7.25
    assert book["data"]["version"] == 1
    updated = run(service, "data/update", handle, collection="books", id="b3",
                  data={"title": "Kindred (1979)"}, expectedVersion=1)  # fmt: skip
    assert updated["newVersion"] == 2 and updated["data"]["title"] == "Kindred (1979)"
    typed = run(service, "data/create", handle, collection="typed", id="9",
                data={"ts": "2024-01-01T00:00:00Z", "tags": ["a", "b c"], "j": [1],
                      "b": {"$base64": "AAE="}, "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12"})  # fmt: skip
    assert typed["data"]["ts"] == "2024-01-01T00:00:00.000000Z"
    assert typed["data"]["tags"] == ["a", "b c"] and typed["data"]["b"] == {"$base64": "AAE="}
    pair = run(service, "data/create", handle, collection="pairs", id='["z",5]', data={})
    assert pair["data"] == {"id": '["z",5]', "a": "z", "b": 5, "note": None}
    assert run(service, "data/delete", handle, collection="pairs", id='["z",5]')["found"]
    assert _rows(pg, "SELECT count(*) FROM pairs") == [(3,)]
    assert run(service, "data/truncate", handle, collection="pairs")["recordsDeleted"] == 3
    with pytest.raises(InvalidParams, match=r"data\.nickname"):
        run(service, "data/create", handle, collection="authors", data={"name": "X", "nickname": 1})
    with pytest.raises(ReadOnly, match="view"):
        run(service, "data/create", handle, collection="titles", data={"title": "T"})
    with pytest.raises(ReadOnly, match="without a primary key"):
        run(service, "data/delete", handle, collection="loose", id="[2,null]")
    with pytest.raises(InvalidParams, match="expectedVersion"):
        run(service, "data/update", handle, collection="authors", id="1", data={"born": 1},
            expectedVersion=1)  # fmt: skip


def test_constraint_violations_write_nothing(
    service: Service, handle: str, pg: dict[str, Any]
) -> None:
    before = _rows(pg, "SELECT * FROM books ORDER BY isbn")
    cases = [
        ("authors", None, {"born": 1}, "not_null", "data.name"),
        ("authors", None, {"name": "Lem"}, "unique", "data.name"),
        ("authors", None, {"name": "Z", "born": -1}, "check", "data.born"),
        ("books", "b9", {"title": "T", "price": -1}, "check", "data.price"),
        ("books", "b9", {"title": "T", "author_id": 77}, "foreign_key", "data.author_id"),
    ]
    for collection, record_id, data, kind, field in cases:
        params: dict[str, Any] = {"collection": collection, "data": data}
        if record_id:
            params["id"] = record_id
        with pytest.raises(ConstraintViolation) as caught:
            run(service, "data/create", handle, **params)
        error = caught.value
        assert error.details["constraint"] == kind and error.field == field, error.message
        assert "nothing was written" in error.message
    with pytest.raises(ConstraintViolation) as caught:
        run(service, "data/delete", handle, collection="authors", id="1")
    assert "refer to this record" in caught.value.message
    with pytest.raises(RecordExists):
        run(service, "data/create", handle, collection="books", id="b1", data={"title": "T"})
    ops = [
        {"op": "create", "collection": "authors", "data": {"name": "Butler"}},
        {"op": "update", "collection": "books", "id": "b2", "data": {"title": "Solaris (1961)"}},
        {"op": "create", "collection": "books", "id": "b8", "data": {"title": "K",
                                                                    "author_id": 77}},
    ]  # fmt: skip
    with pytest.raises(ConstraintViolation):
        run(service, "data/batch", handle, operations=ops)
    assert _rows(pg, "SELECT * FROM books ORDER BY isbn") == before
    assert _rows(pg, "SELECT count(*) FROM authors") == [(2,)]


# -- the oracle ---------------------------------------------------------------------------------------

PROPERTY = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large])  # fmt: skip
_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([1.5, -0.5]),
              st.text(alphabet="abA", max_size=2)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(["a", "b"]), inner, max_size=2)),
    max_leaves=6,
)  # fmt: skip
_ROW = st.tuples(
    st.one_of(st.none(), st.integers(-3, 3), st.integers(-(2**63), 2**63 - 1)),
    st.one_of(st.none(), st.text(alphabet="abAB\u00e9", max_size=3)),
    st.one_of(
        st.none(),
        st.sampled_from([0.0, 1.5, -2.0, 1e16, float("nan"), float("inf")]),
        st.floats(allow_nan=False, allow_infinity=False, width=64),
    ),
    st.one_of(st.none(), st.sampled_from(["1.5", "2", "12345678901234567.5", "NaN", "-0.25"])),
    st.one_of(st.none(), _JSON),
    st.one_of(st.none(), st.lists(st.integers(-2, 2), max_size=3)),
)
_PATHS = st.sampled_from(["i", "s", "f", "n", "j", "j.a", "j.0", "j.a.b", "j.b.0", "arr", "arr.0",
                          "id", "k", "zz"])  # fmt: skip
_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([1.5, 2.0]),
                    st.text(alphabet="abA", max_size=2), st.just("1.5"))  # fmt: skip


@st.composite
def _filters(draw: st.DrawFn, depth: int = 0) -> Any:
    path = draw(_PATHS)
    value = draw(_VALUES)
    bound = draw(_VALUES.filter(lambda v: v is not None))
    leaf = draw(st.sampled_from([
        value, {"$ne": value}, {"$gt": bound}, {"$lte": bound}, {"$in": [value, 1]},
        {"$exists": draw(st.booleans())}, {"$size": draw(st.integers(0, 2))},
        {"$elemMatch": {"$gte": 0}}, {"$contains": "a"},
    ]))  # fmt: skip
    node = {path: leaf}
    if depth < 2 and draw(st.booleans()):
        other = draw(_filters(depth + 1))
        return {draw(st.sampled_from(["$and", "$or"])): [node, other]}
    return node


_ORDERS = st.lists(st.sampled_from(["i", "-s", "f", "-n", "j", "j.a", "-arr", "id"]), max_size=2,
                   unique=True)  # fmt: skip


@pytest.fixture
def oracle_adapter(pg: dict[str, Any]) -> Iterator[PostgresAdapter]:
    _execute(pg, "CREATE TABLE things (k integer PRIMARY KEY, i bigint, s text, f float8, "
                 "n numeric, j jsonb, arr integer[])")  # fmt: skip
    adapter = PostgresAdapter(PostgresAdapter.prepare(PostgresAdapter.parse_config(pg)))
    try:
        yield adapter
    finally:
        adapter.close()


@PROPERTY
@given(rows=st.lists(_ROW, max_size=8), filter_=_filters(), order=_ORDERS,
       page=st.integers(1, 3))  # fmt: skip
def test_list_and_count_match_the_reference(
    oracle_adapter: PostgresAdapter, pg: dict[str, Any], rows: list[tuple[Any, ...]],
    filter_: Any, order: list[str], page: int,
) -> None:  # fmt: skip
    import orjson

    with psycopg.connect(pg["url"], autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(pg["schema"])))
        conn.execute("TRUNCATE things")
        for k, row in enumerate(rows):
            j = None if row[4] is None else orjson.dumps(row[4]).decode()
            conn.execute("INSERT INTO things VALUES (%s, %s, %s, %s, %s::numeric, %s::jsonb, %s)",
                         (k, row[0], row[1], row[2], row[3], j, row[5]))  # fmt: skip
    note(f"filter={filter_} order={order}")
    tree = parse_filter(filter_)
    keys = parse_order_by([{"field": f.lstrip("-"), "direction": "desc" if f[0] == "-" else "asc"}
                           for f in order])  # fmt: skip
    with oracle_adapter.session() as session:
        every: list[Record] = session.find("things", Query())
        expected = sort_records([r for r in every if matches(tree, r)], keys)
        got = session.find("things", Query(filter=tree, order=keys))
        assert [r["id"] for r in got] == [r["id"] for r in expected]
        assert session.count("things", tree) == len(expected)
        # Keyset paging: pages of ``page`` rows, each after the last row of the one before.
        paged: list[Record] = []
        after = None
        while True:
            chunk = session.find("things", Query(filter=tree, order=keys, limit=page, after=after))
            paged.extend(chunk)
            if len(chunk) < page:
                break
            after = position_of(chunk[-1], keys)
        assert [r["id"] for r in paged] == [r["id"] for r in expected]


def test_the_audit_name_is_known_without_a_session(
    pg: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``known_collection`` answers what ``resolve_collection`` did for the last command naming
    a name, from the catalogs' caches: no session (nor pool connection) for the audit row."""
    _execute(pg, 'CREATE TABLE "Orders" (k integer PRIMARY KEY); CREATE TABLE mixed (k integer)')
    adapter = PostgresAdapter(PostgresAdapter.prepare(PostgresAdapter.parse_config(pg)))
    try:
        assert adapter.known_collection("ORDERS") is None  # not named yet: ask a session
        with adapter.session(write=True) as session:
            session.insert(
                "notes",
                {
                    "id": "n1",
                    "createdAt": "2024-01-01T00:00:00.000Z",
                    "updatedAt": "2024-01-01T00:00:00.000Z",
                    "version": 1,
                },
            )
        names = ("ORDERS", "Orders", "MIXED", "Notes", "nothing")
        with adapter.session() as session:
            answers = {name: session.resolve_collection(name) for name in names}
            for name in names:
                session.find(name, Query())
        assert answers == {"ORDERS": "Orders", "Orders": "Orders", "MIXED": "mixed",
                           "Notes": "notes", "nothing": "nothing"}  # fmt: skip

        def no_session(write: bool) -> Any:
            raise AssertionError("known_collection opened a session")

        monkeypatch.setattr(adapter, "_session", no_session)
        assert {name: adapter.known_collection(name) for name in names} == answers
    finally:
        adapter.close()
