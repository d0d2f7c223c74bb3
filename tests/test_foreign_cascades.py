"""Deletes and key updates that the database cascades into tables a handle may not reach are
refused (issue 15, outside tester's finding 1).

A foreign key ``ON DELETE CASCADE`` (``SET NULL``, ``SET DEFAULT``, ``ON UPDATE ...``) makes the
database write rows of the referencing table itself. Through a handle that denies that table (by
``deniedCollections`` or by leaving it out of ``allowedCollections``), or that has a row filter,
``data/delete``, ``data/truncate``, a batch delete, a move by ``data/copy`` and an update of a
referenced key are ``permission_denied`` naming the table reached, and nothing is written. The
databases are built with plain ``sqlite3`` and plain SQL (PostgreSQL, on the suite's server).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.adapters.foreign_cascades import UNKNOWN, CascadeEdge, reached
from dbhandles.adapters.sqlite_foreign_schema import trigger_writes
from dbhandles.dbfiles import connect_sqlite
from dbhandles.errors import PermissionDenied
from tests.pg_restricted_helpers import open_postgres

SCHEMA = """
CREATE TABLE parent (id INTEGER PRIMARY KEY, code TEXT UNIQUE, note TEXT);
CREATE TABLE child (id INTEGER PRIMARY KEY,
                    pid INTEGER REFERENCES parent (id) ON DELETE CASCADE,
                    pcode TEXT REFERENCES parent (code) ON UPDATE CASCADE);
CREATE TABLE grandchild (id INTEGER PRIMARY KEY,
                         cid INTEGER REFERENCES child (id) ON DELETE SET NULL);
CREATE TABLE loose (id INTEGER PRIMARY KEY, pid INTEGER REFERENCES parent (id));
INSERT INTO parent VALUES (1, 'a', 'x'), (2, 'b', 'y');
INSERT INTO child VALUES (10, 1, 'a'), (20, 2, 'b');
INSERT INTO grandchild VALUES (100, 10);
"""


def run(service: Service, name: str, handle: str, **params: Any) -> Any:
    return service.execute(name, {"dbHandle": handle, **params})


def counts(service: Service, handle: str) -> dict[str, int]:
    return {t: run(service, "data/count", handle, collection=t)["total"]
            for t in ("parent", "child", "grandchild")}  # fmt: skip


def check_refused(service: Service, handle: str, full: str, reached_table: str) -> None:
    """Every write of ``parent`` that the database cascades is refused through ``handle``,
    naming ``reached_table``; ``full`` (an unrestricted handle) shows nothing changed."""
    before = counts(service, full)
    with pytest.raises(PermissionDenied, match=f'table "{reached_table}".*ON DELETE'):
        run(service, "data/delete", handle, collection="parent", id="1")
    with pytest.raises(PermissionDenied, match=f'table "{reached_table}"'):
        run(service, "data/truncate", handle, collection="parent")
    with pytest.raises(PermissionDenied, match=f'table "{reached_table}"'):
        run(service, "data/batch", handle,
            operations=[{"op": "delete", "collection": "parent", "id": "2"}])  # fmt: skip
    with pytest.raises(PermissionDenied, match=f'table "{reached_table}"'):
        service.execute("data/copy", {"from": {"dbHandle": handle, "collection": "parent"},
                                      "to": {"dbHandle": full, "collection": "parent_copy"},
                                      "move": True})  # fmt: skip
    assert counts(service, full) == before


def test_reached_walks_cascades_at_any_depth() -> None:
    edges = [
        CascadeEdge("child", "parent", "CASCADE", "CASCADE"),
        CascadeEdge("grandchild", "child", "SET NULL", "NO ACTION"),
        CascadeEdge("loose", "parent", "NO ACTION", "RESTRICT"),
        CascadeEdge("tree", "tree", "CASCADE", "NO ACTION"),
    ]
    assert reached(edges, "parent", False) == [
        ("child", "ON DELETE CASCADE"),
        ("grandchild", "ON DELETE SET NULL"),
    ]
    # A key update reaches the child; the child's rows are updated, not deleted.
    assert reached(edges, "parent", True) == [("child", "ON UPDATE CASCADE")]
    assert reached(edges, "tree", False) == [("tree", "ON DELETE CASCADE")]
    assert reached(edges, "loose", False) == []


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "family.db"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    conn.close()
    return path


def open_sqlite(service: Service, path: Path, **permissions: Any) -> str:
    opened = service.execute("data/open", {"adapter": "sqlite", "config": {"path": str(path)},
                                           "permissions": permissions})  # fmt: skip
    return str(opened["dbHandle"])


def test_sqlite_deletes_cascading_into_a_denied_table_are_refused(
    service: Service, database: Path
) -> None:
    full = open_sqlite(service, database)
    check_refused(service, open_sqlite(service, database, deniedCollections=["child"]), full,
                  "child")  # fmt: skip
    # Two steps away, through SET NULL: still a write the handle may not make.
    deep = open_sqlite(service, database, deniedCollections=["grandchild"])
    check_refused(service, deep, full, "grandchild")
    listed = open_sqlite(service, database, allowedCollections=["parent", "child", "parent_copy"])
    check_refused(service, listed, full, "grandchild")
    filtered = open_sqlite(service, database, rowFilter={"note": "x"})
    with pytest.raises(PermissionDenied, match="row filter"):
        run(service, "data/delete", filtered, collection="parent", id="1")


def test_sqlite_key_updates_cascading_into_a_denied_table_are_refused(
    service: Service, database: Path
) -> None:
    handle = open_sqlite(service, database, deniedCollections=["child"])
    with pytest.raises(PermissionDenied, match=r'table "child".*ON UPDATE CASCADE'):
        run(service, "data/update", handle, collection="parent", id="1", data={"code": "z"})
    full = open_sqlite(service, database)
    assert run(service, "data/read", full, collection="child", id="10")["data"]["pcode"] == "a"
    # A create cascades nothing, and writes of a table nothing references are untouched.
    run(service, "data/create", handle, collection="parent", data={"id": 3, "code": "c"})
    run(service, "data/delete", handle, collection="grandchild", id="100")


def test_sqlite_deletes_allowed_everywhere_still_cascade(service: Service, database: Path) -> None:
    handle = open_sqlite(service, database, deniedCollections=["loose"])
    run(service, "data/delete", handle, collection="parent", id="1")
    assert counts(service, handle) == {"parent": 1, "child": 1, "grandchild": 1}


PG_SCHEMA = """
CREATE TABLE parent (id integer PRIMARY KEY, code text UNIQUE, note text);
CREATE TABLE child (id integer PRIMARY KEY,
                    pid integer REFERENCES parent (id) ON DELETE CASCADE,
                    pcode text REFERENCES parent (code) ON UPDATE CASCADE);
CREATE TABLE grandchild (id integer PRIMARY KEY,
                         cid integer REFERENCES child (id) ON DELETE SET NULL);
INSERT INTO parent VALUES (1, 'a', 'x'), (2, 'b', 'y');
INSERT INTO child VALUES (10, 1, 'a'), (20, 2, 'b');
INSERT INTO grandchild VALUES (100, 10);
"""


@pytest.fixture
def pg(tmp_path: Path) -> dict[str, Any]:
    from tests.pgserver import postgres_schema

    return postgres_schema(tmp_path, PG_SCHEMA)


@pytest.mark.postgres
def test_postgres_deletes_cascading_into_a_denied_table_are_refused(
    service: Service, pg: dict[str, Any]
) -> None:
    full = open_postgres(service, pg)
    check_refused(service, open_postgres(service, pg, deniedCollections=["child"]), full, "child")
    check_refused(service, open_postgres(service, pg, deniedCollections=["grandchild"]), full,
                  "grandchild")  # fmt: skip
    handle = open_postgres(service, pg, deniedCollections=["child"])
    with pytest.raises(PermissionDenied, match=r'table "child".*ON UPDATE CASCADE'):
        run(service, "data/update", handle, collection="parent", id="1", data={"code": "z"})
    filtered = open_postgres(service, pg, rowFilter={"note": "x"})
    with pytest.raises(PermissionDenied, match="row filter"):
        run(service, "data/truncate", filtered, collection="parent")
    assert counts(service, full) == {"parent": 2, "child": 2, "grandchild": 1}
    allowed = open_postgres(service, pg, deniedCollections=["other"])
    run(service, "data/delete", allowed, collection="parent", id="1")
    assert counts(service, full) == {"parent": 1, "child": 1, "grandchild": 1}


# -- triggers: what a write fires writes other tables too ------------------------------------------

TRIGGERS = """
CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE audit (msg TEXT);
CREATE TABLE stock (name TEXT, n INTEGER);
CREATE TABLE history (name TEXT);
CREATE TABLE quiet (id INTEGER PRIMARY KEY, note TEXT);
CREATE TRIGGER item_added AFTER INSERT ON item BEGIN INSERT INTO audit VALUES (new.name); END;
CREATE TRIGGER item_renamed AFTER UPDATE OF name ON item
    BEGIN UPDATE stock SET name = new.name WHERE name = old.name; END;
CREATE TRIGGER item_gone BEFORE DELETE ON item BEGIN DELETE FROM stock WHERE name = old.name; END;
CREATE TRIGGER stock_gone AFTER DELETE ON stock BEGIN INSERT INTO history VALUES (old.name); END;
INSERT INTO item VALUES (1, 'bolt');
INSERT INTO stock VALUES ('bolt', 3);
INSERT INTO quiet VALUES (1, 'x');
"""


def table_counts(service: Service, handle: str, tables: tuple[str, ...]) -> dict[str, int]:
    return {t: run(service, "data/count", handle, collection=t)["total"] for t in tables}


def test_reached_follows_triggers_with_the_write_they_make() -> None:
    fired = {
        ("item", "insert"): [("item_added", "audit", "insert")],
        ("item", "delete"): [("item_gone", "stock", "delete")],
        ("stock", "delete"): [("stock_gone", "history", "insert")],
        ("parent", "delete"): [("opaque", UNKNOWN, "delete")],
    }

    def triggers(table: str, event: str) -> list[tuple[str, str, str]]:
        return fired.get((table, event), [])

    assert reached([], "item", False, triggers=triggers, event="insert") == [
        ("audit", 'trigger "item_added" (on insert into "item")')
    ]
    assert reached([], "item", False, triggers=triggers) == [
        ("stock", 'trigger "item_gone" (on delete from "item")'),
        ("history", 'trigger "stock_gone" (on delete from "stock")'),
    ]
    # An insert fires no referential action; a cascade's delete fires the child's triggers.
    edges = [CascadeEdge("item", "parent", "CASCADE", "NO ACTION")]
    assert reached(edges, "parent", False, triggers=triggers, event="insert") == []
    assert [t for t, _ in reached(edges, "parent", False, triggers=triggers)] == [
        "item", UNKNOWN, "stock", "history"
    ]  # fmt: skip


def test_sqlite_trigger_writes_are_read_from_the_compiled_write(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    conn = sqlite3.connect(path)
    conn.executescript(TRIGGERS)
    conn.close()
    # A read-only connection compiles the writes too (EXPLAIN runs nothing).
    conn = connect_sqlite(str(path), "ro")
    try:
        assert trigger_writes(conn, "ITEM", "insert") == [("item_added", "audit", "insert")]
        assert trigger_writes(conn, "item", "update") == [("item_renamed", "stock", "update")]
        assert trigger_writes(conn, "item", "delete") == [
            ("item_gone", "stock", "delete"),
            ("stock_gone", "history", "insert"),
        ]
        assert trigger_writes(conn, "quiet", "delete") == []
        assert conn.execute("SELECT count(*) FROM audit").fetchone() == (1,)  # the fixture's
    finally:
        conn.close()


def test_sqlite_writes_whose_triggers_reach_a_denied_table_are_refused(
    service: Service, tmp_path: Path
) -> None:
    path = tmp_path / "shop.db"
    conn = sqlite3.connect(path)
    conn.executescript(TRIGGERS)
    conn.close()
    full = open_sqlite(service, path)
    tables = ("item", "audit", "stock", "history")
    before = table_counts(service, full, tables)
    audit_denied = open_sqlite(service, path, deniedCollections=["audit"])
    with pytest.raises(PermissionDenied, match=r'table "audit" through trigger "item_added"'):
        run(service, "data/create", audit_denied, collection="item", data={"id": 2, "name": "nut"})
    with pytest.raises(PermissionDenied, match=r'table "audit" through trigger "item_added"'):
        run(service, "data/batch", audit_denied,
            operations=[{"op": "create", "collection": "item", "data": {"id": 3}}])  # fmt: skip
    # Updates and deletes of item fire no trigger writing audit: allowed.
    run(service, "data/update", audit_denied, collection="quiet", id="1", data={"note": "y"})
    stock_denied = open_sqlite(service, path, deniedCollections=["stock"])
    with pytest.raises(PermissionDenied, match=r'table "stock" through trigger "item_renamed"'):
        run(service, "data/update", stock_denied, collection="item", id="1", data={"name": "x"})
    # Two triggers away: item's delete trigger deletes stock rows, whose trigger writes history.
    history_denied = open_sqlite(service, path, allowedCollections=["item", "stock", "audit"])
    with pytest.raises(PermissionDenied, match=r'table "history" through trigger "stock_gone"'):
        run(service, "data/delete", history_denied, collection="item", id="1")
    with pytest.raises(PermissionDenied, match='table "history"'):
        run(service, "data/truncate", history_denied, collection="item")
    filtered = open_sqlite(service, path, rowFilter={"name": "bolt"})
    with pytest.raises(PermissionDenied, match="row filter cannot restrict"):
        run(service, "data/create", filtered, collection="item", data={"id": 4, "name": "bolt"})
    assert table_counts(service, full, tables) == before
    # A handle that may reach every table the triggers write writes, and the triggers run.
    allowed = open_sqlite(service, path, deniedCollections=["quiet"])
    run(service, "data/create", allowed, collection="item", data={"id": 2, "name": "nut"})
    run(service, "data/delete", allowed, collection="item", id="1")
    assert table_counts(service, full, tables) == {"item": 1, "audit": 2, "stock": 0,
                                                   "history": 1}  # fmt: skip


PG_TRIGGERS = """
CREATE TABLE item (id integer PRIMARY KEY, name text);
CREATE TABLE audit (msg text);
CREATE TABLE tagged (id integer PRIMARY KEY,
                     item_id integer REFERENCES item (id) ON DELETE CASCADE);
CREATE TABLE quiet (id integer PRIMARY KEY, note text);
CREATE FUNCTION note_it() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS
    $$ BEGIN INSERT INTO audit VALUES (TG_OP); RETURN NULL; END $$;
CREATE TRIGGER item_added AFTER INSERT ON item FOR EACH ROW EXECUTE FUNCTION note_it();
CREATE TRIGGER tag_gone AFTER DELETE ON tagged FOR EACH ROW EXECUTE FUNCTION note_it();
CREATE TRIGGER quiet_off AFTER INSERT ON quiet FOR EACH ROW EXECUTE FUNCTION note_it();
ALTER TABLE quiet DISABLE TRIGGER quiet_off;
INSERT INTO item VALUES (1, 'bolt');
INSERT INTO tagged VALUES (10, 1);
"""


@pytest.mark.postgres
def test_postgres_writes_firing_a_trigger_are_refused_to_restricted_handles(
    service: Service, tmp_path: Path
) -> None:
    import psycopg
    from psycopg import sql

    from tests.pgserver import postgres_config

    config = postgres_config(tmp_path)
    with psycopg.connect(config["url"], autocommit=True) as conn:
        schema = sql.Identifier(config["schema"])
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
        conn.execute(sql.SQL("SET search_path = {}").format(schema))
        conn.execute(PG_TRIGGERS)
    full = open_postgres(service, config)
    tables = ("item", "audit", "tagged")
    before = table_counts(service, full, tables)
    restricted = open_postgres(service, config, deniedCollections=["quiet"])
    with pytest.raises(PermissionDenied, match=r'runs trigger "item_added".*cannot know'):
        run(service, "data/create", restricted, collection="item", data={"id": 2, "name": "nut"})
    # Through a foreign key's cascade: deleting item deletes tagged rows, whose trigger runs.
    with pytest.raises(PermissionDenied, match=r'runs trigger "tag_gone"'):
        run(service, "data/delete", restricted, collection="item", id="1")
    assert table_counts(service, full, tables) == before
    # No trigger on update of item, and a disabled trigger does not run: both allowed.
    run(service, "data/update", restricted, collection="item", id="1", data={"name": "x"})
    run(service, "data/create", restricted, collection="tagged", data={"id": 11, "item_id": 1})
    run(service, "data/create", full, collection="item", data={"id": 2, "name": "nut"})
    assert table_counts(service, full, tables) == {"item": 2, "audit": 2, "tagged": 2}
