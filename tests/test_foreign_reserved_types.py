"""A column of a table dbhandles did not create named like a reserved field (``version``,
``createdAt``, ``updatedAt``; with ``fieldNames: camel`` ``created_at``/``updated_at`` too) whose
type is not the reserved field's is plain data (issue 15, docs/foreign-tables.md "Versions and
timestamps"): every command answers with the right values or a clear error with nothing written,
never a 500 (before: ``data/update`` of a ``version TEXT`` table wrote the row, then failed
building its result). Every door that reads those fields from a row is one case here."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.errors import DbHandlesError
from tests.conftest import adapter_config
from tests.test_foreign_copy import _sql

PG = pytest.mark.postgres

#: (column name, camel field names, SQLite type and literal, PostgreSQL type and literal).
COLUMNS = [
    ("version", False, "TEXT", "'v1'", "text", "'v1'"),
    ("version", False, "REAL", "1.5", "double precision", "1.5"),
    ("version", False, "BLOB", "x'0102'", "numeric", "2.5"),
    ("version", False, "", "'zz'", "jsonb", "'\"v\"'"),
    ("createdAt", False, "INTEGER", "3", "integer", "3"),
    ("updatedAt", False, "TEXT", "'x'", "text", "'x'"),
    ("created_at", True, "REAL", "1.5", "double precision", "1.5"),
    ("updated_at", True, "INTEGER", "3", "bigint", "3"),
    ("version", True, "TEXT", "'v1'", "text", "'v1'"),
]
COMMANDS = [
    "update",
    "create",
    "batch",
    "delete",
    "read",
    "list",
    "cursor",
    "export",
    "copy",
    "events",
]


def _open(
    service: Service, tmp_path: Path, adapter: str, column: tuple[Any, ...]
) -> tuple[str, Any]:
    name, camel, sqlite_type, sqlite_value, pg_type, pg_value = column
    folder = tmp_path / "t"
    folder.mkdir()
    if adapter == "sqlite":
        conn = sqlite3.connect(folder / "db.sqlite")
        conn.execute(f'CREATE TABLE tv (id TEXT PRIMARY KEY, "{name}" {sqlite_type}, n INTEGER)')
        conn.execute(f"INSERT INTO tv VALUES ('q', {sqlite_value}, 1)")
        conn.commit()
        conn.close()
        config: dict[str, Any] = {"path": str(folder / "db.sqlite")}
    else:
        _sql("postgres", folder, f'CREATE TABLE tv (id text PRIMARY KEY, "{name}" {pg_type}, n integer); '
             f"INSERT INTO tv VALUES ('q', {pg_value}, 1)")  # fmt: skip
        config = adapter_config("postgres", folder)
        config.pop("mode", None)
    if camel:
        config["fieldNames"] = "camel"
    handle = service.execute("data/open", {"adapter": adapter, "config": config})["dbHandle"]
    stored = service.execute("data/read", {"dbHandle": handle, "collection": "tv", "id": "q"})
    return str(handle), stored["data"]


def _row(service: Service, handle: str, record_id: str = "q") -> dict[str, Any] | None:
    found = service.execute("data/read", {"dbHandle": handle, "collection": "tv", "id": record_id})
    return found["data"]  # type: ignore[no-any-return]


def _run(service: Service, handle: str, command: str, tmp_path: Path) -> dict[str, Any]:
    base = {"dbHandle": handle, "collection": "tv"}
    if command == "update":
        done = service.execute("data/update", {**base, "id": "q", "data": {"n": 2}})
        assert (done["previousVersion"], done["newVersion"]) == (None, None)
        assert done["data"]["n"] == 2
    elif command == "create":
        done = service.execute("data/create", {**base, "id": "r", "data": {"n": 3}})
        assert done["data"]["n"] == 3
    elif command == "batch":
        done = service.execute("data/batch", {"dbHandle": handle, "operations": [
            {"op": "update", "collection": "tv", "id": "q", "data": {"n": 2}},
            {"op": "create", "collection": "tv", "id": "s", "data": {"n": 4}},
            {"op": "delete", "collection": "tv", "id": "s"}]})  # fmt: skip
        first, second, _ = done["results"]
        assert (first["previousVersion"], first["newVersion"], second["version"]) == (
            None,
            None,
            None,
        )
    elif command == "delete":
        service.execute("data/create", {**base, "id": "r", "data": {"n": 3}})
        done = service.execute("data/delete", {**base, "id": "r"})
        assert done["deleted"] is True
    elif command == "list":
        done = service.execute("data/list", base)
        assert [r["id"] for r in done["items"]] == ["q"]
    elif command == "cursor":
        opened = service.execute("data/query-open", {**base, "pageSize": 1})
        query = {"dbHandle": handle, "queryHandle": opened["queryHandle"]}
        done = service.execute("data/query-next", query)
        assert [r["id"] for r in done["items"]] == ["q"]
        service.execute("data/query-close", query)
    elif command == "export":
        out = tmp_path / "out.jsonl"
        done = service.execute("data/export", {**base, "output": str(out)})
        assert done["exported"] == 1 and out.read_text().count("\n") == 1
    elif command == "copy":
        target = service.execute("data/open", {"adapter": "memory", "config": {}})["dbHandle"]
        params = {"from": base, "to": {"dbHandle": target, "collection": "c"}}
        refused = _refusal(service, "data/copy", params)
        # a collection keeps its own reserved fields: a clear refusal, nothing written
        assert refused is None or (refused.code, refused.field) == (
            "invalid_params",
            "from.collection",
        )
        count = service.execute("data/count", {"dbHandle": target, "collection": "c"})
        assert count["total"] == (0 if refused else 1)
        done = {}
    else:
        seen: list[Any] = []
        sub = service.events.subscribe("data:*", lambda e: seen.append(e.payload))
        try:
            service.execute("data/update", {**base, "id": "q", "data": {"n": 7}})
        finally:
            sub.close()
        assert [p["record"]["n"] for p in seen] == [7]
        done = {}
    return dict(done)


def _refusal(
    service: Service, command: str, params: dict[str, Any], run: Callable[[], object] | None = None
) -> DbHandlesError | None:
    """The error ``command`` (or ``run``) raises, ``None`` when it succeeds."""
    try:
        run() if run is not None else service.execute(command, params)
    except DbHandlesError as exc:
        return exc
    return None


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("column", COLUMNS, ids=lambda c: f"{c[0]}-{c[2] or 'none'}")
@pytest.mark.parametrize("adapter", ["sqlite", pytest.param("postgres", marks=PG)])
def test_a_reserved_name_of_another_type_is_plain_data(
    service: Service, tmp_path: Path, adapter: str, column: tuple[Any, ...], command: str
) -> None:
    handle, before = _open(service, tmp_path, adapter, column)
    field = {"created_at": "createdAt", "updated_at": "updatedAt"}.get(column[0], column[0])
    refused = _refusal(service, "", {}, lambda: _run(service, handle, command, tmp_path))
    if refused is not None:  # a clear error, never an internal one, and nothing written
        assert refused.code != "internal_error", refused.message
        assert _row(service, handle) == before
        return
    after = _row(service, handle)
    assert after is not None and after[field] == before[field]  # plain data, kept as it was
    schema = service.execute("data/schema", {"dbHandle": handle, "collection": "tv"})
    assert "reservedFields" not in schema["table"]


@pytest.mark.parametrize("adapter", ["sqlite", pytest.param("postgres", marks=PG)])
def test_an_integer_version_is_still_the_version(
    service: Service, tmp_path: Path, adapter: str
) -> None:
    handle, _ = _open(service, tmp_path, adapter,
                      ("version", False, "INTEGER", "4", "bigint", "4"))  # fmt: skip
    done = service.execute("data/update", {"dbHandle": handle, "collection": "tv", "id": "q",
                                           "data": {"n": 2}})  # fmt: skip
    assert (done["previousVersion"], done["newVersion"]) == (4, 5)
    batch = service.execute("data/batch", {"dbHandle": handle, "operations": [
        {"op": "create", "collection": "tv", "id": "s", "data": {"n": 4}}]})  # fmt: skip
    assert batch["results"][0]["version"] == 1


@pytest.mark.parametrize("adapter", ["sqlite", pytest.param("postgres", marks=PG)])
def test_omit_reserved_keeps_a_column_that_is_plain_data(
    service: Service, tmp_path: Path, adapter: str
) -> None:
    """``omitReserved`` leaves out what is reserved in that table: ``id`` and an integer
    ``version``, never a ``version`` column of another type (a user's data)."""
    handle, _ = _open(service, tmp_path, adapter, COLUMNS[0])
    out = tmp_path / "omit.jsonl"
    service.execute("data/export", {"dbHandle": handle, "collection": "tv", "output": str(out),
                                    "omitReserved": True})  # fmt: skip
    assert out.read_text().splitlines() == ['{"version":"v1","n":1}']
