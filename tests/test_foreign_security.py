"""Restricted handles on tables dbhandles did not create (issue 15, tester's findings 4 and 5).

* A view is served to a handle with ``allowedCollections``/``deniedCollections`` only when every
  table it reads (at any depth) is allowed: a view over a denied table is denied too, and is not
  listed by ``data/schema``.
* Through a handle with a row filter or collection lists, a refused write names the constraint's
  kind and the field only: no values, no other table, no database text.

The databases are built with plain ``sqlite3`` and plain SQL (PostgreSQL, on the suite's server).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.errors import ConstraintViolation, PermissionDenied
from tests.pg_restricted_helpers import open_postgres

SCHEMA = """
CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, secret TEXT);
CREATE TABLE books (isbn TEXT PRIMARY KEY, title TEXT NOT NULL UNIQUE, owner TEXT,
                    author_id INTEGER REFERENCES authors (id));
CREATE VIEW book_view AS SELECT b.title, a.secret FROM books b JOIN authors a ON a.id = b.author_id;
CREATE VIEW nested_view AS SELECT * FROM book_view;
CREATE VIEW titles AS SELECT title, owner FROM books;
INSERT INTO authors VALUES (1, 'Le Guin', 'hidden-1');
INSERT INTO books VALUES ('b1', 'The Dispossessed', 'alice', 1), ('b2', 'Solaris', 'bob', 1);
"""


def run(service: Service, name: str, handle: str, **params: Any) -> dict[str, Any]:
    return service.execute(name, {"dbHandle": handle, **params})


def open_sqlite(service: Service, path: Path, **permissions: Any) -> str:
    opened = service.execute("data/open", {"adapter": "sqlite", "config": {"path": str(path)},
                                           "permissions": permissions})  # fmt: skip
    return str(opened["dbHandle"])


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "library.db"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    conn.close()
    return path


def check_views(service: Service, handle: str) -> None:
    """``handle`` denies ``authors`` (by a list): views over it are refused and not listed."""
    for view in ("book_view", "nested_view"):
        with pytest.raises(PermissionDenied, match="what this handle may not"):
            run(service, "data/list", handle, collection=view)
        with pytest.raises(PermissionDenied):
            run(service, "data/count", handle, collection=view)
    assert [r["title"] for r in run(service, "data/list", handle, collection="titles",
                                     orderBy="title")["items"]] == ["Solaris", "The Dispossessed"]  # fmt: skip
    listed = {c["name"] for c in run(service, "data/schema", handle)["collections"]}
    assert "titles" in listed and "books" in listed
    assert not listed & {"authors", "book_view", "nested_view"}


def test_sqlite_views_over_a_denied_table_are_denied(service: Service, database: Path) -> None:
    check_views(service, open_sqlite(service, database, deniedCollections=["authors"]))
    allowed = open_sqlite(service, database, allowedCollections=["books", "titles", "book_view"])
    check_views(service, allowed)


def test_sqlite_constraint_errors_say_no_more_through_restricted_handles(
    service: Service, database: Path
) -> None:
    filtered = open_sqlite(service, database, rowFilter={"owner": "alice"})
    # "Solaris" is bob's row, hidden here: the UNIQUE refusal names the field, nothing else.
    with pytest.raises(ConstraintViolation) as caught:
        run(service, "data/create", filtered, collection="books",
            data={"isbn": "b3", "title": "Solaris", "owner": "alice"})  # fmt: skip
    assert caught.value.field == "data.title"
    assert caught.value.details == {"constraint": "unique"}
    assert "Solaris" not in caught.value.message and "books" not in caught.value.message
    denied = open_sqlite(service, database, deniedCollections=["authors"])
    with pytest.raises(ConstraintViolation) as caught:
        run(service, "data/create", denied, collection="books",
            data={"isbn": "b4", "title": "New", "author_id": 99})  # fmt: skip
    assert caught.value.details == {"constraint": "foreign_key"}
    assert "authors" not in caught.value.message and "99" not in caught.value.message
    # An unrestricted handle keeps the whole story.
    full = open_sqlite(service, database)
    with pytest.raises(ConstraintViolation) as caught:
        run(service, "data/create", full, collection="books",
            data={"isbn": "b3", "title": "Solaris"})  # fmt: skip
    assert caught.value.details["table"] == "books"


# -- PostgreSQL ---------------------------------------------------------------------------------------

PG_SCHEMA = """
CREATE TABLE authors (id integer PRIMARY KEY, name text NOT NULL UNIQUE, secret text);
CREATE TABLE books (isbn text PRIMARY KEY, title text NOT NULL UNIQUE, owner text,
                    author_id integer REFERENCES authors (id));
CREATE VIEW book_view AS SELECT b.title, a.secret FROM books b JOIN authors a ON a.id = b.author_id;
CREATE VIEW nested_view AS SELECT * FROM book_view;
CREATE VIEW titles AS SELECT title, owner FROM books;
INSERT INTO authors VALUES (1, 'Le Guin', 'hidden-1');
INSERT INTO books VALUES ('b1', 'The Dispossessed', 'alice', 1), ('b2', 'Solaris', 'bob', 1);
"""


@pytest.fixture
def pg(tmp_path: Path) -> dict[str, Any]:
    from tests.pgserver import postgres_schema

    return postgres_schema(tmp_path, PG_SCHEMA)


@pytest.mark.postgres
def test_postgres_views_over_a_denied_table_are_denied(
    service: Service, pg: dict[str, Any]
) -> None:
    check_views(service, open_postgres(service, pg, deniedCollections=["authors"]))
    check_views(
        service, open_postgres(service, pg, allowedCollections=["books", "titles", "book_view"])
    )


@pytest.mark.postgres
def test_postgres_constraint_errors_say_no_more_through_restricted_handles(
    service: Service, pg: dict[str, Any]
) -> None:
    filtered = open_postgres(service, pg, rowFilter={"owner": "alice"})
    with pytest.raises(ConstraintViolation) as caught:
        run(service, "data/create", filtered, collection="books",
            data={"isbn": "b3", "title": "Solaris", "owner": "alice"})  # fmt: skip
    assert caught.value.field == "data.title"
    assert caught.value.details == {"constraint": "unique", "name": "books_title_key"}
    assert "Solaris" not in caught.value.message
    denied = open_postgres(service, pg, deniedCollections=["authors"])
    with pytest.raises(ConstraintViolation) as caught:
        run(service, "data/create", denied, collection="books",
            data={"isbn": "b4", "title": "New", "author_id": 99})  # fmt: skip
    assert caught.value.details == {"constraint": "foreign_key"}
    assert "authors" not in caught.value.message and "99" not in caught.value.message
