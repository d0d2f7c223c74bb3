"""Issue 12: SQL a database file carries never runs with more than ``trusted_schema=OFF`` allows.

On SQLite before 3.45 (JSON functions not innocuous) a connection trusts a file's schema only
while nothing dbhandles did not write calls a function SQLite does not mark innocuous (JSON
excepted) or has a view or trigger read a virtual table (``adapters/sqlite_trust.py``). A hostile
file's CHECK constraints, defaults, generated columns, index expressions, views and triggers, on a
foreign table, beside dbhandles' collections or not, are refused (``access_denied``) instead of
running; plain foreign tables, JSON views and dbhandles' JSON indexes keep working. The same
attacks replayed by a non-admin actor against a real server close the file. See docs/security.md.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Context, Service
from dbhandles.adapters.sql_facets import HASH_FUNCTION
from dbhandles.adapters.sqlite_schema import create_table_sql, index_sql, json_functions_innocuous
from dbhandles.adapters.sqlite_trust import REGISTERED_FUNCTIONS, distrust
from dbhandles.adapters.sqlite_values import BASE64_FUNCTION, DOCUMENT_FUNCTION, RECORD_FUNCTION
from dbhandles.errors import DbHandlesError
from dbhandles.settings import Settings
from tests.test_security_tenants import Tenants, serve_tenants

ALICE = Context(actor="alice", session_id="s-alice", is_admin=False, trusted_local=False)
SRC = Path(__file__).resolve().parent.parent / "src" / "dbhandles"

#: A dbhandles collection with a JSON index, as dbhandles writes them.
COLLECTION = (
    create_table_sql("notes"),
    index_sql("notes", "createdAt", "created_at"),
    index_sql("notes", "a", "json_extract(data, '$.a')"),
)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with Service(settings=Settings(home=tmp_path / "home")) as svc:
        svc.tokens.create("alice")
        yield svc


def shell(path: Path) -> sqlite3.Connection:
    """A connection to ``path`` as a shell with functions of dbhandles' names would open it."""
    conn = sqlite3.connect(path)
    conn.create_function("regexp", 2, lambda p, v: 1, deterministic=True)
    conn.create_function(HASH_FUNCTION, 2, lambda s, i: 1, deterministic=True)
    for name in (RECORD_FUNCTION, DOCUMENT_FUNCTION, BASE64_FUNCTION):
        conn.create_function(name, 1, lambda text: text, deterministic=True)
    return conn


def plant(folder: Path, *sql: str, name: str = "planted.sqlite") -> Path:
    """A database file put in ``folder`` from a shell (``sqlite3`` trusts its own schema)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    conn = shell(path)
    for statement in sql:
        conn.execute(statement)
    conn.commit()
    conn.close()
    return path


def space(service: Service) -> Path:
    return service.settings.space_root() / "alice"


def run(service: Service, name: str, params: dict[str, Any]) -> dict[str, Any]:
    return dict(service.execute(name, params, context=ALICE))


def attempt(service: Service, path: Path, command: str, params: dict[str, Any]) -> DbHandlesError:
    """The error alice gets opening ``path`` and running ``command`` on it (at either step)."""
    try:
        opened = run(service, "data/open", {"adapter": "sqlite", "config": {"path": path.name}})
    except DbHandlesError as exc:
        return exc
    with pytest.raises(DbHandlesError) as caught:
        run(service, command, {"dbHandle": opened["dbHandle"], **params})
    return caught.value


def rows(path: Path, table: str) -> list[tuple[Any, ...]]:
    conn = shell(path)
    try:
        return conn.execute(f'SELECT * FROM "{table}"').fetchall()
    finally:
        conn.close()


needs_old_sqlite = pytest.mark.skipif(
    json_functions_innocuous(), reason="this SQLite never trusts a schema (JSON is innocuous)"
)

#: ``(schema statements, what the attack runs, the object the refusal may name)``: each runs
#: ``regexp()`` (dbhandles' own function, never innocuous) or another function SQLite does not
#: mark innocuous only if the schema is trusted.
HOSTILE = [
    (["CREATE TABLE f (id INTEGER PRIMARY KEY, a TEXT CHECK (regexp('x', a)))"],
     ("data/create", {"collection": "f", "data": {"a": "x"}}), "regexp()"),
    (["CREATE TABLE f (id INTEGER PRIMARY KEY, a TEXT CHECK (a REGEXP 'x'))"],
     ("data/create", {"collection": "f", "data": {"a": "x"}}), "regexp()"),
    (['CREATE TABLE f (id INTEGER PRIMARY KEY, a TEXT CHECK ("REGEXP"/**/(\'x\', a)))'],
     ("data/create", {"collection": "f", "data": {"a": "x"}}), "regexp()"),
    ([f"CREATE TABLE f (id INTEGER PRIMARY KEY, a TEXT CHECK ({HASH_FUNCTION}(a, a)))"],
     ("data/create", {"collection": "f", "data": {"a": "x"}}), f"{HASH_FUNCTION}()"),
    ([f"CREATE TABLE f (id INTEGER PRIMARY KEY, a TEXT CHECK ({RECORD_FUNCTION}(a) IS NULL))"],
     ("data/create", {"collection": "f", "data": {"a": "x"}}), f"{RECORD_FUNCTION}()"),
    ([f"CREATE TABLE f (id INTEGER PRIMARY KEY, a TEXT, g AS ({DOCUMENT_FUNCTION}(a)))",
      "INSERT INTO f (a) VALUES ('[1]')"],
     ("data/list", {"collection": "f"}), f"{DOCUMENT_FUNCTION}()"),
    (["CREATE TABLE f (id INTEGER PRIMARY KEY, a TEXT, b DEFAULT (regexp('x', 'x')))"],
     ("data/create", {"collection": "f", "data": {"a": "x"}}), "regexp()"),
    (["CREATE TABLE f (id INTEGER PRIMARY KEY, a TEXT, g AS (regexp('x', a)))",
      "INSERT INTO f (a) VALUES ('x')"],
     ("data/list", {"collection": "f"}), "regexp()"),
    (["CREATE TABLE f (id INTEGER PRIMARY KEY, a TEXT)",
      "CREATE INDEX fx ON f (regexp('x', a))"],
     ("data/create", {"collection": "f", "data": {"a": "x"}}), "regexp()"),
    (["CREATE TABLE f (id INTEGER PRIMARY KEY, a TEXT)",
      "CREATE INDEX fx ON f (a) WHERE a REGEXP 'x'"],
     ("data/create", {"collection": "f", "data": {"a": "x"}}), "regexp()"),
    (["CREATE TABLE f (id INTEGER PRIMARY KEY, a TEXT)", "CREATE TABLE log (a TEXT)",
      "CREATE TRIGGER ft AFTER INSERT ON f BEGIN INSERT INTO log VALUES (regexp('x', new.a)); END"],
     ("data/create", {"collection": "f", "data": {"a": "x"}}), "regexp()"),
    (["CREATE TABLE f (id INTEGER PRIMARY KEY, a TEXT)", "INSERT INTO f (a) VALUES ('x')",
      "CREATE VIEW v AS SELECT id, regexp('x', a) AS m FROM f"],
     ("data/list", {"collection": "v"}), "regexp()"),
    (["CREATE VIRTUAL TABLE ft USING fts5(a)", "CREATE TABLE f (id INTEGER PRIMARY KEY, a TEXT)",
      "CREATE TRIGGER fi AFTER INSERT ON f BEGIN INSERT INTO ft (a) VALUES (new.a); END"],
     ("data/create", {"collection": "f", "data": {"a": "x"}}), '"ft"'),
]  # fmt: skip


@needs_old_sqlite
@pytest.mark.parametrize("beside_collections", [False, True], ids=["alone", "beside-collections"])
@pytest.mark.parametrize(("schema", "attack", "names"), HOSTILE)
def test_a_hostile_schema_never_runs_trusted(
    service: Service, schema: list[str], attack: tuple[str, dict[str, Any]], names: str,
    beside_collections: bool,
) -> None:  # fmt: skip
    sql = [*COLLECTION, *schema] if beside_collections else schema
    path = plant(space(service), *sql)
    before = rows(path, "f")
    command, params = attack
    error = attempt(service, path, command, params)
    assert (error.code, error.http_status) == ("access_denied", 403), error
    assert names.lower() in error.message.lower(), error.message
    assert "Traceback" not in error.message and str(path) not in error.message
    assert rows(path, "f") == before  # nothing written


@needs_old_sqlite
def test_a_plain_foreign_database_stays_trusted_and_json_indexes_work(service: Service) -> None:
    path = plant(
        space(service),
        *COLLECTION,
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL CHECK (length(name) > 0),"
        " doc TEXT DEFAULT ('{}') CHECK (json_valid(doc)), city AS (json_extract(doc, '$.city')),"
        " made TEXT DEFAULT (datetime('now')), town TEXT COLLATE NOCASE REFERENCES towns(id))",
        "CREATE TABLE towns (id TEXT PRIMARY KEY)",
        "CREATE INDEX people_city ON people (json_extract(doc, '$.city')) WHERE name LIKE 'a%'",
        "CREATE VIEW cities AS SELECT id, doc ->> '$.city' AS city, upper(name) AS n FROM people",
        "CREATE TABLE log (name TEXT)",
        "CREATE TRIGGER people_log AFTER INSERT ON people BEGIN "
        "INSERT INTO log VALUES (json_object('n', new.name)); END",
        "CREATE VIRTUAL TABLE ft USING fts5(a)",
    )
    handle = run(service, "data/open", {"adapter": "sqlite", "config": {"path": path.name}})
    params = {"dbHandle": handle["dbHandle"]}
    made = run(service, "data/create", {**params, "collection": "people",
                                        "data": {"name": "ann", "doc": '{"city": "Oslo"}'}})  # fmt: skip
    assert made["data"]["city"] == "Oslo"
    assert (
        run(service, "data/list", {**params, "collection": "cities"})["items"][0]["city"] == "Oslo"
    )
    assert rows(path, "log") == [('{"n":"ann"}',)]
    # dbhandles' own collection, JSON index included, is written and read.
    run(service, "data/create", {**params, "collection": "notes", "data": {"id": "n1", "a": 2}})
    found = run(service, "data/list", {**params, "collection": "notes", "filter": {"a": 2}})
    assert [r["id"] for r in found["items"]] == ["n1"]
    assert run(service, "data/list", {**params, "collection": "ft"})["count"] == 0


def test_a_view_over_a_full_text_table_is_refused_naming_both(service: Service) -> None:
    # SQLite runs a view over a virtual table that is not innocuous (every FTS and R*Tree table
    # of 3.40) only for a schema it trusts; a database's views get no more than that.
    path = plant(
        space(service),
        "CREATE VIRTUAL TABLE ft USING fts5(a)",
        "INSERT INTO ft VALUES ('hello world')",
        "CREATE VIEW over AS SELECT rowid AS id, a FROM ft",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT)",
    )
    handle = run(service, "data/open", {"adapter": "sqlite", "config": {"path": path.name}})
    params = {"dbHandle": handle["dbHandle"]}
    for command in ("data/list", "data/count"):
        with pytest.raises(DbHandlesError) as caught:
            run(service, command, {**params, "collection": "over"})
        error = caught.value
        assert error.code == "access_denied", error
        assert '"over"' in error.message and '"ft"' in error.message, error.message
        assert "server's files" not in error.message  # an FTS table shows nothing of the host
    # The full-text table itself and the rest of the file are served.
    assert run(service, "data/list", {**params, "collection": "ft"})["count"] == 1
    assert run(service, "data/list", {**params, "collection": "t"})["count"] == 0
    listed = {c["name"]: c for c in run(service, "data/schema", params)["collections"]}
    assert listed["over"]["refusedCode"] == "access_denied"


@needs_old_sqlite
def test_a_json_view_in_an_untrusted_file_is_refused_naming_it(service: Service) -> None:
    # The cost of SQLite 3.40 not marking JSON innocuous: once the schema is not trusted, its
    # JSON calls are refused too, by name, never run trusted.
    path = plant(
        space(service),
        "CREATE VIRTUAL TABLE ft USING fts5(a)",
        "CREATE VIEW over AS SELECT rowid AS id, a FROM ft",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, doc TEXT)",
        "INSERT INTO t (doc) VALUES ('{\"c\": 1}')",
        "CREATE VIEW jv AS SELECT id, json_extract(doc, '$.c') AS c FROM t",
    )
    handle = run(service, "data/open", {"adapter": "sqlite", "config": {"path": path.name}})
    with pytest.raises(DbHandlesError) as caught:
        run(service, "data/list", {"dbHandle": handle["dbHandle"], "collection": "jv"})
    error = caught.value
    assert error.code == "access_denied" and '"jv"' in error.message, error
    assert "json_extract()" in error.message and "trusted_schema=OFF" in error.message
    assert (
        run(service, "data/list", {"dbHandle": handle["dbHandle"], "collection": "t"})["count"] == 1
    )


def test_only_calls_count_not_names_strings_or_comments() -> None:
    def why(*sql: tuple[str, str]) -> str | None:
        return distrust([(kind, "x", "x", text) for kind, text in sql], {"ft"})

    assert (
        why(
            (
                "table",
                "CREATE TABLE x (a VARCHAR(10) REFERENCES regexp_log(a), "
                "b TEXT DEFAULT 'regexp(1, 2)' /* regexp(a, b) */ -- match(\n)",
            )
        )
        is None
    )
    assert (
        why(("view", "CREATE VIEW x AS SELECT json_extract(a, '$.b'), a -> '$.c' FROM t")) is None
    )
    assert why(("table", "CREATE TABLE x (a CHECK (A Regexp 'b'))")) is not None
    assert why(("table", "CREATE TABLE x (a CHECK ([regexp] ('b', a)))")) is not None
    assert why(("table", "CREATE TABLE x (a DEFAULT (load_extension('x')))")) is not None
    assert why(("view", "CREATE VIEW x AS SELECT snippet(ft) FROM t")) is not None
    assert (
        why(("view", 'CREATE VIEW x AS SELECT * FROM "FT"'))
        == 'the view "x" reads the virtual table "ft"'
    )
    # A table's own CHECK names no virtual table it could read (no subqueries there).
    assert why(("table", "CREATE TABLE x (ft TEXT)")) is None


def test_every_function_dbhandles_registers_is_never_trusted() -> None:
    constants = {
        "HASH_FUNCTION": HASH_FUNCTION,
        "RECORD_FUNCTION": RECORD_FUNCTION,
        "DOCUMENT_FUNCTION": DOCUMENT_FUNCTION,
        "BASE64_FUNCTION": BASE64_FUNCTION,
    }
    registered: set[str] = set()
    for source in SRC.rglob("*.py"):
        for found in re.finditer(r"create_function\(\s*([^,]+),", source.read_text()):
            name = found.group(1).strip()
            registered.add(constants.get(name, name.strip("\"'")))
    assert {"regexp", *constants.values()} <= registered <= REGISTERED_FUNCTIONS, registered


# -- the same, as alice against a real server ---------------------------------------------------------


@pytest.fixture
def tenants(tmp_path: Path) -> Iterator[Tenants]:
    yield from serve_tenants(tmp_path)


@pytest.mark.needs_server
@needs_old_sqlite
def test_a_hostile_file_planted_by_a_tenant_runs_nothing_trusted(tenants: Tenants) -> None:
    t = tenants
    folder = t.space("alice")
    for i, (schema, (command, params), names) in enumerate(HOSTILE):
        path = plant(folder, *COLLECTION, *schema, name=f"h{i}.sqlite")
        before = rows(path, "f")
        body = t.call(t.alice, "data/open", adapter="sqlite", config={"path": path.name})
        if body["success"]:
            body = t.call(t.alice, command, dbHandle=body["dbHandle"], **params)
        assert body["success"] is False and body["code"] == "access_denied", (schema, body)
        assert names.lower() in body["error"].lower(), body
        assert rows(path, "f") == before
    # A plain foreign table beside collections is served and written.
    path = plant(folder, *COLLECTION, "CREATE TABLE p (id INTEGER PRIMARY KEY, "
                                      "d TEXT CHECK (json_valid(d)))", name="plain.sqlite")  # fmt: skip
    handle = t.ok(t.alice, "data/open", adapter="sqlite", config={"path": path.name})["dbHandle"]
    t.ok(t.alice, "data/create", dbHandle=handle, collection="p", data={"d": "{}"})
    t.ok(t.alice, "data/create", dbHandle=handle, collection="notes", data={"id": "1", "a": 1})
    assert t.ok(t.alice, "data/list", dbHandle=handle, collection="notes",
                filter={"a": 1})["count"] == 1  # fmt: skip
