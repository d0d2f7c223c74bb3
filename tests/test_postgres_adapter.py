"""The ``postgres`` adapter beyond the contract suite: config, secrets, modes, errors, locking, indexes."""

from __future__ import annotations

import inspect
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors
import pytest

from dbhandles import (
    Conflict,
    DatabaseNotFound,
    DbHandlesError,
    InvalidConfig,
    InvalidFilter,
    InvalidParams,
    ReadOnly,
    Service,
)
from dbhandles.adapters.base import Query
from dbhandles.adapters.postgres import PostgresAdapter
from dbhandles.adapters.postgres_errors import translate_error
from dbhandles.filters import parse_filter
from tests.pgserver import postgres_adapter, require_postgres

pytestmark = pytest.mark.postgres
#: ``createdAt`` / ``updatedAt`` as dbhandles writes them: another text makes the row unreadable.
STAMP = "2026-01-01T00:00:00.000Z"


@pytest.fixture
def adapter(pg: dict[str, Any]) -> Iterator[PostgresAdapter]:
    with postgres_adapter(pg) as instance:
        yield instance


def _open(service: Service, config: dict[str, Any]) -> str:
    return str(service.execute("data/open", {"adapter": "postgres", "config": config})["dbHandle"])


# -- config and secrets -------------------------------------------------------------------------------


def test_config_takes_a_url_or_parts_and_schema_in_the_url() -> None:
    config = PostgresAdapter.parse_config(
        {"url": "postgresql://u@db.example:6543/app?schema=Tenant_1&sslmode=disable", "poolSize": 2}
    )
    assert config.schema_name == "tenant_1"  # type: ignore[attr-defined]
    assert config.public() == {
        "mode": "readwrite", "url": "postgresql://u@db.example:6543/app?sslmode=disable",
        "schema": "tenant_1", "poolSize": 2, "connectTimeout": 10.0, "fieldNames": "columns",
    }  # fmt: skip
    parts = PostgresAdapter.parse_config({"host": "h", "port": 5433, "dbname": "d", "user": "u"})
    assert parts.public()["host"] == "h" and parts.public()["schema"] == "public"


@pytest.mark.parametrize(
    "bad",
    [
        {"url": "mysql://x"},
        {"url": "postgresql://h/db", "schema": "pg_catalog"},
        {"url": "postgresql://h/db", "schema": "has-dash"},
        {"url": "postgresql://h/db?schema=a", "schema": "b"},
        {"poolSize": 0},
        {"port": 70000},
        {"bogus": 1},
    ],
)
def test_bad_config_is_invalid_config(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidConfig):
        PostgresAdapter.parse_config(bad)


def test_the_password_is_never_shown(service: Service, tmp_path: Path) -> None:
    server = require_postgres()
    secret = "s3cr3t-pw"
    url = server.tcp_url.replace("postgres@", f"postgres:{secret}@")
    handle = _open(service, {"url": url, "schema": "pw_test", "mode": "create", "password": secret})
    listed = service.execute("data/list-handles")["handles"]
    assert secret not in str(listed) and secret not in str(service.registry.resolve(handle).info())
    assert ":***@" in next(h for h in listed if h["handle"] == handle)["config"]["url"]
    # A server that is not there: the message names it, never the password.
    dead = f"postgresql://postgres:{secret}@127.0.0.1:1/postgres"
    envelope = service.dispatch(
        "data/open", {"adapter": "postgres", "config": {"url": dead, "connectTimeout": 2}}
    )
    assert envelope["code"] == "storage_error" and "127.0.0.1:1" in envelope["error"]
    assert secret not in envelope["error"]


def test_handles_share_an_adapter_per_server_schema_and_mode(pg: dict[str, Any]) -> None:
    key = PostgresAdapter.connection_key
    same = PostgresAdapter.parse_config({**pg, "poolSize": 9})
    assert key(PostgresAdapter.parse_config(pg)) == key(same)
    assert key(PostgresAdapter.parse_config(pg)) != key(
        PostgresAdapter.parse_config({**pg, "schema": "other"})
    )
    assert key(PostgresAdapter.parse_config(pg)) != key(
        PostgresAdapter.parse_config({**pg, "mode": "readonly"})
    )
    assert key(PostgresAdapter.parse_config(pg)) != key(
        PostgresAdapter.parse_config({**pg, "password": "x"})
    )


# -- modes ------------------------------------------------------------------------------------------


def test_schema_is_created_only_in_create_mode(service: Service, pg: dict[str, Any]) -> None:
    with pytest.raises(DatabaseNotFound, match="create"):
        _open(service, {**pg, "mode": "readwrite"})
    _open(service, pg)
    _open(service, {**pg, "mode": "readwrite"})


def test_readonly_is_enforced_by_the_server_too(service: Service, pg: dict[str, Any]) -> None:
    rw = _open(service, pg)
    service.execute("data/create", {"dbHandle": rw, "collection": "c", "id": "a", "data": {}})
    ro_config = PostgresAdapter.parse_config({**pg, "mode": "readonly"})
    ro = _open(service, {**pg, "mode": "readonly"})
    with pytest.raises(ReadOnly):
        service.execute("data/create", {"dbHandle": ro, "collection": "c", "data": {}})
    assert service.execute("data/read", {"dbHandle": ro, "collection": "c", "id": "a"})["found"]
    # Past the Python check, PostgreSQL itself refuses (default_transaction_read_only).
    adapter = PostgresAdapter(ro_config)
    try:
        adapter.connect()
        with pytest.raises(ReadOnly), adapter._session(write=True) as session:
            session.delete("c", "a")
    finally:
        adapter.close()


def test_driver_missing_names_the_extra(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from dbhandles import Service, DriverMissing\n"
        f"svc = Service({str(tmp_path / 'home')!r})\n"
        "env = svc.dispatch('data/open', {'adapter': 'postgres', 'config': {'url': 'postgresql://h/d'}})\n"
        "svc.close()\n"
        "print(env['code'], env['error'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert (
        out.stdout.startswith("driver_missing")
        and "pip install 'dbhandles[postgres]'" in out.stdout
    )


# -- layout -----------------------------------------------------------------------------------------


def test_collections_are_case_insensitive_and_keep_their_first_spelling(
    service: Service, pg: dict[str, Any]
) -> None:
    db = _open(service, pg)
    service.execute(
        "data/create", {"dbHandle": db, "collection": "TrainingExamples", "id": "a", "data": {}}
    )
    service.execute(
        "data/create", {"dbHandle": db, "collection": "trainingexamples", "id": "b", "data": {}}
    )
    service.execute("data/create", {"dbHandle": db, "collection": "alpha", "data": {}})
    listing = service.execute("data/schema", {"dbHandle": db})["collections"]
    assert [(c["name"], c["recordCount"]) for c in listing] == [
        ("TrainingExamples", 2),
        ("alpha", 1),
    ]


def test_foreign_tables_in_the_schema_are_listed_and_never_become_collections(
    service: Service, pg: dict[str, Any]
) -> None:
    # Served as tables (tests/test_postgres_foreign.py); a key-less one is read-only.
    db = _open(service, pg)
    with psycopg.connect(require_postgres().url, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{pg["schema"]}".users (id int, name text)')
    service.execute("data/create", {"dbHandle": db, "collection": "notes", "data": {}})
    listing = service.execute("data/schema", {"dbHandle": db})["collections"]
    kinds = [(c["name"], c["kind"]) for c in listing]
    assert kinds == [("notes", "collection"), ("users", "table")]
    with pytest.raises(ReadOnly, match="without a primary key"):
        service.execute("data/create", {"dbHandle": db, "collection": "users", "data": {}})


def test_long_collection_names_do_not_collide(service: Service, pg: dict[str, Any]) -> None:
    db = _open(service, pg)
    a, b = "x" * 63 + "a", "x" * 63 + "b"
    service.execute("data/create", {"dbHandle": db, "collection": a, "id": "1", "data": {}})
    service.execute("data/create", {"dbHandle": db, "collection": b, "id": "1", "data": {}})
    assert sorted(
        c["name"] for c in service.execute("data/schema", {"dbHandle": db})["collections"]
    ) == [a, b]


def test_declared_indexes_are_expression_indexes_the_planner_uses(adapter: PostgresAdapter) -> None:
    with adapter.session(write=True) as session:
        session.insert_many("docs", [
            {"id": f"d{i:05d}", "label": f"l{i % 500}", "score": i % 97, "createdAt": STAMP, "updatedAt": STAMP,
             "version": 1}
            for i in range(5000)
        ])  # fmt: skip
    adapter.ensure_indexes("docs", [("label",), ("score",), ("updatedAt",)])
    adapter.ensure_indexes("docs", [("label",)])  # idempotent
    compiler = adapter.compiler
    pool = adapter._require_pool()
    with pool.connection() as conn:
        conn.execute(f'ANALYZE "{adapter.schema}".docs')
        conn.execute("SET enable_seqscan = off")
        for spec in ({"label": "l7"}, {"score": {"$gt": 95}}):
            where = compiler.where(parse_filter(spec))
            plan = conn.execute(
                f'EXPLAIN SELECT id FROM "{adapter.schema}".docs WHERE {where.sql}', where.params
            ).fetchall()
            assert "_dbh_ix_" in str(plan), plan
    with adapter.session() as session:
        assert session.count("docs", parse_filter({"label": "l7"})) == 10


def test_insert_many_skips_existing_ids_and_counts_inserts(adapter: PostgresAdapter) -> None:
    def row(i: str) -> dict[str, Any]:
        return {"id": i, "createdAt": STAMP, "updatedAt": STAMP, "version": 1}

    with adapter.session(write=True) as session:
        assert session.insert_many("c", [row("a"), row("b")]) == 2
        assert session.insert_many("c", [row("b"), row("c"), row("c")], skip_existing=True) == 1
    with (
        pytest.raises(DbHandlesError, match="already exists"),
        adapter.session(write=True) as session,
    ):
        session.insert_many("c", [row("z"), row("a")])
    with adapter.session() as session:
        assert [r["id"] for r in session.find("c", Query())] == ["a", "b", "c"]


# -- transactions -------------------------------------------------------------------------------------


def test_expected_version_holds_under_concurrent_updates(
    service: Service, pg: dict[str, Any]
) -> None:
    db = _open(service, pg)
    service.execute("data/create", {"dbHandle": db, "collection": "c", "id": "a", "data": {"n": 0}})
    results: list[str] = []
    barrier = threading.Barrier(6)

    def bump() -> None:
        barrier.wait()
        envelope = service.dispatch(
            "data/update",
            {"dbHandle": db, "collection": "c", "id": "a", "data": {"n": 1}, "expectedVersion": 1},
        )
        results.append("ok" if envelope["success"] else envelope["code"])

    threads = [threading.Thread(target=bump) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["conflict"] * 5 + ["ok"]
    assert (
        service.execute("data/read", {"dbHandle": db, "collection": "c", "id": "a"})["data"][
            "version"
        ]
        == 2
    )
    with pytest.raises(Conflict):
        service.execute(
            "data/update",
            {"dbHandle": db, "collection": "c", "id": "a", "data": {}, "expectedVersion": 1},
        )


def test_nested_sessions_are_savepoints(adapter: PostgresAdapter) -> None:
    def row(i: str) -> dict[str, Any]:
        return {"id": i, "createdAt": STAMP, "updatedAt": STAMP, "version": 1}

    def failing_inner() -> None:
        with adapter.session(write=True) as inner:
            inner.insert("fresh", row("gone"))
            raise RuntimeError("roll the savepoint back")

    with adapter.session(write=True) as outer:
        outer.insert("c", row("kept"))
        with pytest.raises(RuntimeError):
            failing_inner()
        with adapter.session(write=True) as inner:
            inner.insert("c", row("also"))
    with adapter.session() as session:
        assert [r["id"] for r in session.find("c", Query())] == ["also", "kept"]
        assert session.collections() == ["c"]


def test_a_failed_statement_rolls_back_the_whole_session(adapter: PostgresAdapter) -> None:
    def write_two() -> None:
        with adapter.session(write=True) as session:
            session.insert("c", {"id": "a", "createdAt": STAMP, "updatedAt": STAMP, "version": 1})
            session.insert(
                "c",
                {"id": "b", "s": "nul\x00", "createdAt": STAMP, "updatedAt": STAMP, "version": 1},
            )

    with pytest.raises(InvalidParams):
        write_two()
    with adapter.session() as session:
        assert session.collections() == [] and session.count("c", None) == 0


def test_vacuum_and_size(service: Service, pg: dict[str, Any]) -> None:
    db = _open(service, pg)
    ops = [
        {"op": "create", "collection": "c", "data": {"blob": "x" * 3000, "i": i}}
        for i in range(200)
    ]
    service.execute("data/batch", {"dbHandle": db, "operations": ops})
    service.execute("data/truncate", {"dbHandle": db, "collection": "c"})
    result = service.execute("data/vacuum", {"dbHandle": db})
    assert result["beforeSize"] > result["afterSize"] > 0


def test_closing_releases_every_pool_thread(service: Service, pg: dict[str, Any]) -> None:
    def pool_threads() -> list[str]:
        return [t.name for t in threading.enumerate() if pg["schema"] in t.name]

    db = _open(service, pg)
    service.execute("data/create", {"dbHandle": db, "collection": "c", "data": {}})
    assert pool_threads()
    service.execute("data/close", {"dbHandle": db})
    assert pool_threads() == []


# -- errors -------------------------------------------------------------------------------------------


def _psycopg_error_classes() -> list[type[psycopg.Error]]:
    found = {psycopg.Error, psycopg.InterfaceError, psycopg.DatabaseError}
    for module in (psycopg, psycopg.errors):
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, psycopg.Error):
                found.add(value)
    import psycopg_pool

    found.update({psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed})
    return sorted(found, key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", _psycopg_error_classes(), ids=lambda c: c.__name__)
def test_every_driver_error_is_translated(cls: type[psycopg.Error]) -> None:
    secret = "hunter2"
    exc = cls(f"boom with {secret} inside")
    translated = translate_error(exc, where="db:5432/app", secret=secret)
    assert isinstance(translated, DbHandlesError) and type(translated) is not DbHandlesError
    assert secret not in translated.message and translated.message


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (psycopg.errors.UniqueViolation, "record_exists"),
        (psycopg.errors.ReadOnlySqlTransaction, "read_only"),
        (psycopg.errors.InvalidRegularExpression, "invalid_filter"),
        (psycopg.errors.SerializationFailure, "storage_busy"),
        (psycopg.errors.DeadlockDetected, "storage_busy"),
        (psycopg.errors.TooManyConnections, "storage_busy"),
        (psycopg.errors.InvalidCatalogName, "database_not_found"),
        (psycopg.errors.InvalidPassword, "storage_error"),
        (psycopg.errors.InsufficientPrivilege, "database_denied"),
        (psycopg.errors.DiskFull, "storage_error"),
        (psycopg.errors.UntranslatableCharacter, "invalid_params"),
        (psycopg.OperationalError, "storage_error"),
    ],
)
def test_driver_errors_map_to_stable_codes(cls: type[psycopg.Error], code: str) -> None:
    assert translate_error(cls("x")).code == code


def test_driver_errors_are_chained_and_keep_the_session_usable(adapter: PostgresAdapter) -> None:
    """A pattern RE2 accepts but PostgreSQL cannot compile (too complex) is invalid_filter."""
    with adapter.session(write=True) as session:
        session.insert(
            "c", {"id": "a", "t": "x", "createdAt": STAMP, "updatedAt": STAMP, "version": 1}
        )
    with pytest.raises(InvalidFilter) as info, adapter.session() as session:
        session.find("c", Query(parse_filter({"t": {"$regex": r"(?:\b{30}){30}"}})))
    assert isinstance(info.value.__cause__, psycopg.Error)
    with adapter.session() as session:
        assert session.count("c", None) == 1
