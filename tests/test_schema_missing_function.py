"""A function the database's own schema calls but SQLite does not know is ``query_failed`` naming
the collection, wherever it sits and whichever command meets it (never ``storage_error``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Context, Service
from dbhandles.errors import DbHandlesError
from dbhandles.settings import Settings

ALICE = Context(actor="alice", session_id="s-alice", is_admin=False, trusted_local=False)

#: Where a schema can call a function: the table's DDL (and an index on it).
PLACES = {
    "check": ["CREATE TABLE t (id TEXT PRIMARY KEY, a, CHECK (nosuchfn(a) IS NOT NULL))"],
    "default": ["CREATE TABLE t (id TEXT PRIMARY KEY, a, b DEFAULT (nosuchfn(1)))"],
    "generated_stored": [
        "CREATE TABLE t (id TEXT PRIMARY KEY, a, g GENERATED ALWAYS AS (nosuchfn(a)) STORED)"
    ],
    "generated_virtual": [
        "CREATE TABLE t (id TEXT PRIMARY KEY, a, g GENERATED ALWAYS AS (nosuchfn(a)) VIRTUAL)"
    ],
    "index_expression": [
        "CREATE TABLE t (id TEXT PRIMARY KEY, a)",
        "CREATE INDEX t_f ON t (nosuchfn(a))",
    ],
    "partial_index": [
        "CREATE TABLE t (id TEXT PRIMARY KEY, a)",
        "CREATE INDEX t_p ON t (a) WHERE nosuchfn(a) IS NOT NULL",
    ],
}


def _commands(handle: str, target: str) -> dict[str, tuple[str, dict[str, Any]]]:
    base = {"dbHandle": handle, "collection": "t"}
    return {
        "create": ("data/create", {**base, "data": {"id": "2", "a": 2}}),
        "update": ("data/update", {**base, "id": "1", "data": {"a": 3}}),
        "batch": (
            "data/batch",
            {
                "dbHandle": handle,
                "operations": [{"op": "create", "collection": "t", "data": {"id": "3", "a": 3}}],
            },
        ),
        "list": ("data/list", base),
        "read": ("data/read", {**base, "id": "1"}),
        "export": ("data/export", {**base, "output": "t.jsonl"}),
        "cursor": ("data/query-next", base),  # (opened first by ``_run``)
        "count": ("data/count", base),
        "copy": ("data/copy", {"from": base, "to": {"dbHandle": target, "collection": "got"}}),
    }


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with Service(settings=Settings(home=tmp_path / "home")) as svc:
        svc.tokens.create("alice")
        yield svc


def _crafted(service: Service, sql: list[str]) -> tuple[str, str]:
    """Alice's handle to a file whose schema calls ``nosuchfn`` (written by a connection that had
    it), and a handle to an empty database of hers to copy into."""
    space = service.settings.space_root() / "alice"
    space.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(space / "fn.sqlite")
    conn.create_function("nosuchfn", 1, lambda value: 1, deterministic=True)
    for statement in sql:
        conn.execute(statement)
    conn.execute("INSERT INTO t (id, a) VALUES ('1', 1)")
    conn.commit()
    conn.close()
    handles = []
    for config in ({"path": "fn.sqlite"}, {"path": "target.sqlite", "mode": "create"}):
        opened = service.execute(
            "data/open", {"adapter": "sqlite", "config": config}, context=ALICE
        )
        handles.append(str(opened["dbHandle"]))
    return handles[0], handles[1]


def _run(service: Service, command: str, params: dict[str, Any]) -> DbHandlesError | None:
    """The error ``command`` answers (``None``: it succeeded); a cursor is opened then paged."""
    try:
        if command == "data/query-next":
            opened = service.execute("data/query-open", params, context=ALICE)
            params = {"queryHandle": opened["queryHandle"]}
        service.execute(command, params, context=ALICE)
    except DbHandlesError as exc:
        return exc
    return None


@pytest.mark.parametrize("place", sorted(PLACES))
@pytest.mark.parametrize(
    "command", ["create", "update", "batch", "list", "read", "export", "cursor", "count", "copy"]
)
def test_a_missing_function_in_the_schema_is_query_failed(
    service: Service, place: str, command: str
) -> None:
    handle, target = _crafted(service, PLACES[place])
    name, params = _commands(handle, target)[command]
    error = _run(service, name, params)
    if error is None:
        return  # this command never evaluates that part of the schema (a read past a CHECK)
    assert (error.code, error.http_status) == ("query_failed", 409), (place, command, error)
    assert "nosuchfn()" in error.message and '"t"' in error.message, error.message


def test_every_place_fails_some_write(service: Service) -> None:
    # The sweep above accepts success where a command never meets the function: each place must
    # still be refused by the write that does meet it, or the sweep proves nothing.
    for place, sql in PLACES.items():
        handle, _ = _crafted(service, sql)
        error = _run(service, "data/create", _commands(handle, handle)["create"][1])
        assert error is not None and error.code == "query_failed", (place, error)
        service.execute("data/close", {"dbHandle": handle}, context=ALICE)
        (service.settings.space_root() / "alice" / "fn.sqlite").unlink()


def test_a_missing_postgres_function_is_query_failed() -> None:
    # PostgreSQL resolves a function a PL/pgSQL body (a CHECK's, a default's, a trigger's) calls
    # only when it runs: SQLSTATE 42883 is the schema's fault, as SQLite's "unknown function".
    errors = pytest.importorskip("psycopg.errors")
    from dbhandles.adapters.postgres_errors import translate_error

    exc = errors.UndefinedFunction("function nosuchfn(text) does not exist")
    error = translate_error(exc, collection="t")
    assert (error.code, error.http_status) == ("query_failed", 409), error
    assert "nosuchfn(text)" in error.message and '"t"' in error.message
