"""PostgreSQL, outside findings of round 21 (issue 12): what a restricted handle's checks read and
what its statements run must be one state of the catalog.

1. A DDL still uncommitted while the access decision reads the catalog (``CREATE POLICY``,
   ``CREATE TRIGGER``) is waited for and seen: the relations are locked as the statement will lock
   them, and what they reach is read again, in the statement's own transaction.
2. Every page of ``data/query-next``, batch of ``data/copy`` and page of ``data/export`` is decided
   and checked again: a policy added after the first is refused.
3. The catalog fingerprint sees a column's own row change (``pg_attribute``), and a built-in
   function a superuser changed after initdb (``SECURITY DEFINER``, ``SET search_path``, ``CREATE
   OR REPLACE``, which keeps its oid) is somebody's code: fingerprinted, and refused where reached.
4. An enabled event trigger refuses every DDL made on a restricted handle's behalf: a declared
   collection's ``CREATE INDEX IF NOT EXISTS`` (which fires ``ddl_command_start``) as its table's
   creation.

Every schema is built with plain SQL through psycopg, on the server the suite starts; a second
connection (another tool) holds its DDL uncommitted in a thread.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dbhandles import Service
from dbhandles.adapters.postgres_closure_cache import FINGERPRINT
from dbhandles.commands import recheck
from dbhandles.errors import DbHandlesError
from dbhandles.settings import Settings
from tests.pg_restricted_helpers import open_postgres, schema_rows
from tests.pgserver import postgres_schema, run_in_schema

pytestmark = pytest.mark.postgres

#: ``secret``; ``leak()`` deletes its rows when it may write and returns them when it may not;
#: ``wipe()``, a trigger function, deletes them.
SETUP = """
CREATE TABLE secret (s text);
INSERT INTO secret VALUES ('hidden');
CREATE FUNCTION leak() RETURNS text LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF current_setting('transaction_read_only') = 'off' THEN DELETE FROM secret; END IF;
    RETURN (SELECT coalesce(string_agg(s, ','), 'none') FROM secret);
END$$;
CREATE FUNCTION wipe() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN DELETE FROM secret; RETURN NEW; END$$;
"""
DENIED = {"deniedCollections": ["secret"]}
POLICY = [
    "ALTER TABLE notes ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE notes FORCE ROW LEVEL SECURITY",
    "CREATE POLICY p ON notes USING (leak() IS NOT NULL) WITH CHECK (leak() IS NOT NULL)",
]
TRIGGER = ["CREATE TRIGGER tr BEFORE INSERT ON notes FOR EACH ROW EXECUTE FUNCTION wipe()"]


def _notes(service: Service, pg: dict[str, Any]) -> str:
    """Collection ``notes`` with one record, made by dbhandles; a restricted handle to it."""
    admin = open_postgres(service, pg)
    service.execute(
        "data/create", {"dbHandle": admin, "collection": "notes", "data": {"id": "1", "n": 1}}
    )
    return open_postgres(service, pg, deniedCollections=DENIED["deniedCollections"])


def _waiting_on(pg: dict[str, Any], table: str) -> bool:
    """Whether a session waits for a lock on ``table`` of ``pg``'s schema."""
    with psycopg.connect(pg["url"], autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = "
            "(SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s)",
            (pg["schema"], table),
        ).fetchone()
        return bool(row and row[0])


@contextlib.contextmanager
def _held_uncommitted(pg: dict[str, Any], statements: list[str]) -> Iterator[None]:
    """Another tool's connection, in a thread, holding ``statements`` run and uncommitted in
    ``pg``'s schema (with their locks) while the block runs; committed when it ends. Fails if a
    statement fails."""
    held, done = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def other_tool() -> None:
        try:
            with psycopg.connect(pg["url"]) as conn:  # one transaction, committed on exit
                conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(pg["schema"])))
                for statement in statements:
                    conn.execute(statement)
                held.set()
                done.wait(60)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
            held.set()

    tool = threading.Thread(target=other_tool)
    tool.start()
    try:
        assert held.wait(60) and not failures, failures
        yield
    finally:
        done.set()
        tool.join(60)
    assert not failures, failures


def _during_uncommitted_ddl(
    pg: dict[str, Any], statements: list[str], command: Callable[[], Any]
) -> Any:
    """``command()``'s outcome (its result, or the ``DbHandlesError`` it raised), run while another
    connection holds ``statements`` uncommitted; they commit once ``command`` waits for their lock
    on ``notes`` (as it must: a restricted handle's checks lock what they read)."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(command())
        except DbHandlesError as exc:
            outcome.append(exc)

    runner = threading.Thread(target=run)
    with _held_uncommitted(pg, statements):
        runner.start()
        for _ in range(6000):  # until the command waits for the DDL's lock (or has finished)
            if _waiting_on(pg, "notes") or not runner.is_alive():
                break
            time.sleep(0.01)
    runner.join(60)
    return outcome[0]


def _refused_during_uncommitted_ddl(
    service: Service, tmp_path: Path, statements: list[str], command: str, params: dict[str, Any]
) -> tuple[dict[str, Any], DbHandlesError]:
    """The schema of ``SETUP`` (with :func:`_notes`) and the ``permission_denied`` error its
    restricted handle's ``command`` on ``notes`` (with ``params``) raises while another connection
    holds ``statements`` uncommitted (:func:`_during_uncommitted_ddl`); fails if it is served."""
    pg = postgres_schema(tmp_path, SETUP)
    handle = _notes(service, pg)
    outcome = _during_uncommitted_ddl(
        pg,
        statements,
        lambda: service.execute(command, {"dbHandle": handle, "collection": "notes", **params}),
    )
    assert isinstance(outcome, DbHandlesError) and outcome.code == "permission_denied", outcome
    return pg, outcome


# -- 1. one transaction for the checks and the statement, the relations locked first --------------


def test_a_policy_created_while_a_write_is_checked_is_seen_and_refused(
    service: Service, tmp_path: Path
) -> None:
    pg, _ = _refused_during_uncommitted_ddl(
        service, tmp_path, POLICY, "data/create", {"data": {"id": "2"}}
    )
    assert schema_rows(pg, "SELECT s FROM secret") == [("hidden",)]


def test_a_policy_created_while_a_read_is_checked_is_seen_and_refused(
    service: Service, tmp_path: Path
) -> None:
    _, error = _refused_during_uncommitted_ddl(service, tmp_path, POLICY, "data/list", {})
    assert "hidden" not in error.message


def test_a_trigger_created_while_a_create_is_checked_is_seen_and_refused(
    service: Service, tmp_path: Path
) -> None:
    pg, _ = _refused_during_uncommitted_ddl(
        service, tmp_path, TRIGGER, "data/create", {"data": {"id": "2"}}
    )
    assert schema_rows(pg, "SELECT s FROM secret") == [("hidden",)]
    assert schema_rows(pg, "SELECT id FROM notes ORDER BY id") == [("1",)]


def test_a_lock_held_past_the_budget_answers_query_timeout(tmp_path: Path) -> None:
    pg = postgres_schema(tmp_path, SETUP)
    service = Service(settings=Settings(home=tmp_path / "home", query_timeout_ms=300))
    handle = _notes(service, pg)
    try:
        with _held_uncommitted(pg, ["LOCK TABLE notes IN ACCESS EXCLUSIVE MODE"]):
            with pytest.raises(DbHandlesError) as caught:
                service.execute("data/list", {"dbHandle": handle, "collection": "notes"})
            assert caught.value.code == "query_timeout", caught.value
    finally:
        service.close()


def test_a_restricted_handle_without_a_concurrent_change_is_served(
    service: Service, tmp_path: Path
) -> None:
    pg = postgres_schema(tmp_path, SETUP)
    handle = _notes(service, pg)
    service.execute("data/create", {"dbHandle": handle, "collection": "notes", "data": {"id": "2"}})
    listed = service.execute("data/list", {"dbHandle": handle, "collection": "notes"})
    assert sorted(r["id"] for r in listed["items"]) == ["1", "2"]


# -- 2. every page and batch of a restricted handle decided and checked again --------------------


def _three_notes(service: Service, pg: dict[str, Any]) -> str:
    handle = _notes(service, pg)
    for record_id in ("2", "3"):
        service.execute(
            "data/create", {"dbHandle": handle, "collection": "notes", "data": {"id": record_id}}
        )
    return handle


def _policy_after_first_batch(monkeypatch: pytest.MonkeyPatch, pg: dict[str, Any]) -> None:
    """Another tool adds ``POLICY`` to ``notes`` once a long command finished its first batch."""
    check = recheck.AccessWatch.__call__
    added: list[bool] = []

    def watched(watch: recheck.AccessWatch) -> None:
        if not added:
            added.append(True)
            run_in_schema(pg, *POLICY)
        check(watch)

    monkeypatch.setattr(recheck.AccessWatch, "__call__", watched)


def test_a_policy_added_after_query_open_is_refused_on_query_next(
    service: Service, tmp_path: Path
) -> None:
    pg = postgres_schema(tmp_path, SETUP)
    handle = _three_notes(service, pg)
    opened = service.execute(
        "data/query-open", {"dbHandle": handle, "collection": "notes", "pageSize": 1}
    )
    run_in_schema(pg, *POLICY)
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/query-next", {"queryHandle": opened["queryHandle"]})
    assert caught.value.code == "permission_denied", caught.value
    assert "hidden" not in caught.value.message


def test_a_policy_added_after_a_copy_s_first_batch_stops_it(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg = postgres_schema(tmp_path, SETUP)
    handle = _three_notes(service, pg)
    _policy_after_first_batch(monkeypatch, pg)
    copy = {"from": {"dbHandle": handle, "collection": "notes"},
            "to": {"dbHandle": handle, "collection": "got"}, "batchSize": 1}  # fmt: skip
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/copy", copy)
    assert caught.value.code == "permission_denied", caught.value
    assert len(schema_rows(pg, "SELECT id FROM got")) == 1
    assert schema_rows(pg, "SELECT s FROM secret") == [("hidden",)]


def test_a_policy_added_after_an_export_s_first_page_stops_it(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg = postgres_schema(tmp_path, SETUP)
    handle = _three_notes(service, pg)
    _policy_after_first_batch(monkeypatch, pg)
    output = tmp_path / "notes.jsonl"
    export = {"dbHandle": handle, "collection": "notes", "output": str(output), "pageSize": 1}
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/export", export)
    assert caught.value.code == "permission_denied", caught.value
    assert not output.exists() or "hidden" not in output.read_text()


# -- 3. the fingerprint: a column's row, and built-in rows changed after initdb ------------------


def _fingerprint(pg: dict[str, Any]) -> tuple[Any, ...]:
    with psycopg.connect(pg["url"], autocommit=True) as conn:
        return tuple(conn.execute(FINGERPRINT).fetchone() or ())


def test_a_change_of_a_column_s_own_row_changes_the_fingerprint(tmp_path: Path) -> None:
    pg = postgres_schema(tmp_path, SETUP, "CREATE TABLE t (id integer, s text)")
    before = _fingerprint(pg)
    run_in_schema(pg, "ALTER TABLE t ALTER COLUMN s SET STATISTICS 50")  # pg_attribute only
    assert _fingerprint(pg) != before


#: Changes a superuser makes to a built-in function, each undone after. A changed row stays
#: changed (its ``xmin``): each change is made to a function no other test uses.
BUILTIN_CHANGES = {
    "SECURITY DEFINER": (
        "bit_length",
        "ALTER FUNCTION pg_catalog.bit_length(text) SECURITY DEFINER",
        "ALTER FUNCTION pg_catalog.bit_length(text) SECURITY INVOKER",
    ),
    "SET search_path": (
        "initcap",
        "ALTER FUNCTION pg_catalog.initcap(text) SET search_path = public",
        "ALTER FUNCTION pg_catalog.initcap(text) RESET search_path",
    ),
    "CREATE OR REPLACE": (  # keeps its oid (1282)
        "quote_ident",
        "CREATE OR REPLACE FUNCTION pg_catalog.quote_ident(text) RETURNS text LANGUAGE internal "
        "IMMUTABLE STRICT PARALLEL SAFE AS 'quote_ident'",
        "SELECT 1",
    ),
}


@pytest.mark.parametrize("change", sorted(BUILTIN_CHANGES))
def test_a_built_in_function_changed_after_initdb_is_fingerprinted_and_refused(
    service: Service, tmp_path: Path, change: str
) -> None:
    function, apply, undo = BUILTIN_CHANGES[change]
    pg = postgres_schema(
        tmp_path,
        SETUP,
        "CREATE TABLE t (id text PRIMARY KEY, s text)",
        "INSERT INTO t VALUES ('1', 'x')",
        f"CREATE VIEW vb AS SELECT id, {function}(s) AS b FROM t",
    )
    handle = open_postgres(service, pg, deniedCollections=DENIED["deniedCollections"])
    listed = service.execute("data/list", {"dbHandle": handle, "collection": "vb"})
    assert len(listed["items"]) == 1
    before = _fingerprint(pg)
    run_in_schema(pg, apply)
    try:
        assert _fingerprint(pg) != before
        with pytest.raises(DbHandlesError) as caught:
            service.execute("data/list", {"dbHandle": handle, "collection": "vb"})
        assert caught.value.code == "permission_denied", caught.value
        assert function in caught.value.message, caught.value
    finally:
        run_in_schema(pg, undo)


# -- 4. event triggers and the DDL made on a restricted handle's behalf --------------------------

EVENT_TRIGGER = (
    "CREATE FUNCTION wipe_dl() RETURNS event_trigger LANGUAGE plpgsql SET search_path FROM "
    "CURRENT AS $$BEGIN DELETE FROM secret; END$$",
    "CREATE EVENT TRIGGER wipe_on_ddl ON ddl_command_start EXECUTE FUNCTION wipe_dl()",
)


@pytest.mark.parametrize("collection", ["notes3", "fresh"])
def test_an_event_trigger_refuses_the_ddl_of_a_restricted_write(
    service: Service, tmp_path: Path, collection: str
) -> None:
    pg = postgres_schema(tmp_path, SETUP)
    handle = _notes(service, pg)
    admin = open_postgres(service, pg)
    service.execute("data/create", {"dbHandle": admin, "collection": "notes3", "data": {"id": "1"}})
    run_in_schema(pg, *EVENT_TRIGGER)
    try:
        service.declare(collection, indexes=["title"])
        with pytest.raises(DbHandlesError) as caught:
            service.execute(
                "data/create",
                {"dbHandle": handle, "collection": collection, "data": {"id": "2", "title": "t"}},
            )
        assert caught.value.code == "permission_denied", caught.value
        assert "wipe_on_ddl" in caught.value.message, caught.value
        assert schema_rows(pg, "SELECT s FROM secret") == [("hidden",)]
    finally:
        run_in_schema(pg, "DROP EVENT TRIGGER wipe_on_ddl")
    # Without the event trigger the same write is served, its index made.
    service.execute(
        "data/create",
        {"dbHandle": handle, "collection": collection, "data": {"id": "2", "title": "t"}},
    )
