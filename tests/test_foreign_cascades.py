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
from dbhandles.adapters.foreign_cascades import CascadeEdge, reached
from dbhandles.errors import PermissionDenied

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
    import psycopg
    from psycopg import sql

    from tests.pgserver import postgres_config

    config = postgres_config(tmp_path)
    with psycopg.connect(config["url"], autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(config["schema"]))
        )
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(config["schema"])))
        conn.execute(PG_SCHEMA)
    return config


def open_pg(service: Service, pg: dict[str, Any], **permissions: Any) -> str:
    opened = service.execute("data/open", {"adapter": "postgres", "config": pg,
                                           "permissions": permissions})  # fmt: skip
    return str(opened["dbHandle"])


@pytest.mark.postgres
def test_postgres_deletes_cascading_into_a_denied_table_are_refused(
    service: Service, pg: dict[str, Any]
) -> None:
    full = open_pg(service, pg)
    check_refused(service, open_pg(service, pg, deniedCollections=["child"]), full, "child")
    check_refused(service, open_pg(service, pg, deniedCollections=["grandchild"]), full,
                  "grandchild")  # fmt: skip
    handle = open_pg(service, pg, deniedCollections=["child"])
    with pytest.raises(PermissionDenied, match=r'table "child".*ON UPDATE CASCADE'):
        run(service, "data/update", handle, collection="parent", id="1", data={"code": "z"})
    filtered = open_pg(service, pg, rowFilter={"note": "x"})
    with pytest.raises(PermissionDenied, match="row filter"):
        run(service, "data/truncate", filtered, collection="parent")
    assert counts(service, full) == {"parent": 2, "child": 2, "grandchild": 1}
    allowed = open_pg(service, pg, deniedCollections=["other"])
    run(service, "data/delete", allowed, collection="parent", id="1")
    assert counts(service, full) == {"parent": 1, "child": 1, "grandchild": 1}
