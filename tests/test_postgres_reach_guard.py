"""PostgreSQL restricted handles (issue 12): the access decision is read once per command.

The command's transaction locks what the decision found reached, then reads the catalog's
fingerprint: what each name reaches is read again only when the decision did not read that same
state (a DDL committed in between, a decision read in no single snapshot). The locks go out as
one pipeline (``postgres_reach_locks``), each in a savepoint, and take no snapshot before
they are granted.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dbhandles import Service
from dbhandles.adapters import postgres_closure_cache as closure_cache
from dbhandles.adapters import reach_guard
from dbhandles.adapters.postgres_reach_locks import lock_all
from dbhandles.errors import DbHandlesError, QueryTimeout
from dbhandles.security import name_reach
from tests.pg_restricted_helpers import open_postgres, schema_rows
from tests.pgserver import postgres_schema, run_in_schema

pytestmark = pytest.mark.postgres

SETUP = """
CREATE TABLE secret (s text);
INSERT INTO secret VALUES ('hidden');
"""
POLICY_SQL = """
CREATE FUNCTION leak() RETURNS text LANGUAGE sql SET search_path FROM CURRENT
    AS $$ SELECT coalesce(string_agg(s, ','), 'none') FROM secret $$;
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE notes FORCE ROW LEVEL SECURITY;
CREATE POLICY p ON notes USING (leak() IS NOT NULL) WITH CHECK (leak() IS NOT NULL);
"""


def _notes(service: Service, pg: dict[str, Any]) -> str:
    """Collection ``notes`` with one record; a handle to it denied ``secret``."""
    admin = open_postgres(service, pg)
    service.execute(
        "data/create", {"dbHandle": admin, "collection": "notes", "data": {"id": "1", "n": 1}}
    )
    return open_postgres(service, pg, deniedCollections=["secret"])


def _count_resolutions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names ``resolve_name`` is asked, in the decision and in the command's re-check."""
    asked: list[str] = []
    resolve = name_reach.resolve_name

    def counted(session: Any, name: str, cascades: bool, filtered: bool) -> Any:
        asked.append(name)
        return resolve(session, name, cascades, filtered)

    monkeypatch.setattr(name_reach, "resolve_name", counted)
    return asked


@pytest.mark.parametrize(
    ("command", "params"),
    [("data/list", {}), ("data/read", {"id": "1"}), ("data/create", {"data": {"id": "2"}})],
)
def test_an_unchanged_catalog_is_not_resolved_again_in_the_command_s_transaction(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str,
    params: dict[str, Any],
) -> None:  # fmt: skip
    pg = postgres_schema(tmp_path, SETUP)
    handle = _notes(service, pg)
    asked = _count_resolutions(monkeypatch)
    service.execute(command, {"dbHandle": handle, "collection": "notes", **params})
    # Each name once, by the decision: the re-check read the same fingerprint.
    assert sorted(asked) == sorted(set(asked)) and "notes" in asked


@pytest.mark.parametrize(
    ("command", "params"),
    [("data/list", {}), ("data/read", {"id": "1"}), ("data/create", {"data": {"id": "2"}})],
)
def test_a_ddl_committed_after_the_decision_is_resolved_again_and_refused(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str,
    params: dict[str, Any],
) -> None:  # fmt: skip
    pg = postgres_schema(tmp_path, SETUP)
    handle = _notes(service, pg)
    expect = reach_guard.expect

    def then_a_policy(guard: reach_guard.Guard) -> None:
        expect(guard)
        run_in_schema(pg, POLICY_SQL)  # committed before the command's transaction begins

    monkeypatch.setattr(reach_guard, "expect", then_a_policy)
    with pytest.raises(DbHandlesError) as caught:
        service.execute(command, {"dbHandle": handle, "collection": "notes", **params})
    assert caught.value.code == "permission_denied", caught.value
    assert "hidden" not in caught.value.message
    assert schema_rows(pg, "SELECT id FROM notes ORDER BY id") == [("1",)]


def test_a_guard_is_unchanged_only_for_one_state_read_in_one_snapshot() -> None:
    guard = reach_guard.Guard(object(), (), {}, (), lambda session, name: name)
    with_states = [
        ((), False),
        ((("db", None),), False),  # read in READ COMMITTED
        ((("db", "f1"), ("db", "f2")), False),  # two states in one decision
        ((("db", "f1"), ("db", None)), False),
        ((("other", "f1"),), False),
        ((("db", "f1"), ("db", "f1")), True),
    ]
    for states, unchanged in with_states:
        assert (
            reach_guard.Guard(**{**guard.__dict__, "states": states}).unchanged("db", "f1")
            is unchanged
        ), states


def test_a_decision_keeps_the_states_noted_since_the_previous_one() -> None:
    reach_guard.clear()
    adapter = object()
    reach_guard.note("db", "f1")
    reach_guard.expect(reach_guard.Guard(adapter, 1, {"a": 1}, (), lambda s, n: n))
    reach_guard.note("db", None)
    reach_guard.expect(reach_guard.Guard(adapter, 2, {"a": 1}, (), lambda s, n: n))
    first, second = reach_guard.current(adapter)
    assert first.states == (("db", "f1"),) and second.states == (("db", None),)
    reach_guard.clear()
    assert reach_guard.current(adapter) == ()


def _locked(conn: psycopg.Connection[Any], schema: str) -> list[tuple[str, str]]:
    """The relations of ``schema`` this transaction holds locks on: ``(name, mode)``, sorted."""
    rows = conn.execute(
        "SELECT c.relname, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE l.pid = pg_backend_pid() "
        "AND l.granted AND n.nspname = %s ORDER BY 1, 2",
        (schema,),
    ).fetchall()
    return [(str(name), str(mode)) for name, mode in rows]


def test_the_locks_after_a_name_that_cannot_be_locked_are_taken(tmp_path: Path) -> None:
    pg = postgres_schema(tmp_path, SETUP, "CREATE TABLE notes (n int)", "CREATE VIEW v AS "
                         "SELECT s FROM secret")  # fmt: skip
    with psycopg.connect(pg["url"]) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        names = ["absent", f"{pg['schema']}.notes", "secret", "v"]
        lock_all(conn, pg["schema"], names, "ACCESS SHARE", 5000)
        assert _locked(conn, pg["schema"]) == [
            ("notes", "AccessShareLock"), ("secret", "AccessShareLock"), ("v", "AccessShareLock")
        ]  # fmt: skip
        assert conn.execute("SHOW lock_timeout").fetchone() == ("5s",)


def test_a_lock_after_one_that_cannot_be_taken_still_times_out(tmp_path: Path) -> None:
    pg = postgres_schema(tmp_path, SETUP)
    with psycopg.connect(pg["url"]) as other, psycopg.connect(pg["url"]) as conn:
        other.execute(
            sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                sql.Identifier(pg["schema"], "secret")
            )
        )
        conn.execute("BEGIN")
        with pytest.raises(QueryTimeout):
            lock_all(conn, pg["schema"], ["absent", "secret"], "ROW EXCLUSIVE", 200)
        assert conn.execute("SELECT 1").fetchone() == (1,)  # the transaction is usable


def test_a_snapshot_transaction_reads_the_catalog_after_the_ddl_it_waited_for(
    tmp_path: Path,
) -> None:
    pg = postgres_schema(tmp_path, SETUP)
    holder = psycopg.connect(pg["url"])
    try:
        holder.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(pg["schema"])))
        holder.execute("ALTER TABLE secret ENABLE ROW LEVEL SECURITY")
        with psycopg.connect(pg["url"]) as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            committer = threading.Timer(0.5, holder.commit)
            committer.start()
            lock_all(conn, pg["schema"], ["absent", "secret"], "ACCESS SHARE", 30000)
            committer.join()
            row = conn.execute(
                "SELECT relrowsecurity FROM pg_class WHERE oid = %s::regclass",
                (f'"{pg["schema"]}".secret',),
            ).fetchone()
            assert row == (True,)  # the snapshot was taken after the lock was granted
    finally:
        holder.close()


def test_a_transaction_s_own_ddl_is_fingerprinted_though_its_snapshot_was_seen(
    tmp_path: Path,
) -> None:
    pg = postgres_schema(tmp_path, SETUP)
    with psycopg.connect(pg["url"]) as conn:
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(pg["schema"])))
        conn.commit()

        def execute(statement: str, params: tuple[Any, ...]) -> Any:
            return conn.execute(statement, params)

        database, before = closure_cache.state(execute)
        assert closure_cache.state(execute) == (database, before)  # the same snapshot
        conn.execute("CREATE TABLE mine (n int)")  # uncommitted: the same snapshot of others'
        assert closure_cache.state(execute)[1] != before
        conn.rollback()
        assert closure_cache.state(execute) == (database, before)


def test_a_ddl_committed_by_another_session_changes_the_snapshot_s_fingerprint(
    tmp_path: Path,
) -> None:
    pg = postgres_schema(tmp_path, SETUP)
    with psycopg.connect(pg["url"], autocommit=True) as conn:

        def execute(statement: str, params: tuple[Any, ...]) -> Any:
            return conn.execute(statement, params)

        _, before = closure_cache.state(execute)
        run_in_schema(pg, "CREATE TABLE theirs (n int)")
        assert closure_cache.state(execute)[1] != before
