"""Issue 12, round nine: what an outside tester holding an ordinary token still found.

A database's own SQL (views, triggers) never shows the server's files or settings; a refused or
failed ``data/open`` leaves no file behind; grants, revocations, grant listings and an
administrator's ``permissions.owner`` name real actors only. See docs/security.md.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Context, Service
from dbhandles.errors import StorageError
from dbhandles.security.permissions import Permissions
from tests.security_helpers import ALICE, BOB, ROOT, refused

pytestmark = pytest.mark.two_tenants

LOCAL = Context(actor="local", session_id="s-local", is_admin=True, trusted_local=True)


@pytest.fixture
def service(service: Service) -> Service:
    """The two tenants' service (tests/conftest.py), with an administrator ``root`` too."""
    service.tokens.create("root", admin=True)
    return service


def space(service: Service, actor: str = "alice") -> Path:
    folder = service.settings.space_root() / actor
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def crafted(service: Service, *sql: str, name: str = "craft.sqlite") -> Path:
    """A database alice put in her space from a shell, holding ``sql``."""
    path = space(service) / name
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, a)")
    conn.execute("CREATE TABLE leak (id INTEGER PRIMARY KEY, f)")
    for statement in sql:
        conn.execute(statement)
    conn.commit()
    conn.close()
    return path


def open_crafted(service: Service, context: Context = ALICE, **extra: Any) -> str:
    path = "craft.sqlite" if context is ALICE else str(space(service) / "craft.sqlite")
    opened = service.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": path}, **extra}, context=context
    )
    return str(opened["dbHandle"])


# -- 3. the SQL a database carries ------------------------------------------------------------------


def test_a_view_of_pragma_database_list_is_refused_never_run(service: Service) -> None:
    crafted(service, "CREATE VIEW dbl AS SELECT * FROM pragma_database_list")
    handle = open_crafted(service)
    home = str(service.settings.home)
    for name, params in [
        ("data/list", {"collection": "dbl"}),
        ("data/count", {"collection": "dbl"}),
        ("data/query-open", {"collection": "dbl"}),
        ("data/export", {"collection": "dbl", "output": "dbl.jsonl"}),
    ]:
        error = refused(service, name, {"dbHandle": handle, **params}, ALICE)
        assert error.code == "access_denied", (name, error)
        assert '"dbl"' in error.message and "pragma_database_list" in error.message
        assert home not in error.message and "craft.sqlite" not in error.message
    assert not (space(service) / "dbl.jsonl").exists()
    # data/schema still lists the database, the view with why it cannot be read.
    listing = service.execute("data/schema", {"dbHandle": handle}, context=ALICE)["collections"]
    view = next(entry for entry in listing if entry["name"] == "dbl")
    assert view["recordCount"] is None and "pragma_database_list" in view["refused"]
    assert {e["name"] for e in listing} >= {"t", "leak"}


@pytest.mark.parametrize(
    "source",
    [
        "pragma_compile_options",
        "pragma_function_list",
        "pragma_table_info('t')",
        "PRAGMA_DATABASE_LIST",
        "(SELECT file FROM pragma_database_list)",
    ],
)
def test_every_pragma_table_is_refused_in_a_view(service: Service, source: str) -> None:
    crafted(service, f"CREATE VIEW v AS SELECT * FROM {source}")
    handle = open_crafted(service)
    error = refused(service, "data/list", {"dbHandle": handle, "collection": "v"}, ALICE)
    assert error.code == "access_denied" and '"v"' in error.message


def test_a_view_over_a_revealing_view_is_refused_too(service: Service) -> None:
    crafted(
        service,
        "CREATE VIEW inner_v AS SELECT file FROM pragma_database_list",
        "CREATE VIEW outer_v AS SELECT * FROM inner_v",
    )
    handle = open_crafted(service)
    error = refused(service, "data/list", {"dbHandle": handle, "collection": "outer_v"}, ALICE)
    assert error.code == "access_denied" and '"inner_v"' in error.message


def test_a_trigger_reading_a_pragma_table_refuses_the_write(service: Service) -> None:
    path = crafted(
        service,
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN "
        "INSERT INTO leak (f) SELECT file FROM pragma_database_list; END",
    )
    handle = open_crafted(service)
    create = {"dbHandle": handle, "collection": "t", "data": {"id": "x", "a": 1}}
    error = refused(service, "data/create", create, ALICE)
    assert error.code == "access_denied" and '"tr"' in error.message
    batch = {"dbHandle": handle, "operations": [{"op": "create", "collection": "t",
                                                 "data": {"id": "y", "a": 2}}]}  # fmt: skip
    assert refused(service, "data/batch", batch, ALICE).code == "access_denied"
    service.execute("data/close", {"dbHandle": handle}, context=ALICE)
    conn = sqlite3.connect(path)
    try:  # nothing was written, and nothing leaked
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM leak").fetchone()[0] == 0
    finally:
        conn.close()


def test_administrators_are_refused_the_same_sql(service: Service) -> None:
    crafted(service, "CREATE VIEW dbl AS SELECT * FROM pragma_database_list")
    handle = open_crafted(service, ROOT)
    error = refused(service, "data/list", {"dbHandle": handle, "collection": "dbl"}, ROOT)
    assert error.code == "access_denied"


def test_defaults_generated_columns_and_harmless_functions_still_work(service: Service) -> None:
    # Defaults, generated columns and CHECK constraints cannot hold a subquery, so they reach no
    # pragma table; the functions they may call (sqlite_source_id...) show nothing of the server.
    crafted(
        service,
        "CREATE TABLE d (id TEXT PRIMARY KEY, src DEFAULT (sqlite_source_id()), "
        "n INTEGER CHECK (n >= 0), twice AS (n * 2))",
        "CREATE VIEW ver AS SELECT sqlite_version() AS v, id, n FROM d",
        "CREATE TRIGGER stamp AFTER INSERT ON d BEGIN "
        "INSERT INTO leak (f) SELECT sqlite_version(); END",
    )
    handle = open_crafted(service)
    service.execute("data/create", {"dbHandle": handle, "collection": "d",
                                    "data": {"id": "a", "n": 2}}, context=ALICE)  # fmt: skip
    row = service.execute("data/read", {"dbHandle": handle, "collection": "d", "id": "a"},
                          context=ALICE)["data"]  # fmt: skip
    probe = sqlite3.connect(":memory:")
    try:
        assert row["src"] == probe.execute("SELECT sqlite_source_id()").fetchone()[0]
    finally:
        probe.close()
    assert row["twice"] == 4
    listed = service.execute("data/list", {"dbHandle": handle, "collection": "ver"}, context=ALICE)
    assert listed["count"] == 1
    leak = service.execute("data/list", {"dbHandle": handle, "collection": "leak"}, context=ALICE)
    assert leak["items"][0]["f"] == sqlite3.sqlite_version


def test_a_restricted_handle_checks_views_and_keeps_the_guard(service: Service) -> None:
    crafted(
        service,
        "CREATE VIEW ok_v AS SELECT id, a FROM t",
        "CREATE VIEW dbl AS SELECT * FROM pragma_database_list",
    )
    handle = open_crafted(service)
    service.execute("data/grant", {"dbHandle": handle, "actor": "bob", "access": "read",
                                   "permissions": {"allowedCollections": ["ok_v", "t", "dbl"]}},
                    context=ALICE)  # fmt: skip
    bobs = service.execute(
        "data/open",
        {"adapter": "sqlite", "config": {"path": str(space(service) / "craft.sqlite")}},
        context=BOB,
    )["dbHandle"]
    assert service.execute("data/list", {"dbHandle": bobs, "collection": "ok_v"},
                           context=BOB)["count"] == 0  # fmt: skip
    # Bob's handle may read dbl only if all it reads is allowed: a pragma table never is.
    error = refused(service, "data/list", {"dbHandle": bobs, "collection": "dbl"}, BOB)
    assert error.code == "permission_denied" and "pragma_database_list" in error.message
    # Deciding what a view reads sets an authorizer of its own for a while: the guard is back
    # after it, on the connection both handles share.
    error = refused(service, "data/list", {"dbHandle": handle, "collection": "dbl"}, ALICE)
    assert error.code == "access_denied" and "pragma_database_list" in error.message


def test_a_database_cannot_carry_attach_or_pragma_in_its_sql() -> None:
    # What the guard refuses besides pragma tables: SQLite itself takes no ATTACH, DETACH or
    # PRAGMA in a trigger body (and a view is one SELECT), so no file can carry them.
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE TABLE t (a)")
        for body in ("ATTACH DATABASE 'x.db' AS x;", "DETACH DATABASE main;", "PRAGMA x = 1;"):
            with pytest.raises(sqlite3.OperationalError):
                conn.execute(f"CREATE TRIGGER tr AFTER INSERT ON t BEGIN {body} END")
    finally:
        conn.close()


def test_a_collection_named_like_a_pragma_table_reaches_no_pragma(service: Service) -> None:
    # Callers write no SQL: a collection name resolves to the schema's tables and views only,
    # and a filter's fields are compiled as JSON paths or columns, never table names.
    crafted(service)
    handle = open_crafted(service)
    for name in ("pragma_database_list", "pragma_compile_options"):
        listed = service.execute("data/list", {"dbHandle": handle, "collection": name},
                                 context=ALICE)  # fmt: skip
        assert listed["items"] == []
    found = service.execute(
        "data/list",
        {"dbHandle": handle, "collection": "t", "filter": {"pragma_database_list.file": "x"}},
        context=ALICE,
    )
    assert found["items"] == []


# -- 5. a refused or failed open creates nothing --------------------------------------------------


@pytest.mark.parametrize("adapter", ["sqlite", "json"])
@pytest.mark.parametrize(
    "extra",
    [
        {"alias": "default"},
        {"alias": "0746cf18-230e-4bf5-a42a-f9bb0f35de42"},
        {"alias": "bad alias"},
        {"preset": "NOPE"},
        {"permissions": {"owner": "bob"}},
    ],
)
def test_a_refused_open_creates_no_file(
    service: Service, adapter: str, extra: dict[str, Any]
) -> None:
    folder = space(service)
    params = {"adapter": adapter, "config": {"path": "sub/d.db", "mode": "create"}, **extra}
    error = refused(service, "data/open", params, ALICE)
    assert error.code in {"invalid_params", "permission_denied"}
    assert list(folder.iterdir()) == []
    assert service.registry.store.get_database(f"file:{folder / 'sub' / 'd.db'}") is None


@pytest.mark.parametrize("adapter", ["sqlite", "json"])
@pytest.mark.parametrize("context", [ALICE, LOCAL], ids=["remote", "local"])
def test_a_failed_open_removes_the_file_it_created(
    service: Service, monkeypatch: pytest.MonkeyPatch, adapter: str, context: Context
) -> None:
    folder = space(service)
    path = "new.db" if context is ALICE else str(folder / "new.db")

    def fail(*args: object, **kwargs: object) -> None:
        raise StorageError("the handle store is full")

    monkeypatch.setattr(service.registry.store, "put_handle", fail)
    params = {"adapter": adapter, "config": {"path": path, "mode": "create"}}
    assert refused(service, "data/open", params, context).code == "storage_error"
    assert list(folder.iterdir()) == []


def test_a_failed_open_keeps_a_file_it_did_not_create(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = crafted(service)
    before = path.read_bytes()

    def fail(*args: object, **kwargs: object) -> None:
        raise StorageError("the handle store is full")

    monkeypatch.setattr(service.registry.store, "put_handle", fail)
    params = {"adapter": "sqlite", "config": {"path": "craft.sqlite", "mode": "create"}}
    assert refused(service, "data/open", params, ALICE).code == "storage_error"
    assert path.read_bytes() == before


def test_refused_exports_and_imports_create_no_file(service: Service) -> None:
    folder = space(service)
    (folder / "in.jsonl").write_text('{"id": "a", "n": 1}\n')
    service.execute("data/open", {"adapter": "sqlite", "alias": "own",
                                  "config": {"path": "own.sqlite", "mode": "create"}},
                    context=ALICE)  # fmt: skip
    before = set(os.listdir(folder))
    for name, params in [
        ("data/export", {"dbHandle": "own", "collection": "c", "output": "e1.jsonl",
                         "filter": {"n": {"$bad": 1}}}),
        ("data/export", {"dbHandle": "ghost", "collection": "c", "output": "e2.jsonl"}),
        ("data/export", {"dbHandle": "own", "collection": "_dbh_x", "output": "e3.jsonl"}),
        ("data/import", {"dbHandle": "ghost", "collection": "c", "input": "in.jsonl",
                         "onError": "skip", "rejects": "r1.jsonl"}),
        ("data/import", {"collection": "_dbh_c", "input": "in.jsonl", "output": "o2.sqlite",
                         "onError": "skip", "rejects": "r2.jsonl"}),
        ("data/import", {"collection": "c", "input": "missing.jsonl", "output": "o3.sqlite",
                         "onError": "skip", "rejects": "r3.jsonl"}),
        ("data/import", {"dbHandle": "own", "collection": "c", "input": "in.jsonl",
                         "output": "o4.sqlite"}),
    ]:  # fmt: skip
        refused(service, name, params, ALICE)
        assert set(os.listdir(folder)) == before, name


# -- 6. grants name real actors ---------------------------------------------------------------------


def alices_database(service: Service) -> str:
    service.execute("data/open", {"adapter": "sqlite", "alias": "aw",
                                  "config": {"path": "w.sqlite", "mode": "create"}},
                    context=ALICE)  # fmt: skip
    return "aw"


@pytest.mark.parametrize(
    ("actor", "why"),
    [
        ("admin", "reserved"),
        ("local", "reserved"),
        ("anonymous", "reserved"),
        ("ADMIN", "only in case"),
        ("Bob", "only in case"),
        ("BOB", "only in case"),
        ("root", "administrator's name"),
        ("bob smith", "not a valid actor name"),
    ],
)
def test_a_grant_names_a_real_actor(service: Service, actor: str, why: str) -> None:
    handle = alices_database(service)
    params = {"dbHandle": handle, "actor": actor, "access": "read"}
    error = refused(service, "data/grant", params, ALICE)
    # A non-admin names only a token holder, one answer whatever else is wrong (round 12).
    assert error.code == "invalid_params" and error.field == "actor"
    assert "not a valid actor name" in error.message or "holds a token by exactly" in error.message
    assert service.execute("data/list-grants", {"dbHandle": handle}, context=ALICE)["grants"] == []
    # An administrator, who may grant ahead of a first token, is told the rule it broke.
    path = str(service.settings.space_root() / "alice" / "w.sqlite")
    roots = service.execute("data/open", {"adapter": "sqlite", "config": {"path": path}},
                            context=ROOT)["dbHandle"]  # fmt: skip
    error = refused(service, "data/grant", {**params, "dbHandle": roots}, ROOT)
    assert error.code == "invalid_params" and error.field == "actor" and why in error.message


def test_a_grant_to_an_actor_or_a_future_actor_works(service: Service) -> None:
    handle = alices_database(service)
    service.execute("data/grant", {"dbHandle": handle, "actor": "bob"}, context=ALICE)
    # carol holds no token yet: only an administrator shares ahead of her first token (a
    # non-admin's grant would reserve the name, round 12).
    error = refused(service, "data/grant", {"dbHandle": handle, "actor": "carol"}, ALICE)
    assert (error.code, error.field) == ("invalid_params", "actor")
    path = str(service.settings.space_root() / "alice" / "w.sqlite")
    roots = service.execute("data/open", {"adapter": "sqlite", "config": {"path": path}},
                            context=ROOT)["dbHandle"]  # fmt: skip
    service.execute("data/grant", {"dbHandle": roots, "actor": "carol"}, context=ROOT)
    grants = service.execute("data/list-grants", {"dbHandle": handle}, context=ALICE)["grants"]
    assert sorted(g["actor"] for g in grants) == ["bob", "carol"]


def test_revoke_and_list_grants_follow_the_rule(service: Service) -> None:
    handle = alices_database(service)
    service.execute("data/grant", {"dbHandle": handle, "actor": "bob"}, context=ALICE)
    for name, params, context in [
        ("data/list-grants", {"actor": "Bob"}, ROOT),
        ("data/list-grants", {"actor": "ADMIN"}, ROOT),
        ("data/list-grants", {"actor": "no/such"}, ROOT),
    ]:
        error = refused(service, name, params, context)
        assert error.code == "invalid_params" and error.field == "actor", name
    # A non-admin's are lookups of its own grants: a name no grant holds is answered as nothing
    # revoked or listed, whatever the reason (round 13: no name oracle; test_security_round13).
    answer = service.execute("data/revoke", {"dbHandle": handle, "actor": "Bob"}, context=ALICE)
    assert answer["revoked"] is False and answer["handlesClosed"] == 0
    listed = service.execute("data/list-grants", {"dbHandle": handle, "actor": "Bob"},
                             context=ALICE)["grants"]  # fmt: skip
    assert listed == []
    grants = service.execute("data/list-grants", {"dbHandle": handle, "actor": "bob"},
                             context=ALICE)["grants"]  # fmt: skip
    assert [g["actor"] for g in grants] == ["bob"]
    revoked = service.execute("data/revoke", {"dbHandle": handle, "actor": "bob"}, context=ALICE)
    assert revoked["revoked"] is True


def test_a_grant_stored_before_the_rule_can_still_be_listed_and_revoked(service: Service) -> None:
    handle = alices_database(service)
    entry = service.registry.resolve_for(handle, "alice", False)
    database = service.access.database_of(entry.config)
    assert database is not None
    service.access.put_grant(database, "Bob", Permissions(read=True, write=False), ALICE)
    listed = service.execute("data/list-grants", {"dbHandle": handle, "actor": "Bob"},
                             context=ALICE)["grants"]  # fmt: skip
    assert [g["actor"] for g in listed] == ["Bob"]
    assert service.execute("data/list-grants", {"actor": "Bob"}, context=ROOT)["grants"]
    revoked = service.execute("data/revoke", {"dbHandle": handle, "actor": "Bob"}, context=ALICE)
    assert revoked["revoked"] is True


def test_an_administrators_owner_names_a_real_actor(service: Service) -> None:
    path = str(service.settings.space_root() / "shared.sqlite")
    params = {"adapter": "sqlite", "config": {"path": path, "mode": "create"},
              "permissions": {"owner": "Bob", "isolationMode": "soft"}}  # fmt: skip
    error = refused(service, "data/open", params, ROOT)
    assert error.code == "invalid_params" and error.field == "permissions.owner"
    assert not os.path.exists(path)
    params["permissions"] = {"owner": "bob", "isolationMode": "soft"}
    assert service.execute("data/open", params, context=ROOT)["owner"] == "bob"
