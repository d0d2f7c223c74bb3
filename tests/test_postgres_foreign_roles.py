"""What PostgreSQL's own access rules refuse, through a handle whose role they bind (issue 15,
outside tester's findings 2 and 3).

* ``data/schema`` lists a table the role may not read (no ``SELECT`` privilege) as ``refused``
  with ``recordCount: null``, and every other table as usual; reading it is ``database_denied``.
* A write a row-level security policy refuses (also with ``FORCE ROW LEVEL SECURITY`` on the
  table's owner) is ``database_denied``, as is one the role lacks the privilege for; nothing is
  written and the handle carries on.

The role is created on the suite's server (trust authentication) with plain SQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dbhandles import Service
from dbhandles.errors import DatabaseDenied
from tests.pgserver import postgres_config

pytestmark = pytest.mark.postgres

SCHEMA = """
CREATE TABLE notes (id integer PRIMARY KEY, owner text NOT NULL, body text);
CREATE TABLE priv (id integer PRIMARY KEY, secret text);
CREATE TABLE kept (id integer PRIMARY KEY);
INSERT INTO notes VALUES (1, 'nobody', 'hidden');
INSERT INTO priv VALUES (1, 's');
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE notes FORCE ROW LEVEL SECURITY;
CREATE POLICY own ON notes USING (owner = current_user);
"""


@pytest.fixture
def role_config(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A config connecting as a role of its own, which may use ``notes`` and ``kept`` only."""
    pg = postgres_config(tmp_path)
    schema, role = pg["schema"], "r_" + pg["schema"]
    with psycopg.connect(pg["url"], autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(SCHEMA)
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
            sql.Identifier(schema), sql.Identifier(role)))  # fmt: skip
        conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON notes, kept TO {}").format(
            sql.Identifier(role)))  # fmt: skip
    try:
        yield {**pg, "url": pg["url"].replace("postgres@", f"{role}@", 1), "mode": "readwrite"}
    finally:
        with psycopg.connect(pg["url"], autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def run(service: Service, name: str, handle: str, **params: Any) -> Any:
    return service.execute(name, {"dbHandle": handle, **params})


@pytest.fixture
def handle(service: Service, role_config: dict[str, Any]) -> Iterator[str]:
    opened = service.execute("data/open", {"adapter": "postgres", "config": role_config})
    yield str(opened["dbHandle"])
    service.execute("data/close", {"dbHandle": opened["dbHandle"]})


def test_schema_lists_a_table_the_role_cannot_read_with_no_count(
    service: Service, handle: str
) -> None:
    listed = {t["name"]: t for t in run(service, "data/schema", handle)["collections"]}
    assert listed["priv"]["recordCount"] is None
    assert "SELECT privilege" in listed["priv"]["refused"]
    assert listed["kept"]["recordCount"] == 0 and "refused" not in listed["kept"]
    # Row-level security hides the row the role does not own: counted as the role sees it.
    assert listed["notes"]["recordCount"] == 0
    one = run(service, "data/schema", handle, collection="priv")
    assert one["recordCount"] is None
    with pytest.raises(DatabaseDenied, match="permission denied for table priv"):
        run(service, "data/list", handle, collection="priv")
    assert run(service, "data/count", handle, collection="kept")["total"] == 0


def test_writes_refused_by_the_database_are_database_denied(
    service: Service, handle: str, role_config: dict[str, Any]
) -> None:
    with pytest.raises(DatabaseDenied, match="row-level security"):
        run(service, "data/create", handle, collection="notes",
            data={"id": 2, "owner": "someone else"})  # fmt: skip
    with pytest.raises(DatabaseDenied, match="row-level security"):
        run(service, "data/batch", handle, operations=[
            {"op": "create", "collection": "notes", "data": {"id": 3, "owner": "x"}}])  # fmt: skip
    with pytest.raises(DatabaseDenied, match="permission denied"):
        run(service, "data/create", handle, collection="priv", data={"id": 2})
    with pytest.raises(DatabaseDenied):
        run(service, "data/truncate", handle, collection="priv")
    # What the policy lets through is written, and the handle carries on.
    role = "r_" + role_config["schema"]
    run(service, "data/create", handle, collection="notes", data={"id": 4, "owner": role})
    assert [r["id"] for r in run(service, "data/list", handle, collection="notes")["items"]] == [4]
