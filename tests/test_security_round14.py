"""Issue 12, round fourteen: an outside tester's findings at the tenant boundary.

A write that may resolve a conflict by REPLACE deletes the row it conflicts with, so it is checked as
a delete of its table too: its foreign-key actions and delete triggers (§5 "Cascades on restricted
handles"), and under a row filter the rows the filter hides. See docs/security.md.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import Service
from dbhandles.errors import DbHandlesError, error_class_for_code
from tests.security_helpers import ALICE
from tests.test_security_round13 import build, granted, pg_write_reaching_tlog, rows, shared
from tests.test_security_tenants import Tenants, serve_tenants

pytestmark = pytest.mark.two_tenants

# -- 1. REPLACE conflict resolution is a delete -----------------------------------------------------

#: Bob's rows of ``pr`` (alice's and his) and ``cr``, deleted with their ``pr`` row.
ROWS = [
    "INSERT INTO pr VALUES ('a1', 'alice', 'ann'), ('b1', 'bob', 'taken')",
    "CREATE TABLE cr (pid TEXT REFERENCES pr(id) ON DELETE CASCADE, salary INTEGER)",
    "INSERT INTO cr VALUES ('a1', 1), ('b1', 2)",
]
#: A table a trigger on ``pr`` writes, whose rows ``cl`` follows by ``ON DELETE CASCADE``.
STAGE = [
    "CREATE TABLE st (k TEXT PRIMARY KEY, owner TEXT)",
    "INSERT INTO st VALUES ('k', 'bob')",
    "CREATE TABLE cl (k TEXT REFERENCES st(k) ON DELETE CASCADE ON UPDATE CASCADE, m TEXT)",
    "INSERT INTO cl VALUES ('k', 'bob''s')",
]


def _on_pr(body: str) -> list[str]:
    """Triggers on ``pr`` running ``body`` after each insert and update."""
    return [f"CREATE TRIGGER pr_{event} AFTER {event} ON pr BEGIN {body}; END"
            for event in ("INSERT", "UPDATE")]  # fmt: skip


PLAIN = "CREATE TABLE pr (id TEXT PRIMARY KEY, owner TEXT, name TEXT)"
#: kind -> (bob's SQL, the denied table a REPLACE's delete reaches).
KINDS: dict[str, tuple[list[str], str]] = {
    "column_unique": (
        ["CREATE TABLE pr (id TEXT PRIMARY KEY, owner TEXT, name TEXT UNIQUE ON CONFLICT REPLACE)",
         *ROWS], "cr"),
    "primary_key": (
        ["CREATE TABLE pr (id TEXT PRIMARY KEY ON CONFLICT REPLACE, owner TEXT, "
         "name /* ON CONFLICT ABORT */ TEXT)", *ROWS], "cr"),
    "insert_or_replace_in_trigger": (
        [PLAIN, *ROWS, *STAGE,
         *_on_pr("INSERT OR REPLACE INTO st VALUES ('k', new.owner)")], "cl"),
    "replace_into_in_trigger": (
        [PLAIN, *ROWS, *STAGE, *_on_pr("REPLACE INTO st VALUES ('k', new.owner)")], "cl"),
    "upsert_in_trigger": (
        [PLAIN, *ROWS, *STAGE,
         *_on_pr("INSERT INTO st VALUES ('k', new.owner) ON CONFLICT (k) DO UPDATE SET "
                 "k = 'k2'")], "cl"),
}  # fmt: skip


def _job(service: Service, command: str, params: dict[str, Any]) -> None:
    """Run ``command`` as alice's job; raise its error as the job's."""
    job = service.execute("data/job-start", {"command": command, "params": params}, context=ALICE)
    for _ in range(600):
        status = service.execute("data/job-status", {"jobId": job["jobId"]}, context=ALICE)
        if status["status"] not in ("queued", "running"):
            assert status["status"] == "failed", status
            raise error_class_for_code(status["error"]["code"])(status["error"]["error"])
        time.sleep(0.05)
    raise AssertionError(f"the job {command} did not finish")


def _doors(service: Service, handle: str, mine: str, folder: Path) -> dict[str, Any]:
    """Each write door into ``pr`` of ``handle`` with a row whose ``name`` bob's row holds."""
    (folder / "in.jsonl").write_text('{"id": "a9", "owner": "alice", "name": "taken"}\n')
    service.execute("data/create", {"dbHandle": mine, "collection": "src", "id": "a8",
                                    "data": {"owner": "alice", "name": "taken"}}, context=ALICE)  # fmt: skip
    row = {"owner": "alice", "name": "taken"}
    into = {"dbHandle": handle, "collection": "pr", "input": str(folder / "in.jsonl")}
    copy_in = {"from": {"dbHandle": mine, "collection": "src"},
               "to": {"dbHandle": handle, "collection": "pr"}}  # fmt: skip

    def run(name: str, params: dict[str, Any]) -> Any:
        return lambda: service.execute(name, params, context=ALICE)

    return {
        "create": run("data/create", {"dbHandle": handle, "collection": "pr", "id": "a2",
                                      "data": row}),
        "update": run("data/update", {"dbHandle": handle, "collection": "pr", "id": "a1",
                                      "data": row}),
        "batch": run("data/batch", {"dbHandle": handle, "operations": [
            {"op": "create", "collection": "pr", "id": "a3", "data": row}]}),
        "import": run("data/import", into),
        "copy": run("data/copy", copy_in),
        "job import": lambda: _job(service, "data/import", into),
        "job copy": lambda: _job(service, "data/copy", copy_in),
    }  # fmt: skip


GRANTS: dict[str, dict[str, Any]] = {
    "deniedCollections": {"access": "full", "permissions": {"deniedCollections": ["cr", "cl"]}},
    "allowedCollections": {"access": "full",
                           "permissions": {"allowedCollections": ["pr", "st"]}},
    "rowFilter": {"access": "write", "permissions": {"rowFilter": {"owner": "alice"}}},
}  # fmt: skip


@pytest.mark.parametrize("restriction", sorted(GRANTS))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_write_that_may_replace_is_checked_as_a_delete(
    service: Service, tmp_path: Path, kind: str, restriction: str
) -> None:
    ddl, denied = KINDS[kind]
    path, handle = granted(service, f"{kind}.sqlite", ddl, **GRANTS[restriction])
    mine = service.execute("data/open", {"adapter": "sqlite", "config": {
        "path": "mine.sqlite", "mode": "create"}}, context=ALICE)["dbHandle"]  # fmt: skip
    folder = service.settings.space_root() / "alice"
    before = {t: rows(path, t) for t in ("pr", "cr", *(("st", "cl") if denied == "cl" else ()))}
    for door, write in _doors(service, handle, mine, folder).items():
        with pytest.raises(DbHandlesError) as caught:
            write()
        error = caught.value
        assert error.code == "permission_denied", (door, error)
        if restriction == "rowFilter":
            # The first table on the way: pr itself (its constraint) or st (the trigger's); an
            # import and a copy into a row-filtered handle are refused whole.
            named = 'table "pr"' in error.message or 'table "st"' in error.message
            assert named or "row filter" in error.message, (door, error)
        else:
            assert f'table "{denied}"' in error.message, (door, error)
        if denied == "cr" and restriction != "rowFilter":
            assert "ON CONFLICT REPLACE" in error.message, (door, error)
        assert {t: rows(path, t) for t in before} == before, door


def test_a_row_filter_refuses_a_write_whose_replace_could_remove_a_hidden_row(
    service: Service,
) -> None:
    path, handle = granted(service, "rf.sqlite", KINDS["column_unique"][0], **GRANTS["rowFilter"])
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/create", {"dbHandle": handle, "collection": "pr", "id": "a2",
                                        "data": {"owner": "alice", "name": "fresh"}},
                        context=ALICE)  # fmt: skip
    error = caught.value
    assert error.code == "permission_denied"
    assert 'table "pr"' in error.message and "name TEXT UNIQUE ON CONFLICT REPLACE" in error.message
    assert rows(path, "pr") == [("a1", "alice", "ann"), ("b1", "bob", "taken")]


def test_a_conflict_clause_that_deletes_nothing_leaves_the_table_writable(
    service: Service,
) -> None:
    # NOT NULL ON CONFLICT REPLACE writes the default; a REPLACE in a literal, a comment or a
    # quoted name, or the replace() function, is no conflict clause.
    ddl = [
        "CREATE TABLE pr (id TEXT PRIMARY KEY, owner TEXT NOT NULL ON CONFLICT REPLACE "
        "DEFAULT 'x', name TEXT DEFAULT 'ON CONFLICT REPLACE' -- ON CONFLICT REPLACE\n"
        ', CONSTRAINT "on conflict replace" CHECK (name <> \'x\'))',
        *ROWS, "CREATE TABLE tl (m TEXT)",
        "CREATE TRIGGER pr_i AFTER INSERT ON pr BEGIN INSERT INTO tl VALUES "
        "(replace(new.name, 'a', 'b')); END",
    ]  # fmt: skip
    path, handle = granted(service, "calm.sqlite", ddl, **GRANTS["deniedCollections"])
    service.execute("data/create", {"dbHandle": handle, "collection": "pr", "id": "a2",
                                    "data": {"owner": "alice", "name": "taken"}}, context=ALICE)  # fmt: skip
    assert rows(path, "cr") == [("a1", 1), ("b1", 2)]
    assert rows(path, "tl") == [("tbken",)]


@pytest.fixture
def tenants(tmp_path: Path) -> Iterator[Tenants]:
    yield from serve_tenants(tmp_path)


@pytest.mark.needs_server
def test_the_testers_replace_deletes_are_refused_through_a_server(tenants: Tenants) -> None:
    t = tenants
    ddl = KINDS["column_unique"][0]
    path, handle = shared(t, "pr.sqlite", ddl, access="full",
                          permissions={"deniedCollections": ["cr"]})  # fmt: skip
    body = t.call(t.alice, "data/create", dbHandle=handle, collection="pr", id="a2",
                  data={"owner": "alice", "name": "taken"})  # fmt: skip
    assert body["code"] == "permission_denied" and '"cr"' in body["error"], body
    filtered_path, filtered = shared(t, "rf.sqlite", ddl, access="write",
                                     permissions={"rowFilter": {"owner": "alice"}})  # fmt: skip
    body = t.call(t.alice, "data/create", dbHandle=filtered, collection="pr", id="a2",
                  data={"owner": "alice", "name": "taken"})  # fmt: skip
    assert body["code"] == "permission_denied" and '"pr"' in body["error"], body
    for file in (path, filtered_path):
        assert rows(file, "pr") == [("a1", "alice", "ann"), ("b1", "bob", "taken")]
        assert rows(file, "cr") == [("a1", 1), ("b1", 2)]


@pytest.mark.postgres
@pytest.mark.parametrize("how", ["create", "update", "delete"])
def test_a_postgres_rule_on_a_write_is_checked_on_a_restricted_handle(
    tmp_path: Path, how: str
) -> None:
    # A rule rewrites a write into other statements, as opaque to the check as a trigger's
    # function (and, like one, it may INSERT ... ON CONFLICT: PostgreSQL's only REPLACE).
    rules = [f"CREATE RULE pub_{event.lower()} AS ON {event} TO pub DO ALSO "
             "INSERT INTO tlog VALUES ('x') ON CONFLICT (m) DO NOTHING"
             for event in ("INSERT", "UPDATE", "DELETE")]  # fmt: skip
    error = pg_write_reaching_tlog(tmp_path, how, "CREATE TABLE tlog (m text PRIMARY KEY)", *rules)
    assert error.code == "permission_denied", error
    assert f'"rule pub_{ {"create": "insert"}.get(how, how) }"' in error.message


# -- 2. a handle's name is resolved in the caller's names by every command --------------------------


@pytest.mark.needs_server
def test_every_command_resolves_an_alias_in_the_callers_names(
    tenants: Tenants, tmp_path: Path
) -> None:
    t = tenants
    admins = t.ok(t.admin, "data/open", adapter="sqlite", alias="training",
                  config={"path": str(tmp_path / "adm.sqlite"), "mode": "create"})["dbHandle"]  # fmt: skip
    t.ok(t.admin, "data/create", dbHandle="training", collection="c", id="a", data={"v": 1})
    bobs = t.ok(t.bob, "data/open", adapter="sqlite", alias="training",
                config={"path": "bt.sqlite", "mode": "create"})["dbHandle"]  # fmt: skip
    t.ok(t.bob, "data/create", dbHandle="training", collection="c", id="b", data={"v": 2})
    (t.space("bob") / "in.jsonl").write_text('{"id": "i1", "v": 3}\n')
    on = {"dbHandle": "training", "collection": "c"}
    doors: list[tuple[str, dict[str, Any]]] = [
        ("data/list", on), ("data/read", {**on, "id": "b"}), ("data/count", on),
        ("data/schema", {"dbHandle": "training"}),
        ("data/create", {**on, "id": "b2", "data": {"v": 4}}),
        ("data/update", {**on, "id": "b2", "data": {"v": 5}}),
        ("data/delete", {**on, "id": "b2"}),
        ("data/batch", {"dbHandle": "training", "operations": [
            {"op": "create", "collection": "c", "id": "b3", "data": {"v": 6}}]}),
        ("data/grant", {"dbHandle": "training", "actor": "alice", "access": "read"}),
        ("data/list-grants", {"dbHandle": "training"}),
        ("data/revoke", {"dbHandle": "training", "actor": "alice"}),
        ("data/export", {**on, "output": "out.jsonl"}),
        ("data/import", {**on, "input": "in.jsonl"}),
        ("data/copy", {"from": on, "to": {"dbHandle": "training", "collection": "c2"}}),
        ("data/truncate", {"dbHandle": "training", "collection": "c2"}),
        ("data/vacuum", {"dbHandle": "training"}),
    ]  # fmt: skip
    answers = {name: t.ok(t.bob, name, **params) for name, params in doors}
    cursor = t.ok(t.bob, "data/query-open", **on, pageSize=1)
    answers["data/query-next"] = t.ok(t.bob, "data/query-next", dbHandle="training",
                                      queryHandle=cursor["queryHandle"])  # fmt: skip
    answers["data/query-close"] = t.ok(t.bob, "data/query-close", dbHandle="training",
                                       queryHandle=cursor["queryHandle"])  # fmt: skip
    job = t.ok(t.bob, "data/job-start", command="data/export", params={**on, "output": "j.jsonl"})
    status = t.finished_job(t.bob, job["jobId"])
    assert status["status"] == "done", status
    assert admins not in str(status) and '"a"' not in (t.space("bob") / "j.jsonl").read_text()
    for name, body in answers.items():
        assert admins not in str(body), (name, body)
        if "dbHandle" in body:
            assert body["dbHandle"] == bobs, (name, body)
    assert answers["data/read"]["data"]["v"] == 2
    exported = (t.space("bob") / "out.jsonl").read_text().splitlines()
    assert sorted(orjson.loads(line)["id"] for line in exported) == ["b", "b3"]
    # Alice has no alias of that name: closing it is an unknown name, and shows no id.
    refused = t.call(t.alice, "data/close", dbHandle="training")
    assert refused["code"] == "handle_not_found" and admins not in str(refused), refused
    # Bob closes his own handle by his alias; the administrator's stays open and whole.
    closed = t.ok(t.bob, "data/close", dbHandle="training")
    assert closed["dbHandle"] == bobs
    assert t.ok(t.admin, "data/count", dbHandle="training", collection="c")["total"] == 1
    gone = t.call(t.bob, "data/close", dbHandle="training")
    assert gone["code"] == "handle_not_found" and admins not in str(gone), gone
    assert t.ok(t.admin, "data/read", dbHandle=admins, collection="c", id="a")["found"] is True


# -- 4. a reopen judges the schema as a fresh open does ----------------------------------------------


def _hashing(path: Path, how: str) -> None:
    """Make ``path``'s schema call dbhandles' sampling hash: ``replace`` the file out-of-band by
    one whose generated column calls it, or ``alter`` it in place to add one."""
    from dbhandles.adapters.sql_facets import HASH_FUNCTION

    target = path.with_name("new.sqlite") if how == "replace" else path
    conn = sqlite3.connect(target)
    conn.create_function(HASH_FUNCTION, 2, lambda a, b: 1, deterministic=True)
    if how == "replace":
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, x TEXT, "
                     f"y GENERATED ALWAYS AS ({HASH_FUNCTION}(x, x)))")  # fmt: skip
    else:
        conn.execute(f"ALTER TABLE t ADD COLUMN y GENERATED ALWAYS AS ({HASH_FUNCTION}(x, x))")
    conn.commit()
    conn.close()
    if how == "replace":
        os.replace(target, path)


@pytest.mark.needs_server
@pytest.mark.parametrize("how", ["replace", "alter"])
def test_a_reopen_of_a_file_whose_schema_became_untrusted_is_refused_at_open(
    tenants: Tenants, how: str
) -> None:
    t = tenants
    path = t.space("alice") / "f.sqlite"
    build(
        path, ["CREATE TABLE t (id INTEGER PRIMARY KEY, x TEXT)", "INSERT INTO t VALUES (1, 'a')"]
    )
    first = t.ok(t.alice, "data/open", adapter="sqlite", config={"path": "f.sqlite"})["dbHandle"]
    t.ok(t.alice, "data/list", dbHandle=first, collection="t")  # the connection is live
    _hashing(path, how)
    body = t.call(t.alice, "data/open", adapter="sqlite", config={"path": "f.sqlite"})
    assert body["code"] == "access_denied" and "dbh_sample_hash" in body["error"], body
    # The handle opened before is refused too, at its next command.
    again = t.call(t.alice, "data/list", dbHandle=first, collection="t")
    assert again["success"] is False and again["code"] == "access_denied", again
