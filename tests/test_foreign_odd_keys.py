"""Keys of tables dbhandles did not create that are no plain integer or text (issue 14, findings
1-4, 11c): the id a listing shows is never null, one per row, JSON, reached by read, update and
delete as exactly that row, and keyset paging by 1 (``nextCursor`` and ``query-open``/``next``,
both ways) lists every row once, as the listing and the count do.

A key no id can name soundly (docs/foreign-tables.md "Keys no id can name") is served as the key
of a table without one, read-only: SQLite by rowid (a ``WITHOUT ROWID`` table as a view is) while a
key holds a REAL infinity, a BLOB (one column) or both numbers and text; PostgreSQL by all its
columns while a float key holds NaN or ±Infinity, and always for a key of ``bytea``, ``jsonb``,
``boolean`` or an array. An inheritance parent serves ``ONLY`` its own rows. The databases are
written with plain ``sqlite3`` and plain SQL, as another tool would.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
import pytest
from psycopg import sql

from dbhandles import Service
from dbhandles.documents import id_text
from dbhandles.errors import ReadOnly
from tests.pgserver import postgres_config

SQLITE_SCHEMA = """
CREATE TABLE ri (k REAL PRIMARY KEY, v TEXT);
INSERT INTO ri VALUES (9e999, 'inf'), (-9e999, 'minus inf'), (2.5, 'two and a half');
CREATE TABLE amb (k PRIMARY KEY, v);
INSERT INTO amb VALUES (1, 'int'), ('1', 'text'), (2.5, 'real'), ('2.5', 'real text'),
    (x'31', 'blob');
CREATE TABLE bk (k BLOB PRIMARY KEY, v TEXT);
INSERT INTO bk VALUES (x'31', 'one'), (x'00ff', 'two'), (x'', 'empty');
CREATE TABLE ci (a REAL, b INT, v TEXT, PRIMARY KEY (a, b));
INSERT INTO ci VALUES (9e999, 1, 'inf'), (-9e999, 1, 'minus inf'), (1.5, 1, 'finite');
CREATE TABLE wr (k PRIMARY KEY, v) WITHOUT ROWID;
INSERT INTO wr VALUES (1, 'int'), ('1', 'text'), (9e999, 'inf');
CREATE TABLE wci (a REAL, b INT, v TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID;
INSERT INTO wci VALUES (9e999, 1, 'same'), (-9e999, 1, 'same'), (2.0, 1, 'same');
CREATE VIEW vv AS SELECT k, 'same' AS v FROM ri;
CREATE TABLE tb (k TEXT PRIMARY KEY, v TEXT);
INSERT INTO tb VALUES ('a', 'text'), (x'61', 'blob');
CREATE TABLE ikm (k INT PRIMARY KEY, v TEXT);
INSERT INTO ikm VALUES (1, 'int'), ('abc', 'text'), (9e999, 'inf');
CREATE TABLE rfin (k REAL PRIMARY KEY, v TEXT);
INSERT INTO rfin VALUES (-1e300, 'low'), (0.5, 'half'), (3.0, 'three');
CREATE TABLE txt (k TEXT PRIMARY KEY, v TEXT);
INSERT INTO txt VALUES ('1', 'one'), ('2.5', 'two and a half'), ('abc', 'letters');
CREATE TABLE ik (k INT PRIMARY KEY, v TEXT);
INSERT INTO ik VALUES (-5, 'minus five'), (1, 'one'), (7, 'seven');
CREATE TABLE cmix (a, b INT, v TEXT, PRIMARY KEY (a, b));
INSERT INTO cmix VALUES (1, 1, 'int'), ('1', 1, 'text'), (2.5, 1, 'real'), (x'31', 1, 'blob');
"""

POSTGRES_SCHEMA = """
CREATE TABLE pri (k float8 PRIMARY KEY, v text);
INSERT INTO pri VALUES ('Infinity', 'inf'), ('-Infinity', 'minus inf'), ('NaN', 'nan'),
    (2.5, 'two and a half');
CREATE TABLE pci (a float8, b int, v text, PRIMARY KEY (a, b));
INSERT INTO pci VALUES ('Infinity', 1, 'same'), ('NaN', 1, 'same'), ('-Infinity', 1, 'same'),
    (1.5, 1, 'same');
CREATE TABLE pnum (k numeric PRIMARY KEY, v text);
INSERT INTO pnum VALUES ('NaN', 'nan'), ('Infinity', 'inf'), ('-Infinity', 'minus inf'),
    (1.5, 'one and a half');
CREATE TABLE preal (k real PRIMARY KEY, v text);
INSERT INTO preal VALUES ('NaN', 'nan'), (0.5, 'half');
CREATE TABLE pby (k bytea PRIMARY KEY, v text);
INSERT INTO pby VALUES ('\\x31', 'one'), ('\\x00ff', 'two'), ('\\x', 'empty');
CREATE TABLE pjs (k jsonb PRIMARY KEY, v text);
INSERT INTO pjs VALUES ('1', 'number'), ('"1"', 'string'), ('{"a": 1}', 'object'),
    ('[1]', 'array'), ('{"b": ["x, y", "k: v"]}', 'spaced strings');
CREATE TABLE pbo (k boolean PRIMARY KEY, v text);
INSERT INTO pbo VALUES (true, 'yes'), (false, 'no');
CREATE TABLE parr (k int[] PRIMARY KEY, v text);
INSERT INTO parr VALUES ('{1}', 'one'), ('{1,2}', 'one two'), ('{}', 'none');
CREATE TABLE pcb (a text, b boolean, v text, PRIMARY KEY (a, b));
INSERT INTO pcb VALUES ('x', true, 'x yes'), ('x', false, 'x no');
CREATE DOMAIN posf AS float8 CHECK (VALUE > 0);
CREATE TABLE pdom (k posf PRIMARY KEY, v text);
INSERT INTO pdom VALUES ('Infinity', 'inf'), (1.5, 'one and a half');
CREATE TABLE pfin (k float8 PRIMARY KEY, v text);
INSERT INTO pfin VALUES (-1e300, 'low'), (0.5, 'half'), (3, 'three');
CREATE TABLE pnfin (k numeric PRIMARY KEY, v text);
INSERT INTO pnfin VALUES (-2, 'minus two'), (0.25, 'quarter'), (12345678901234567.89, 'long');
CREATE TABLE par (id int PRIMARY KEY, v text);
CREATE TABLE chi (extra text, PRIMARY KEY (id)) INHERITS (par);
INSERT INTO par VALUES (1, 'parent 1'), (2, 'parent 2');
INSERT INTO chi VALUES (2, 'child 2', 'x'), (3, 'child 3', 'x');
"""

#: (engine, table, whether it is written through its key, the SQL listing ``v`` in the order of
#: its key when the listing follows it)
#: Tables written by position, not through a key, per engine.
_UNKEYED = {
    "sqlite": "ri amb bk ci wr wci vv tb ikm",
    "postgres": "pri pci pnum preal pby pjs pbo parr pcb pdom",
}
_KEYED: list[tuple[str, str, str | None]] = [
    ("sqlite", "rfin", "SELECT v FROM rfin ORDER BY k"),
    ("sqlite", "txt", "SELECT v FROM txt ORDER BY k"),
    ("sqlite", "ik", "SELECT v FROM ik ORDER BY k"),
    ("sqlite", "cmix", None),
    ("postgres", "pfin", "SELECT v FROM pfin ORDER BY k"),
    ("postgres", "pnfin", "SELECT v FROM pnfin ORDER BY k"),
    ("postgres", "par", "SELECT v FROM ONLY par ORDER BY id"),
]
CASES: list[tuple[str, str, bool, str | None]] = [
    (engine, table, False, None) for engine, tables in _UNKEYED.items() for table in tables.split()
] + [(engine, table, True, listing) for engine, table, listing in _KEYED]


class Case(NamedTuple):
    engine: str
    table: str
    #: Whether the table is written through its key.
    writable: bool
    #: The SQL listing ``v`` in the order of its key, when the listing follows it.
    ordered: str | None


def _params() -> list[Any]:
    return [
        pytest.param(Case(*case), id=f"{case[0]}-{case[1]}", marks=[pytest.mark.postgres])
        if case[0] == "postgres"
        else pytest.param(Case(*case), id=f"{case[0]}-{case[1]}")
        for case in CASES
    ]


class Db:
    """A database written by another tool, its handle, and plain SQL on it."""

    def __init__(self, service: Service, handle: str, query: Callable[[str], list[Any]]) -> None:
        self.service = service
        self.handle = handle
        self.query = query

    def run(self, name: str, **params: Any) -> dict[str, Any]:
        return self.service.execute(name, {"dbHandle": self.handle, **params})

    def items(self, table: str, **params: Any) -> list[dict[str, Any]]:
        return list(self.run("data/list", collection=table, limit=500, **params)["items"])


def sqlite_db(service: Service, tmp_path: Path) -> Db:
    path = tmp_path / "odd.db"
    conn = sqlite3.connect(path)
    conn.executescript(SQLITE_SCHEMA)
    conn.close()

    def query(statement: str) -> list[Any]:
        with sqlite3.connect(path) as conn:
            rows = [r[0] for r in conn.execute(statement)]
        conn.close()
        return rows

    opened = service.execute("data/open", {"adapter": "sqlite", "config": {"path": str(path)}})
    return Db(service, str(opened["dbHandle"]), query)


def postgres_db(service: Service, tmp_path: Path) -> Db:
    pg = postgres_config(tmp_path)
    schema = sql.Identifier(pg["schema"])
    with psycopg.connect(pg["url"], autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
        conn.execute(sql.SQL("SET search_path = {}").format(schema))
        conn.execute(POSTGRES_SCHEMA)

    def query(statement: str) -> list[Any]:
        with psycopg.connect(pg["url"], autocommit=True) as conn:
            conn.execute(sql.SQL("SET search_path = {}").format(schema))
            return [r[0] for r in conn.execute(statement.encode()).fetchall()]

    opened = service.execute("data/open", {"adapter": "postgres", "config": pg})
    return Db(service, str(opened["dbHandle"]), query)


def open_db(engine: str, service: Service, tmp_path: Path) -> Db:
    return sqlite_db(service, tmp_path) if engine == "sqlite" else postgres_db(service, tmp_path)


def walk_cursor(db: Db, table: str, **params: Any) -> list[dict[str, Any]]:
    """Every page of 1 through ``nextCursor``."""
    found: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        extra = {"cursor": cursor} if cursor is not None else {}
        page = db.run("data/list", collection=table, limit=1, **params, **extra)
        found += page["items"]
        cursor = page.get("nextCursor")
        if cursor is None:
            return found
    raise AssertionError(f"paging {table} by 1 did not end: {found}")


def walk_query(db: Db, table: str, **params: Any) -> list[dict[str, Any]]:
    """Every page of 1 through ``data/query-open`` and ``data/query-next``."""
    opened = db.run("data/query-open", collection=table, pageSize=1, **params)
    handle = opened["queryHandle"]
    found: list[dict[str, Any]] = []
    for _ in range(100):
        page = db.service.execute("data/query-next", {"queryHandle": handle})
        found += page["items"]
        if not page.get("hasMore") or not page["items"]:
            db.service.execute("data/query-close", {"queryHandle": handle})
            return found
    raise AssertionError(f"query over {table} by 1 did not end: {found}")


@pytest.fixture(params=_params())
def odd(request: pytest.FixtureRequest, service: Service, tmp_path: Path) -> tuple[Db, Case]:
    """A table of ``CASES`` (each engine's database opened fresh) and its case."""
    case: Case = request.param
    return open_db(case.engine, service, tmp_path), case


def given_ids(record_id: Any) -> list[Any]:
    """The spellings of an id every command takes: as listed, and its text."""
    return [record_id] if isinstance(record_id, str) else [record_id, id_text(record_id)]


def test_ids_are_json_distinct_and_never_null(odd: tuple[Db, Case]) -> None:
    db, (_, table, writable, ordered) = odd
    items = db.items(table)
    ids = [item["id"] for item in items]
    assert None not in ids
    json.dumps(items, allow_nan=False)  # JSON: no NaN, no Infinity
    assert len({json.dumps(i, sort_keys=True) for i in ids}) == len(ids)
    assert db.run("data/count", collection=table)["total"] == len(items)
    described = db.run("data/schema", collection=table)["table"]
    assert ("readOnly" not in described) is writable, described.get("readOnly")
    if ordered is not None:  # served by its key: listed in SQL's own order of the key
        assert [item["v"] for item in items] == db.query(ordered)


def test_an_id_of_json_is_compact(odd: tuple[Db, Case]) -> None:
    """An id that is JSON (a compound key, a table served by its columns) is compact on both
    engines: no space outside its strings (PostgreSQL's ``jsonb`` text wrote ``[[1, 2],1]`` and
    ``[{"$base64": ""},3]``), and a string's own spaces are kept."""
    db, table = odd[0], odd[1].table
    for item in db.items(table):
        record_id = item["id"]
        if isinstance(record_id, str) and record_id[:1] in "[{":
            head = record_id.rpartition("#")[0] if re.search(r"\]#\d+$", record_id) else record_id
            json.loads(head)
            assert " " not in re.sub(r'"(?:[^"\\]|\\.)*"', '""', head), record_id


def test_keyset_paging_by_one_lists_every_row_once(odd: tuple[Db, Case]) -> None:
    db, table = odd[0], odd[1].table
    items = db.items(table)
    backwards = [{"field": "id", "direction": "desc"}]
    assert walk_cursor(db, table) == items
    assert walk_query(db, table) == items
    assert walk_cursor(db, table, orderBy=backwards) == items[::-1]
    assert walk_query(db, table, orderBy=backwards) == items[::-1]
    by_v = [{"field": "v", "direction": "asc"}, {"field": "id", "direction": "desc"}]
    assert sorted(map(repr, walk_cursor(db, table, orderBy=by_v))) == sorted(map(repr, items))


def test_read_update_delete_by_a_listed_id_reach_exactly_that_row(odd: tuple[Db, Case]) -> None:
    db, (_, table, writable, _) = odd
    items = db.items(table)
    for item in items:
        for given in given_ids(item["id"]):
            read = db.run("data/read", collection=table, id=given)
            assert read["found"] and read["data"] == item, (given, read)
    if not writable:
        with pytest.raises(ReadOnly):
            db.run("data/update", collection=table, id=items[0]["id"], data={"v": "changed"})
        with pytest.raises(ReadOnly):
            db.run("data/delete", collection=table, id=items[0]["id"])
        assert db.items(table) == items
        return
    for n, item in enumerate(items):
        db.run("data/update", collection=table, id=item["id"], data={"v": f"changed {n}"})
        now = {json.dumps(i["id"]): i["v"] for i in db.items(table)}
        want = {json.dumps(i["id"]): f"changed {m}" if m <= n else i["v"] for m, i in
                enumerate(items)}  # fmt: skip
        assert now == want
    deleted = db.run("data/delete", collection=table, id=items[0]["id"])
    assert deleted["deleted"] in (True, 1) or deleted.get("found", True)
    assert [i["id"] for i in db.items(table)] == [i["id"] for i in items[1:]]


@pytest.mark.postgres
def test_an_inheritance_parent_serves_and_writes_only_its_own_rows(
    service: Service, tmp_path: Path
) -> None:
    """The child ``chi`` holds id 2 too: the parent lists, counts, reads, updates and deletes its
    own row 2 only (``FROM ONLY``), and the child keeps its rows."""
    db = postgres_db(service, tmp_path)
    assert [i["v"] for i in db.items("par")] == ["parent 1", "parent 2"]
    assert db.run("data/count", collection="par")["total"] == 2
    assert db.run("data/read", collection="par", id="3")["found"] is False
    db.run("data/update", collection="par", id="2", data={"v": "parent two"})
    assert db.query("SELECT v FROM chi ORDER BY id") == ["child 2", "child 3"]
    db.run("data/delete", collection="par", id=2)
    assert db.query("SELECT v FROM chi ORDER BY id") == ["child 2", "child 3"]
    assert db.query("SELECT v FROM ONLY par ORDER BY id") == ["parent 1"]
    created = db.run("data/create", collection="par", id="4", data={"v": "parent 4"})
    assert created["id"] == "4"
    assert db.query("SELECT v FROM ONLY par ORDER BY id") == ["parent 1", "parent 4"]
    assert [i["v"] for i in db.items("chi")] == ["child 2", "child 3"]


def listed_key(db: Db, table: str) -> list[str]:
    """The ``primaryKey`` ``data/schema`` lists ``table`` with, among every table."""
    listed = db.run("data/schema")["collections"]
    return list(next(t for t in listed if t["name"] == table)["primaryKey"])


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_key_set_right_again_is_served_by_it_again(
    engine: str, service: Service, tmp_path: Path
) -> None:
    """The odd key is asked per command: once the infinities are gone (another tool deleted them)
    the table is written through its key again."""
    db = open_db(engine, service, tmp_path)
    table = "ri" if engine == "sqlite" else "pri"
    assert db.run("data/schema", collection=table)["table"].get("readOnly")
    assert listed_key(db, table) == []
    if engine == "sqlite":
        path = tmp_path / "odd.db"
        with sqlite3.connect(path) as conn:
            conn.execute("DELETE FROM ri WHERE abs(k) > 1e308")
        conn.close()
    else:
        pg = postgres_config(tmp_path)
        with psycopg.connect(pg["url"], autocommit=True) as conn:
            conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(pg["schema"])))
            conn.execute("DELETE FROM pri WHERE k IN ('NaN', 'Infinity', '-Infinity')")
    assert [i["id"] for i in db.items(table)] == [2.5]
    assert db.run("data/schema", collection=table)["table"].get("readOnly") is None
    assert listed_key(db, table) == ["k"]
    db.run("data/update", collection=table, id="2.5", data={"v": "again"})
    assert db.run("data/read", collection=table, id=2.5)["data"]["v"] == "again"


#: (engine, table, its SQL, the row that makes its key name no row, what the reason says)
FLIPS = [
    ("sqlite", "fnull", "k TEXT PRIMARY KEY, v TEXT", "(NULL, 'bad')", '"k" holds NULL'),
    ("sqlite", "finf", "k REAL PRIMARY KEY, v TEXT", "(9e999, 'bad')", '"k" holds a REAL infinity'),
    ("sqlite", "fblob", "k TEXT PRIMARY KEY, v TEXT", "(x'61', 'bad')", '"k" holds a BLOB'),
    ("sqlite", "fmix", "k PRIMARY KEY, v", "(5, 'bad')", '"k" holds both numbers and text'),
    (
        "sqlite",
        "fcomp",
        "a TEXT, b REAL, v TEXT, PRIMARY KEY (a, b)",
        "('z', 9e999, 'bad')",
        '"b" holds a REAL infinity',
    ),
    ("postgres", "fnan", "k float8 PRIMARY KEY, v text", "('NaN', 'bad')", "NaN"),
]


def _flip_params() -> list[Any]:
    return [
        pytest.param(*case, id=f"{case[0]}-{case[1]}",
                     marks=[pytest.mark.postgres] if case[0] == "postgres" else [])
        for case in FLIPS
    ]  # fmt: skip


@pytest.mark.parametrize(("engine", "table", "columns", "bad", "reason"), _flip_params())
def test_cursors_made_on_either_side_of_a_key_turning_bad_end_with_schema_changed(
    engine: str, table: str, columns: str, bad: str, reason: str, service: Service,
    tmp_path: Path,
) -> None:  # fmt: skip
    """A table served by its key while every key names a row, by rowid (or its columns) while
    one does not (docs/foreign-tables.md "Keys no id can name"): a ``nextCursor`` and a query
    made on one side of the flip end with ``conflict`` ``schema_changed`` on the other, both
    ways, never a page of the wrong positions (rows skipped or repeated); cursors made after it
    page every row once, on a second handle of the same database too, and the read-only reason
    says which key holds what."""
    db = open_db(engine, service, tmp_path)
    second = Db(service, "", db.query)
    if engine == "sqlite":
        path = tmp_path / "odd.db"
        config: dict[str, Any] = {"path": str(path)}

        def write(statement: str) -> None:
            with sqlite3.connect(path) as conn:
                conn.execute(statement)
            conn.close()
    else:
        config = postgres_config(tmp_path)

        def write(statement: str) -> None:
            with psycopg.connect(config["url"], autocommit=True) as conn:
                conn.execute(
                    sql.SQL("SET search_path = {}").format(sql.Identifier(config["schema"]))
                )
                conn.execute(statement.encode())

    good = "(10, 'a'), (20, 'b'), (30, 'c'), (40, 'd')"
    if "TEXT PRIMARY" in columns or columns.startswith("k PRIMARY"):
        good = "('a', 'a'), ('b', 'b'), ('c', 'c'), ('d', 'd')"
    elif columns.startswith("a TEXT"):
        good = "('a', 1, 'a'), ('b', 1, 'b'), ('c', 1, 'c'), ('d', 1, 'd')"
    write(f"CREATE TABLE {table} ({columns})")
    write(f"INSERT INTO {table} VALUES {good}")
    second.handle = str(
        service.execute("data/open", {"adapter": engine, "config": config})["dbHandle"]
    )

    def cursors(on: Db) -> tuple[str, str]:
        """A ``nextCursor`` after the first page of 2, and a query past its first page of 2."""
        page = on.run("data/list", collection=table, limit=2)
        assert len(page["items"]) == 2 and page["hasMore"]
        query = on.run("data/query-open", collection=table, pageSize=2)["queryHandle"]
        assert len(service.execute("data/query-next", {"queryHandle": query})["items"]) == 2
        return str(page["nextCursor"]), str(query)

    def refused(made: tuple[str, str]) -> None:
        for answer in (
            service.dispatch("data/list", {"dbHandle": db.handle, "collection": table,
                                           "limit": 2, "cursor": made[0]}),
            service.dispatch("data/query-next", {"queryHandle": made[1]}),
        ):  # fmt: skip
            assert answer["success"] is False, answer
            assert (answer["code"], answer["reason"]) == ("conflict", "schema_changed")

    def pages_every_row(count: int) -> None:
        for on in (db, second):
            for walk in (walk_cursor, walk_query):
                values = sorted(str(r["v"]) for r in walk(on, table))
                assert len(values) == count and len(set(values)) == count, (walk, values)

    keyed = [cursors(db), cursors(second)]
    write(f"INSERT INTO {table} VALUES {bad}")
    for made in keyed:
        refused(made)
    described = db.run("data/schema", collection=table)["table"]
    assert described["primaryKey"] == [] and reason in described["readOnly"]
    pages_every_row(5)
    keyless = [cursors(db), cursors(second)]
    write(f"DELETE FROM {table} WHERE v = 'bad'")
    for made in keyless:
        refused(made)
    assert db.run("data/schema", collection=table)["table"].get("readOnly") is None
    pages_every_row(4)
