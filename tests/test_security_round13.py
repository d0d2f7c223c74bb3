"""Issue 12, round thirteen: an outside tester's findings at the tenant boundary.

A collection's table carries the owner's SQL too: its foreign keys and triggers write other tables,
so a write of a collection through a restricted handle is checked like a foreign table's (§5,
"Cascades on restricted handles"). Ending or listing a grant answers a non-admin the same for every
name no grant holds (no name oracle). A row-filtered handle cannot read a view: its row filter would
be tested on the rows the view computes, not on the rows it reads ("Row filters and views"). A
PostgreSQL value past its column's capacity names the column (docs/foreign-tables.md). See
docs/security.md.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import Service
from dbhandles.errors import DbHandlesError
from dbhandles.settings import Settings
from tests.security_helpers import ALICE, crafted_file, granted_handle, space
from tests.test_security_tenants import Tenants, serve_tenants

pytestmark = pytest.mark.two_tenants

#: A dbhandles collection's table, as dbhandles creates it.
COLLECTION = (
    "(id TEXT PRIMARY KEY NOT NULL, data TEXT NOT NULL, created_at TEXT NOT NULL, "
    "updated_at TEXT NOT NULL, version INTEGER NOT NULL)"
)
STAMP = "'2024-01-01T00:00:00.000Z'"


def collection_sql(name: str) -> list[str]:
    return [
        f'CREATE TABLE "{name}" {COLLECTION}',
        f'CREATE INDEX "_dbh_ix:{name}:createdAt" ON "{name}" (created_at)',
    ]


def pub_rows() -> list[str]:
    return [
        f"INSERT INTO pub VALUES ('p1', '{{\"owner\":\"alice\"}}', {STAMP}, {STAMP}, 1)",
        f"INSERT INTO pub VALUES ('p2', '{{\"owner\":\"bob\"}}', {STAMP}, {STAMP}, 1)",
    ]


#: Bob's file as the tester built it: collection ``pub``; ``payroll`` deleted with its rows of
#: ``pub`` (a foreign key) and emptied by a trigger on ``pub``; ``tlog`` written by triggers.
TRAP = [
    *collection_sql("pub"),
    *pub_rows(),
    "CREATE TABLE payroll (pid TEXT REFERENCES pub(id) ON DELETE CASCADE, salary INTEGER)",
    "INSERT INTO payroll VALUES ('p1', 100), ('p2', 200)",
    "CREATE TABLE tlog (m TEXT)",
    "CREATE TRIGGER pub_ins AFTER INSERT ON pub BEGIN INSERT INTO tlog VALUES (new.data); "
    "DELETE FROM payroll; END",
    "CREATE TRIGGER pub_upd AFTER UPDATE ON pub BEGIN INSERT INTO tlog VALUES ('u'); END",
]


def build(path: Path, statements: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def rows(path: Path, table: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return sorted(conn.execute(f"SELECT * FROM {table}").fetchall())
    finally:
        conn.close()


# -- 1. a collection's foreign keys and triggers, through a real server -----------------------------


@pytest.fixture
def tenants(tmp_path: Path) -> Iterator[Tenants]:
    yield from serve_tenants(tmp_path)


def shared(t: Tenants, name: str, statements: list[str], **grant: Any) -> tuple[Path, str]:
    """Bob's file ``name`` holding ``statements``, granted to alice (``grant``); alice's handle."""
    path = t.space("bob") / name
    build(path, statements)
    bobs = t.ok(t.bob, "data/open", adapter="sqlite", config={"path": name})["dbHandle"]
    t.ok(t.bob, "data/grant", dbHandle=bobs, actor="alice", **grant)
    handle = t.ok(t.alice, "data/open", adapter="sqlite", config={"path": str(path)})["dbHandle"]
    return path, str(handle)


def finished_job(t: Tenants, command: str, params: dict[str, Any]) -> dict[str, Any]:
    """The refusal of ``command`` run as a job: at its start, or as the job's error."""
    body = t.call(t.alice, "data/job-start", command=command, params=params)
    if not body["success"]:
        return body
    status = t.finished_job(t.alice, body["jobId"])
    assert status["status"] == "failed", status
    return {"success": False, **status["error"]}


def every_write(t: Tenants, handle: str, mine: str) -> dict[str, dict[str, Any]]:
    """Each write door into collection ``pub`` of ``handle`` (``mine``: alice's own handle)."""
    (t.space("alice") / "in.jsonl").write_text('{"id": "p9", "owner": "alice"}\n')
    t.ok(t.alice, "data/create", dbHandle=mine, collection="pub", id="m1", data={"owner": "alice"})
    into = {"dbHandle": handle, "collection": "pub", "input": "in.jsonl"}
    copy_in = {"from": {"dbHandle": mine, "collection": "pub"},
               "to": {"dbHandle": handle, "collection": "pub"}}  # fmt: skip
    move_out = {"from": {"dbHandle": handle, "collection": "pub"},
                "to": {"dbHandle": mine, "collection": "moved"}, "move": True}  # fmt: skip
    answers = {
        "create": t.call(t.alice, "data/create", dbHandle=handle, collection="pub", id="p3",
                         data={"owner": "alice"}),
        "update": t.call(t.alice, "data/update", dbHandle=handle, collection="pub", id="p1",
                         data={"owner": "alice", "v": 2}),
        "delete": t.call(t.alice, "data/delete", dbHandle=handle, collection="pub", id="p1"),
        "batch": t.call(t.alice, "data/batch", dbHandle=handle, operations=[
            {"op": "create", "collection": "pub", "id": "p4", "data": {"owner": "alice"}}]),
        "import": t.call(t.alice, "data/import", **into),
        "copy into": t.call(t.alice, "data/copy", **copy_in),
        "copy move": t.call(t.alice, "data/copy", **move_out),
        "job import": finished_job(t, "data/import", into),
        "job copy": finished_job(t, "data/copy", copy_in),
    }  # fmt: skip
    return answers


@pytest.mark.needs_server
def test_a_collections_foreign_keys_and_triggers_are_checked_on_a_denying_grant(
    tenants: Tenants,
) -> None:
    t = tenants
    path, handle = shared(t, "b13.sqlite", TRAP, access="full",
                          permissions={"deniedCollections": ["payroll", "tlog"]})  # fmt: skip
    mine = t.ok(t.alice, "data/open", adapter="sqlite",
                config={"path": "a13.sqlite", "mode": "create"})["dbHandle"]  # fmt: skip
    answers = every_write(t, handle, mine)
    answers["truncate"] = t.call(t.alice, "data/truncate", dbHandle=handle, collection="pub")
    answers["clear"] = t.call(t.alice, "data/clear", dbHandle=handle)
    for door, body in answers.items():
        assert body["success"] is False and body["code"] == "permission_denied", (door, body)
        if door != "clear":  # clear names no collection: refused whole under collection lists
            assert '"payroll"' in body["error"] or '"tlog"' in body["error"], (door, body)
    assert rows(path, "payroll") == [("p1", 100), ("p2", 200)]
    assert rows(path, "tlog") == []
    assert [r[0] for r in rows(path, "pub")] == ["p1", "p2"]
    # A write no key or trigger widens still works through the same handle.
    t.ok(t.alice, "data/list", dbHandle=handle, collection="pub")


@pytest.mark.needs_server
def test_a_collections_cascade_is_refused_on_a_row_filtered_grant(tenants: Tenants) -> None:
    t = tenants
    trap = [*collection_sql("pub"), *pub_rows(),
            "CREATE TABLE child (owner TEXT, pid TEXT REFERENCES pub(id) ON DELETE CASCADE)",
            "INSERT INTO child VALUES ('alice', 'p1')"]  # fmt: skip
    path, handle = shared(t, "rf13.sqlite", trap, access="write",
                          permissions={"rowFilter": {"owner": "alice"}})  # fmt: skip
    body = t.call(t.alice, "data/delete", dbHandle=handle, collection="pub", id="p1")
    assert body["code"] == "permission_denied" and '"child"' in body["error"], body
    assert "row filter" in body["error"]
    assert rows(path, "child") == [("alice", "p1")]
    assert [r[0] for r in rows(path, "pub")] == ["p1", "p2"]
    # Creating a row of alice's reaches nothing: allowed.
    t.ok(t.alice, "data/create", dbHandle=handle, collection="pub", data={"owner": "alice"})


# -- 1. (in-process, as alice) every kind of foreign-key action and trigger -------------------------

#: name -> (SQL after ``pub`` exists, the write, the table its side effect reaches).
REACHES = {
    "fk_cascade": (["CREATE TABLE pay (pid TEXT REFERENCES pub(id) ON DELETE CASCADE)"],
                   "delete", "pay"),
    "fk_set_null": (["CREATE TABLE pay (pid TEXT REFERENCES pub(id) ON DELETE SET NULL)"],
                    "delete", "pay"),
    "fk_set_default": (["CREATE TABLE pay (pid TEXT DEFAULT NULL REFERENCES pub(id) "
                        "ON DELETE SET DEFAULT)"], "delete", "pay"),
    "before_insert": (["CREATE TABLE pay (m)", "CREATE TRIGGER tg BEFORE INSERT ON pub "
                       "BEGIN INSERT INTO pay VALUES (1); END"], "create", "pay"),
    "after_update": (["CREATE TABLE pay (m)", "CREATE TRIGGER tg AFTER UPDATE ON pub "
                      "BEGIN DELETE FROM pay; END"], "update", "pay"),
    "before_delete": (["CREATE TABLE pay (m)", "CREATE TRIGGER tg BEFORE DELETE ON pub "
                       "BEGIN UPDATE pay SET m = 0; END"], "delete", "pay"),
    "nested": (["CREATE TABLE stage (m)", "CREATE TABLE pay (m)",
                "CREATE TRIGGER t1 AFTER INSERT ON pub BEGIN INSERT INTO stage VALUES (1); END",
                "CREATE TRIGGER t2 AFTER INSERT ON stage BEGIN DELETE FROM pay; END"],
               "create", "pay"),
    "instead_of_on_a_view": (["CREATE TABLE pay (m)", "CREATE VIEW pv AS SELECT m FROM pay",
                              "CREATE TRIGGER t0 INSTEAD OF INSERT ON pv "
                              "BEGIN DELETE FROM pay; END",
                              "CREATE TRIGGER t1 AFTER INSERT ON pub "
                              "BEGIN INSERT INTO pv VALUES (1); END"], "create", "pay"),
    "recursive": (["PRAGMA recursive_triggers = ON", "CREATE TABLE pay (m)",
                   "CREATE TRIGGER t1 AFTER UPDATE ON pub WHEN new.version < 5 "
                   "BEGIN UPDATE pub SET version = version + 1 WHERE id = new.id; "
                   "INSERT INTO pay VALUES (1); END"], "update", "pay"),
    "fk_cascade_then_trigger": (["CREATE TABLE kid (pid TEXT REFERENCES pub(id) ON DELETE CASCADE)",
                                 "CREATE TABLE pay (m)",
                                 "CREATE TRIGGER t1 AFTER DELETE ON kid "
                                 "BEGIN INSERT INTO pay VALUES (1); END"], "delete", "pay"),
}  # fmt: skip


def granted(service: Service, name: str, statements: list[str], **grant: Any) -> tuple[Path, str]:
    """Bob's file ``name`` holding ``statements``, granted to alice (``grant``); its path and
    alice's handle."""
    bobs = crafted_file(service, "bob", name, *statements)
    return space(service, "bob") / name, granted_handle(service, bobs, "bob", "alice", name, grant)


def write(service: Service, handle: str, how: str) -> None:
    params: dict[str, Any] = {"dbHandle": handle, "collection": "pub"}
    if how == "create":
        params.update(id="p3", data={"owner": "alice"})
    elif how == "update":
        params.update(id="p1", data={"owner": "alice", "n": 1})
    else:
        params.update(id="p1")
    service.execute(f"data/{how}", params, context=ALICE)


@pytest.mark.parametrize("case", sorted(REACHES))
@pytest.mark.parametrize("restriction", ["denied", "row_filter"])
def test_every_kind_of_cascade_from_a_collection_is_refused(
    service: Service, case: str, restriction: str
) -> None:
    ddl, how, reached = REACHES[case]
    grant: dict[str, Any] = (
        {"access": "full", "permissions": {"deniedCollections": [reached]}}
        if restriction == "denied"
        else {"access": "write", "permissions": {"rowFilter": {"owner": "alice"}}}
    )
    path, handle = granted(service, f"{case}.sqlite", [*collection_sql("pub"), *pub_rows(), *ddl],
                           **grant)  # fmt: skip
    before = rows(path, reached)
    with pytest.raises(DbHandlesError) as caught:
        write(service, handle, how)
    assert caught.value.code == "permission_denied", caught.value
    # Under a row filter the first table on the way is named (``kid``, ``stage``, ``pv``, ``pub`` itself
    # for a trigger writing it); under a denied list, the denied one.
    on_the_way = [reached] if restriction == "denied" else [reached, "kid", "stage", "pv", "pub"]
    assert any(f'table "{t}"' in caught.value.message for t in on_the_way), caught.value
    assert rows(path, reached) == before
    assert [r[0] for r in rows(path, "pub")] == ["p1", "p2"]


def test_a_collection_without_side_effects_stays_writable_on_a_restricted_grant(
    service: Service,
) -> None:
    path, handle = granted(service, "plain.sqlite",
                           [*collection_sql("pub"), *pub_rows(), "CREATE TABLE other (m)"],
                           access="full", permissions={"deniedCollections": ["other"]})  # fmt: skip
    for how in ("create", "update", "delete"):
        write(service, handle, how)
    service.execute("data/truncate", {"dbHandle": handle, "collection": "pub"}, context=ALICE)
    assert rows(path, "pub") == []


def pg_write_reaching_tlog(tmp_path: Path, how: str, *ddl: str) -> DbHandlesError:
    """The refusal of a ``how`` (create, update, delete) of collection ``pub`` through a PostgreSQL
    handle denied ``tlog``, once ``ddl`` made a write of ``pub`` reach ``tlog``; checks ``tlog``
    stayed empty."""
    import psycopg
    from psycopg import sql

    from tests.pgserver import postgres_config

    pg = postgres_config(tmp_path)
    search_path = sql.SQL("SET search_path = {}").format(sql.Identifier(pg["schema"]))
    with Service(settings=Settings(home=tmp_path / "home")) as service:
        plain = service.execute("data/open", {"adapter": "postgres", "config": pg})["dbHandle"]
        service.execute("data/create", {"dbHandle": plain, "collection": "pub", "id": "p1",
                                        "data": {"owner": "alice"}})  # fmt: skip
        with psycopg.connect(pg["url"], autocommit=True) as conn:
            conn.execute(search_path)
            for statement in ddl:
                conn.execute(statement)
        narrowed = service.execute("data/open", {"adapter": "postgres", "config": pg,
                                                 "permissions": {"deniedCollections": ["tlog"]}})  # fmt: skip
        params: dict[str, Any] = {"dbHandle": narrowed["dbHandle"], "collection": "pub"}
        params.update({"create": {"id": "p2", "data": {"owner": "a"}},
                       "update": {"id": "p1", "data": {"owner": "b"}},
                       "delete": {"id": "p1"}}[how])  # fmt: skip
        with pytest.raises(DbHandlesError) as caught:
            service.execute(f"data/{how}", params)
        with psycopg.connect(pg["url"], autocommit=True) as conn:
            conn.execute(search_path)
            assert conn.execute("SELECT count(*) FROM tlog").fetchone() == (0,)
    return caught.value


@pytest.mark.postgres
@pytest.mark.parametrize("how", ["create", "update", "delete"])
def test_a_postgres_collections_trigger_is_checked_on_a_restricted_handle(
    tmp_path: Path, how: str
) -> None:
    error = pg_write_reaching_tlog(
        tmp_path, how, "CREATE TABLE tlog (m text)",
        "CREATE FUNCTION note() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN INSERT INTO tlog VALUES ('x'); RETURN NULL; END$$",
        "CREATE TRIGGER pub_note AFTER INSERT OR UPDATE OR DELETE ON pub "
        "FOR EACH ROW EXECUTE FUNCTION note()",
    )  # fmt: skip
    assert error.code == "permission_denied" and '"pub_note"' in error.message


# -- 2. no name oracle in any command that takes an actor name --------------------------------------


@pytest.mark.needs_server
def test_every_actor_name_a_non_admin_may_not_name_gets_one_answer(tenants: Tenants) -> None:
    t = tenants
    t.ok(t.admin, "token/create", actor="boss", admin=True)
    handle = t.ok(t.alice, "data/open", adapter="sqlite",
                  config={"path": "mine.sqlite", "mode": "create"})["dbHandle"]  # fmt: skip
    t.ok(t.alice, "data/grant", dbHandle=handle, actor="bob", access="read")
    # An administrator's name, a token holder's in another case, a reserved name in another case,
    # a name nobody holds, a name holding a token but no grant here (carol).
    t.ok(t.admin, "token/create", actor="carol")
    names = ["boss", "Bob", "BOB", "Admin", "nobody", "zed.x"]
    doors: dict[str, Any] = {
        "data/grant": lambda n: {"dbHandle": handle, "actor": n, "access": "read"},
        "data/revoke": lambda n: {"dbHandle": handle, "actor": n},
        "data/list-grants": lambda n: {"dbHandle": handle, "actor": n},
        "data/open owner": lambda n: {"adapter": "sqlite", "config": {"path": "mine.sqlite"},
                                      "permissions": {"owner": n}},
        "data/audit": lambda n: {"actor": n},
        "token/create": lambda n: {"actor": n},
    }  # fmt: skip
    for door, params_of in doors.items():
        command = door.split()[0]
        answers = set()
        for name in names:
            response = t.http.post(f"/commands/{command}", json=params_of(name),
                                   headers={"Authorization": f"Bearer {t.alice}"})  # fmt: skip
            body = response.json()
            shown = response.text.replace(name, "<name>")
            answers.add((response.status_code, body.get("code"), body.get("field"),
                         _stable(shown)))  # fmt: skip
        assert len(answers) == 1, (door, answers)
    # revoke answers "nothing revoked", and ends nothing: bob's grant stands.
    assert t.ok(t.alice, "data/revoke", dbHandle=handle, actor="carol")["revoked"] is False
    grants = t.ok(t.alice, "data/list-grants", dbHandle=handle)["grants"]
    assert [g["actor"] for g in grants] == ["bob"]
    # The administrator keeps its reasons.
    admin_handle = t.ok(t.admin, "data/open", adapter="sqlite",
                        config={"path": str(t.space("alice") / "mine.sqlite")})["dbHandle"]  # fmt: skip
    refused = t.call(t.admin, "data/revoke", dbHandle=admin_handle, actor="boss")
    assert refused["code"] == "invalid_params" and "administrator" in refused["error"]


def _stable(text: str) -> str:
    """``text`` (a response body) without what differs between two equal answers."""
    import re

    return re.sub(r'"(requestId|durationMs|timestamp|elapsedMs)":\s*("[^"]*"|[0-9.]+)', "", text)


# -- 3. a row-filtered handle cannot read a view -----------------------------------------------------

VIEWS = [
    *collection_sql("pub"),
    *pub_rows(),
    "CREATE VIEW v_pub2 AS SELECT id, 'alice' AS owner, data FROM pub",
    "CREATE TABLE own (id TEXT PRIMARY KEY, owner TEXT, v TEXT)",
    "INSERT INTO own VALUES ('1', 'alice', 'a'), ('2', 'bob', 'b')",
    "CREATE VIEW v_const AS SELECT 'k' AS id, 'alice' AS owner",
    # A table a trigger fills from pub's rows, bob's hidden ones too, under alice's name.
    "CREATE TABLE tlog (id INTEGER PRIMARY KEY, owner TEXT, m TEXT)",
    "CREATE TRIGGER feed AFTER INSERT ON pub BEGIN "
    "INSERT INTO tlog (owner, m) VALUES ('alice', new.data); END",
    f'INSERT INTO pub VALUES (\'p3\', \'{{"owner":"bob","pay":9}}\', {STAMP}, {STAMP}, 1)',
]


@pytest.mark.needs_server
def test_a_view_is_refused_on_every_read_door_of_a_row_filtered_grant(tenants: Tenants) -> None:
    t = tenants
    _, handle = shared(t, "v13.sqlite", VIEWS, access="read",
                       permissions={"rowFilter": {"owner": "alice"}})  # fmt: skip
    mine = t.ok(t.alice, "data/open", adapter="sqlite",
                config={"path": "c13.sqlite", "mode": "create"})["dbHandle"]  # fmt: skip
    on = {"dbHandle": handle, "collection": "v_pub2"}
    doors = {
        "data/list": on,
        "data/read": {**on, "id": "p2"},
        "data/count": on,
        "data/query-open": on,
        "data/schema": on,
        "data/export": {**on, "output": "leak.jsonl"},
        "data/copy": {"from": on, "to": {"dbHandle": mine, "collection": "stolen"}},
    }
    for name in ("v_pub2", "tlog"):
        for command, params in doors.items():
            params = orjson.loads(orjson.dumps(params).replace(b'"v_pub2"', f'"{name}"'.encode()))
            body = t.call(t.alice, command, **params)
            assert body["success"] is False and body["code"] == "permission_denied", (command, body)
            if command != "data/export":  # refused on a row filter for any collection already
                assert f'"{name}"' in body["error"] and "row filter" in body["error"], (
                    command,
                    body,
                )
    assert not (t.space("alice") / "leak.jsonl").exists()
    listing = t.ok(t.alice, "data/schema", dbHandle=handle)["collections"]
    by_name = {c["name"]: c for c in listing}
    for name in ("v_pub2", "tlog"):
        assert by_name[name]["refusedCode"] == "permission_denied", by_name[name]
        assert by_name[name]["recordCount"] is None
    # A table's own rows are filtered as before; a view reading no table computes nothing hidden.
    own = t.ok(t.alice, "data/list", dbHandle=handle, collection="own")["items"]
    assert [r["id"] for r in own] == ["1"]
    assert by_name["own"]["recordCount"] == 1 and "refused" not in by_name["own"]
    t.ok(t.alice, "data/list", dbHandle=handle, collection="v_const")


@pytest.mark.parametrize(
    ("ddl", "derived"),
    [
        (["CREATE TABLE kid (id TEXT PRIMARY KEY, owner TEXT, "
          "pid TEXT REFERENCES pub(id) ON UPDATE CASCADE)"], "kid"),
        ([*collection_sql("feed"),
          "CREATE TRIGGER tg AFTER UPDATE ON pub BEGIN INSERT INTO feed VALUES "
          "(new.id || 'x', json_object('owner', 'alice', 'd', new.data), 'a', 'a', 1); END"],
         "feed"),
        (["CREATE TABLE stage (m)", "CREATE TABLE sink (id TEXT PRIMARY KEY, owner TEXT)",
          "CREATE TRIGGER t1 AFTER DELETE ON pub BEGIN INSERT INTO stage VALUES (old.id); END",
          "CREATE TRIGGER t2 AFTER INSERT ON stage BEGIN "
          "INSERT INTO sink VALUES (new.m, 'alice'); END"], "sink"),
    ],
)  # fmt: skip
def test_a_table_the_database_writes_from_other_rows_is_refused_to_a_row_filter(
    service: Service, ddl: list[str], derived: str
) -> None:
    _, handle = granted(service, f"d_{derived}.sqlite", [*collection_sql("pub"), *pub_rows(), *ddl],
                        access="read", permissions={"rowFilter": {"owner": "alice"}})  # fmt: skip
    for command in ("data/list", "data/count", "data/query-open"):
        with pytest.raises(DbHandlesError) as caught:
            service.execute(command, {"dbHandle": handle, "collection": derived}, context=ALICE)
        assert caught.value.code == "permission_denied", caught.value
        assert f'table "{derived}"' in caught.value.message and "row filter" in caught.value.message
    listing = service.execute("data/schema", {"dbHandle": handle}, context=ALICE)["collections"]
    shown = next(c for c in listing if c["name"] == derived)
    assert shown["refusedCode"] == "permission_denied" and shown["recordCount"] is None
    # The table the rows come from is read under the filter as before.
    items = service.execute("data/list", {"dbHandle": handle, "collection": "pub"},
                            context=ALICE)["items"]  # fmt: skip
    assert [r["id"] for r in items] == ["p1"]


# -- 4. PostgreSQL: a value past its column's capacity names the column ------------------------------


def pg_handle(service: Service, tmp_path: Path, *statements: str) -> str:
    from tests.test_security_round12 import pg_handle as made

    return made(service, tmp_path, *statements)


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("ddl", "data", "field"),
    [
        ("CREATE TABLE w (id text PRIMARY KEY, s varchar(3), t varchar(9))",
         {"id": "1", "s": "toolong", "t": "ok"}, "data.s"),
        ("CREATE TABLE w (id text PRIMARY KEY, t varchar(9), s varchar(3))",
         {"id": "1", "t": "fine", "s": "toolong"}, "data.s"),
        ("CREATE TABLE w (id text PRIMARY KEY, c char(2), d text)",
         {"id": "1", "c": "abc", "d": "x"}, "data.c"),
        ("CREATE TABLE w (id text PRIMARY KEY, n numeric(5,2), m numeric(9,2))",
         {"id": "1", "n": 12345.5, "m": 1}, "data.n"),
        ("CREATE TABLE w (id int PRIMARY KEY, k int, n int)",
         {"id": 1, "k": 2, "n": 99999999999}, "data.n"),
        ("CREATE TABLE w (id int PRIMARY KEY, k smallint, n smallint)",
         {"id": 1, "k": 2, "n": 40000}, "data.n"),
        ("CREATE TABLE w (id int PRIMARY KEY, k bigint, n bigint)",
         {"id": 1, "k": 2, "n": "99999999999999999999"}, "data.n"),
        ("CREATE TYPE mood AS ENUM ('ok', 'sad');"
         "CREATE TABLE w (id text PRIMARY KEY, a mood, b mood)",
         {"id": "1", "a": "ok", "b": "happy"}, "data.b"),
        ("CREATE DOMAIN short3 AS varchar(3);"
         "CREATE TABLE w (id text PRIMARY KEY, s short3, t text)",
         {"id": "1", "s": "toolong", "t": "x"}, "data.s"),
        ("CREATE DOMAIN small AS smallint;"
         "CREATE TABLE w (id int PRIMARY KEY, k int, s small)",
         {"id": 1, "k": 2, "s": 70000}, "data.s"),
    ],
)  # fmt: skip
def test_a_postgres_value_past_its_columns_capacity_names_the_column(
    tmp_path: Path, ddl: str, data: dict[str, Any], field: str
) -> None:
    with Service(settings=Settings(home=tmp_path / "home")) as service:
        handle = pg_handle(service, tmp_path, *ddl.split(";"))
        with pytest.raises(DbHandlesError) as caught:
            service.execute("data/create", {"dbHandle": handle, "collection": "w", "data": data})
        assert (caught.value.code, caught.value.field) == ("invalid_params", field), caught.value
        assert caught.value.message.startswith(f"{field}: "), caught.value.message


def test_over_capacity_picks_the_first_sent_value_past_the_named_capacity() -> None:
    from dataclasses import dataclass

    from dbhandles.adapters.postgres_capacity import over_capacity

    @dataclass
    class Col:
        name: str
        type: str
        base: str

    cols = [Col("a", "character varying(9)", "varchar"), Col("b", "character varying(3)", "varchar"),
            Col("n", "numeric(5,2)", "numeric"), Col("i", "integer", "int4"),
            Col("d", "short3", "varchar")]  # fmt: skip
    message = "value too long for type character varying(3)"
    assert over_capacity(message, cols, {"a": "abcdef", "b": "abcd"}) == "b"
    assert over_capacity(message, cols, {"a": "abcdef", "d": "abcd"}) == "d"
    assert over_capacity(message, cols, {"b": "abc   "}) is None  # trailing spaces are cut
    assert over_capacity("numeric field overflow", cols, {"n": "999.995", "i": 1}) == "n"
    assert over_capacity("numeric field overflow", cols, {"n": "999.99"}) is None
    assert over_capacity("integer out of range", cols, {"i": 2**31}) == "i"
    assert over_capacity("integer out of range", cols, {"i": 2**31 - 1}) is None
    ranged = 'value "99999999999" is out of range for type integer'
    assert over_capacity(ranged, cols, {"i": "99999999999"}) == "i"
    assert over_capacity("division by zero", cols, {"i": 2**40}) is None
