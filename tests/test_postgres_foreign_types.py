"""PostgreSQL types of tables dbhandles did not create, written as reads show them (issue 15):
composites (nested, in arrays) written from objects and copied between tables, domain refusals
naming their column, and each other type taking a documented JSON value or refusing a number
with ``invalid_params`` naming the field and the type (docs/foreign-tables.md "PostgreSQL values").

The schema is built with plain SQL through psycopg, on the server the suite starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.errors import ConstraintViolation, InvalidParams
from tests.pgserver import postgres_schema

pytestmark = pytest.mark.postgres

SCHEMA = """
CREATE TYPE pt AS (a int, b text);
CREATE TYPE shape AS (name text, corner pt, tags text[], pts pt[], doc jsonb, raw bytea,
                      at timestamptz);
CREATE TABLE shapes (id integer PRIMARY KEY, c pt, s shape, cs pt[], grid pt[][]);
CREATE TABLE shapes_copy (id integer PRIMARY KEY, c pt, s shape, cs pt[], grid pt[][]);
INSERT INTO shapes VALUES
    (1, '(1,x)', ROW('one', '(2,"y z")', '{a,"b,c"}', ARRAY['(3,)'::pt, NULL], '{"k": [1]}',
                     '\\x00ff', '2024-03-01 10:00+00')::shape,
     ARRAY['(4,"q\\"uote")'::pt, '(5,"")'::pt], ARRAY[ARRAY['(6,a)'::pt], ARRAY['(7,b)'::pt]]),
    (2, NULL, NULL, NULL, NULL),
    (3, '(,)', ROW(NULL, NULL, NULL, NULL, NULL, NULL, NULL)::shape, '{}', NULL);
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE DOMAIN small AS posint CONSTRAINT small_below_100 CHECK (VALUE < 100);
CREATE DOMAIN label AS text NOT NULL;
CREATE TABLE stock (id integer PRIMARY KEY, qty posint, spare posint, size small, tag label,
                    counts posint[]);
INSERT INTO stock VALUES (1, 1, 2, 3, 'x', '{1}');
CREATE TYPE sized AS (a posint, b text);
CREATE TYPE crate_box AS (name text, inner_size sized, many sized[]);
CREATE TABLE crates (id integer PRIMARY KEY, s sized, bx crate_box, ss sized[], note text);
INSERT INTO crates VALUES (1, '(1,x)', NULL, NULL, 'n');
CREATE TYPE mood AS ENUM ('calm', 'busy');
CREATE TABLE kinds (id integer PRIMARY KEY, m money, i interval, ip inet, net cidr, mac macaddr,
                    bits bit(4), vb varbit, tv tsvector, p point, r int4range, dr daterange,
                    e mood, d date, ts timestamptz, u uuid, ok boolean, t text, n numeric,
                    o oid);
"""


@pytest.fixture
def handle(service: Service, tmp_path: Path) -> str:
    pg = postgres_schema(tmp_path, SCHEMA)
    return str(service.execute("data/open", {"adapter": "postgres", "config": pg})["dbHandle"])


def run(service: Service, name: str, handle: str, **params: Any) -> Any:
    return service.execute(name, {"dbHandle": handle, **params})


def listed(service: Service, handle: str, collection: str) -> list[dict[str, Any]]:
    return list(run(service, "data/list", handle, collection=collection)["items"])


# -- composites ---------------------------------------------------------------------------------------


def test_composites_read_as_objects_write_back_and_copy(service: Service, handle: str) -> None:
    before = listed(service, handle, "shapes")
    one = next(r for r in before if r["id"] == 1)
    assert one["c"] == {"a": 1, "b": "x"}
    assert one["s"]["corner"] == {"a": 2, "b": "y z"} and one["s"]["tags"] == ["a", "b,c"]
    assert one["s"]["pts"] == [{"a": 3, "b": None}, None] and one["s"]["doc"] == {"k": [1]}
    assert one["cs"] == [{"a": 4, "b": 'q"uote'}, {"a": 5, "b": ""}]
    assert one["grid"] == [[{"a": 6, "b": "a"}], [{"a": 7, "b": "b"}]]
    # Each record updated with the value it reads as is unchanged (list -> update round trip).
    for record in before:
        data = {k: v for k, v in record.items() if k != "id"}
        run(service, "data/update", handle, collection="shapes", id=str(record["id"]), data=data)
    assert listed(service, handle, "shapes") == before
    copied = service.execute("data/copy", {
        "from": {"dbHandle": handle, "collection": "shapes"},
        "to": {"dbHandle": handle, "collection": "shapes_copy"}})  # fmt: skip
    assert copied["copied"] == 3 and copied["conflicts"] == 0
    assert listed(service, handle, "shapes_copy") == before


def test_composite_objects_are_stored_as_postgresql_reads_them(
    service: Service, handle: str
) -> None:
    data = {"c": {"a": 9, "b": 'it\'s "quoted", (with) \\ and ,'},
            "cs": [{"a": 1, "b": None}, None, {"b": "", "a": None}],
            "s": {"name": None, "corner": {"a": -1, "b": "{}"}, "tags": ["x", None],
                  "pts": [], "doc": [1, {"z": None}], "raw": {"$base64": "AP8="},
                  "at": "2024-03-01T10:00:00Z"}}  # fmt: skip
    run(service, "data/create", handle, collection="shapes", id="10", data=data)
    record = run(service, "data/read", handle, collection="shapes", id="10")
    got = record.get("data", record)
    assert got["c"] == data["c"] and got["cs"] == data["cs"]
    assert got["s"]["corner"] == {"a": -1, "b": "{}"} and got["s"]["tags"] == ["x", None]
    assert got["s"]["doc"] == [1, {"z": None}] and got["s"]["pts"] == []
    assert got["s"]["raw"] == "\\x00ff"  # bytea inside a composite reads as PostgreSQL's text
    # PostgreSQL's own text of a composite is still taken.
    run(service, "data/update", handle, collection="shapes", id="10", data={"c": "(2,y)"})
    again = run(service, "data/read", handle, collection="shapes", id="10")
    assert again.get("data", again)["c"] == {"a": 2, "b": "y"}


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"c": {"a": 1, "b": "x", "z": 2}}, "data.c.z", 'no field "z"'),
        ({"c": {"a": 1}}, "data.c.b", "missing: b"),
        ({"c": {"a": "one", "b": "x"}}, "data.c", "integer"),
        ({"c": {"a": {"n": 1}, "b": "x"}}, "data.c.a", "holds no objects"),
        ({"c": 5}, "data.c", "give an object of its fields (a, b)"),
        ({"c": [1, 2]}, "data.c", "give an object of its fields"),
        ({"cs": [{"a": 1, "b": "x"}, {"a": 1, "q": 2}]}, "data.cs.1.q", 'no field "q"'),
        ({"s": {"name": "n", "corner": {"a": 1, "b": "x", "c": 3}, "tags": None, "pts": None,
                "doc": None, "raw": None, "at": None}}, "data.s.corner.c", 'no field "c"'),
        ({"s": {"name": "n", "corner": None, "tags": 7, "pts": None, "doc": None, "raw": None,
                "at": None}}, "data.s.tags", "text[]"),
        ({"s": {"name": "n", "corner": None, "tags": None, "pts": None, "doc": None,
                "raw": None, "at": 5}}, "data.s.at", "takes no JSON number"),
    ],
)  # fmt: skip
def test_composite_values_that_do_not_fit_name_their_field(
    service: Service, handle: str, data: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(InvalidParams) as raised:
        run(service, "data/update", handle, collection="shapes", id="1", data=data)
    assert raised.value.field == field and words in str(raised.value)
    assert next(r for r in listed(service, handle, "shapes") if r["id"] == 1)["c"] == {
        "a": 1, "b": "x"}  # fmt: skip


# -- domains ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "field", "columns", "name"),
    [
        ({"qty": 0}, "data.qty", ["qty"], "posint_check"),
        ({"spare": -1}, "data.spare", ["spare"], "posint_check"),
        ({"size": 0}, "data.size", ["size"], "posint_check"),  # the domain it is built on
        ({"size": 100}, "data.size", ["size"], "small_below_100"),
        ({"counts": [1, 0]}, "data.counts", ["counts"], "posint_check"),  # an array of it
        ({"tag": None}, "data.tag", ["tag"], None),  # the domain's NOT NULL
    ],
)
def test_a_domain_refusal_names_the_column(
    service: Service, handle: str, data: dict[str, Any], field: str, columns: list[str],
    name: str | None,
) -> None:  # fmt: skip
    with pytest.raises(ConstraintViolation) as raised:
        run(service, "data/update", handle, collection="stock", id="1", data=data)
    assert raised.value.field == field
    assert raised.value.details["columns"] == columns
    if name is not None:
        assert raised.value.details["name"] == name and "domain" in str(raised.value)


def test_a_domain_refusal_of_a_row_lists_every_column_of_that_domain(
    service: Service, handle: str
) -> None:
    # Every written column is checked by the domain (size's domain is built on it), and
    # PostgreSQL does not say which value failed.
    with pytest.raises(ConstraintViolation) as raised:
        run(service, "data/create", handle, collection="stock", id="2",
            data={"qty": 0, "spare": 5, "size": 1, "tag": "t"})  # fmt: skip
    assert raised.value.details["columns"] == ["qty", "spare", "size"]
    assert raised.value.field == "data.qty"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"s": {"a": 0, "b": "x"}}, "data.s.a"),
        ({"bx": {"name": "n", "inner_size": {"a": -1, "b": "y"}, "many": None}},
         "data.bx.inner_size.a"),
        ({"bx": {"name": "n", "inner_size": None, "many": [{"a": 0, "b": None}]}},
         "data.bx.many.a"),  # inside an array's elements: which element is not said
        ({"ss": [{"a": 1, "b": "x"}, {"a": 0, "b": "y"}]}, "data.ss.a"),
        ({"s": "(0,x)", "note": "m"}, "data.s"),  # PostgreSQL's text: the column
    ],
)  # fmt: skip
def test_a_domain_refusal_inside_a_composite_names_the_field(
    service: Service, handle: str, data: dict[str, Any], field: str
) -> None:
    for command, params in (("data/update", {"id": "1"}), ("data/create", {"id": "2"})):
        with pytest.raises(ConstraintViolation) as raised:
            run(service, command, handle, collection="crates", data=data, **params)
        assert raised.value.field == field
        assert raised.value.details["columns"] == [field.split(".")[1]]
        assert raised.value.details["name"] == "posint_check"
        assert f'field "{field.removeprefix("data.")}"' in str(raised.value)
    rows = listed(service, handle, "crates")
    assert [(r["id"], r["s"]) for r in rows] == [(1, {"a": 1, "b": "x"})]  # nothing written


# -- other types ------------------------------------------------------------------------------------


#: Every column's JSON value, and what it reads back as.
WRITTEN = {
    "m": ("12.34", "$12.34"), "i": ("1 day 02:00:00", "1 day 02:00:00"),
    "ip": ("192.168.0.1/24", "192.168.0.1/24"), "net": ("10.0.0.0/8", "10.0.0.0/8"),
    "mac": ("08:00:2b:01:02:03", "08:00:2b:01:02:03"), "bits": ("1010", "1010"),
    "vb": ("101", "101"), "tv": ("fat rat", "'fat' 'rat'"), "p": ("(1,2)", "(1,2)"),
    "r": ("[1,5)", "[1,5)"), "dr": ("[2024-01-01,2024-02-01)", "[2024-01-01,2024-02-01)"),
    "e": ("calm", "calm"), "d": ("2024-03-01", "2024-03-01"),
    "u": ("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    "ok": (True, True), "t": (5, "5"), "n": ("7.25", 7.25), "o": (42, "42"),
}  # fmt: skip


def test_each_type_takes_its_documented_json_value(service: Service, handle: str) -> None:
    data = {k: v for k, (v, _) in WRITTEN.items()}
    run(service, "data/create", handle, collection="kinds", id="1", data=data)
    (record,) = listed(service, handle, "kinds")
    assert {k: record[k] for k in WRITTEN} == {k: shown for k, (_, shown) in WRITTEN.items()}
    # What a listing shows is written back unchanged, and money also takes a number.
    run(service, "data/update", handle, collection="kinds", id="1",
        data={k: v for k, v in record.items() if k != "id"})  # fmt: skip
    assert listed(service, handle, "kinds") == [record]
    run(service, "data/update", handle, collection="kinds", id="1", data={"m": 7})
    run(service, "data/update", handle, collection="kinds", id="1", data={"m": 70000.5})
    assert listed(service, handle, "kinds")[0]["m"] == "$70,000.50"


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("i", 5, 'interval takes no JSON number; give a string such as "1 day'),
        ("ip", 3232235521, "inet takes no JSON number"),
        ("net", 10, "cidr takes no JSON number"),
        ("mac", 8, "macaddr takes no JSON number"),
        ("bits", 1010, "bit(4) takes no JSON number; give a string of 0s and 1s"),
        ("vb", 1, "bit varying takes no JSON number"),
        ("tv", 1, "tsvector takes no JSON number"),
        ("p", 1.5, "point takes no JSON number"),
        ("r", 3, 'int4range takes no JSON number; give a string such as "[1,5)"'),
        ("dr", 3, "daterange takes no JSON number"),
        ("e", 1, "mood takes no JSON number; give one of its labels"),
        ("d", 20240301, "date takes no JSON number"),
        ("ts", 1709287200, "timestamp with time zone takes no JSON number"),
        ("u", 7, "uuid takes no JSON number"),
        ("ok", 1, "boolean takes no JSON number; give true or false"),
        ("m", True, "money, not boolean"),
        ("i", True, "interval, not boolean"),
        ("m", "12 apples", "money"),
        ("i", "soon", "interval"),
        ("ip", "not an address", "inet"),
        ("bits", "10", "bit string length"),
        ("r", "[5,1)", "range lower bound"),
        ("e", "angry", "mood"),
        ("m", 1e17, "money"),
    ],
)
def test_a_value_a_type_cannot_take_names_the_field_and_the_type(
    service: Service, handle: str, field: str, value: Any, words: str
) -> None:
    run(service, "data/create", handle, collection="kinds", id="1", data={})
    with pytest.raises(InvalidParams) as raised:
        run(service, "data/update", handle, collection="kinds", id="1", data={field: value})
    assert raised.value.field == f"data.{field}"
    assert words in str(raised.value)
    assert listed(service, handle, "kinds")[0][field] is None
