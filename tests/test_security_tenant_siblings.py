"""Issue 12, the third round: siblings an outside tester found around the tenant boundary.

Each finding is a kind, tested as a non-admin actor (``alice``, an ordinary token) against a real
``jtag serve`` where a server decides it, and in-process (the same dispatcher, with the contexts a
server gives) where the test must act between two batches of a running job:

1. an id-preserving write (``data/copy``, also as a job; import; create with an id) into a
   row-filtered handle is refused before anything is read or written;
2. a long job (export, copy, import) re-checks access at every batch boundary and stops once access
   is gone, and a stopped export leaves no file;
3. a database file of any adapter read as an import input gets ``data/open``'s decision; a JSON
   database with other names (hard links) is refused like an SQLite one;
4. read roots may not reach the data root or the home through a link;
5. ``--format=table`` never prints control characters raw;
6. in one's own space: rejects and partial files never replace what a command did not write, paths
   are decided before anything is created, and created folders are private;
7. another actor's handle is indistinguishable from an unknown one; the default database's path is
   not shown; PostgreSQL opens name their target in the audit log; the dashboard is not frameable.

See docs/security.md, "Multi-tenant servers".
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest

from dbhandles import Context, Service, Settings
from dbhandles.cli.output import render_table
from dbhandles.commands.copy import CopyHooks
from dbhandles.errors import DbHandlesError
from dbhandles.importer.command import ExportHooks
from tests.servers import jtag_env, run_jtag
from tests.test_security_tenants import SECRET, Tenants, serve_tenants, start

ALICE = Context(actor="alice", session_id="s-alice", is_admin=False, trusted_local=False)
BOB = Context(actor="bob", session_id="s-bob", is_admin=False, trusted_local=False)


@pytest.fixture
def t(tmp_path: Path) -> Iterator[Tenants]:
    yield from serve_tenants(tmp_path)


@pytest.fixture
def with_read_root(tmp_path: Path) -> Iterator[tuple[Tenants, Path]]:
    """A server with a read root ``tmp_path/datasets`` and tokens for alice and bob."""
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    home = tmp_path / "home"
    with start(home, DBHANDLES_READ_ROOTS=str(datasets)) as server:
        http = httpx.Client(base_url=server.url, timeout=120)
        bearer = {"Authorization": f"Bearer {server.token}"}
        alice = http.post("/commands/token/create", json={"actor": "alice"}, headers=bearer)
        bob = http.post("/commands/token/create", json={"actor": "bob"}, headers=bearer)
        try:
            yield Tenants(server, home, http, server.token, alice.json()["token"],
                          bob.json()["token"]), datasets  # fmt: skip
        finally:
            http.close()


def refused_in_process(
    service: Service, name: str, params: dict[str, Any], context: Context, hooks: object
) -> DbHandlesError:
    """The error ``name`` stops with, run in-process with ``hooks`` (a job's observers)."""
    with pytest.raises(DbHandlesError) as caught:
        service.execute(name, params, context=context, hooks=hooks)
    return caught.value


# -- 1. id-preserving writes into a row-filtered handle ----------------------------------------------


def test_1_no_id_preserving_write_reaches_a_row_filtered_handle(t: Tenants) -> None:
    full = t.ok(t.alice, "data/open", adapter="sqlite",
                config={"path": "shared.sqlite", "mode": "create"})["dbHandle"]  # fmt: skip
    t.ok(t.alice, "data/create", dbHandle=full, collection="c", id="hidden",
         data={"owner": "bob", "s": "original"})  # fmt: skip
    filtered = t.ok(t.alice, "data/open", adapter="sqlite", config={"path": "shared.sqlite"},
                    permissions={"rowFilter": {"owner": "alice"}})["dbHandle"]  # fmt: skip
    src = t.ok(t.alice, "data/open", adapter="sqlite",
               config={"path": "src.sqlite", "mode": "create"})["dbHandle"]  # fmt: skip
    for record_id in ("hidden", "free"):
        t.ok(t.alice, "data/create", dbHandle=src, collection="c", id=record_id,
             data={"owner": "alice", "s": "planted"})  # fmt: skip
    copy = {"from": {"dbHandle": src, "collection": "c"}, "to": {"dbHandle": filtered}}
    for on_conflict in ("skip", "abort", "replace"):
        body = t.call(t.alice, "data/copy", **copy, onConflict=on_conflict)
        assert body["code"] == "permission_denied" and body["field"] == "to.dbHandle", body
        assert "conflictIds" not in body and "hidden" not in body["error"], body
        job = t.ok(t.alice, "data/job-start", command="data/copy",
                   params={**copy, "onConflict": on_conflict})["jobId"]  # fmt: skip
        info = t.finished_job(t.alice, job)
        assert info["status"] == "failed" and info["error"]["code"] == "permission_denied", info
    # Nothing was written: the hidden row is what it was, and no planted row arrived.
    kept = t.ok(t.alice, "data/read", dbHandle=full, collection="c", id="hidden")["data"]
    assert kept["s"] == "original"
    assert t.ok(t.alice, "data/count", dbHandle=full, collection="c")["total"] == 1
    # The siblings: every other write that keeps a caller's id is refused the same way (whether
    # the id is hidden or free), and an update answers a hidden id exactly as a missing one.
    for record_id in ("hidden", "free"):
        t.refused(t.alice, "data/create", "permission_denied", dbHandle=filtered, collection="c",
                  id=record_id, data={"owner": "alice"})  # fmt: skip
        t.refused(t.alice, "data/batch", "permission_denied", dbHandle=filtered, operations=[
            {"op": "create", "collection": "c", "data": {"id": record_id, "owner": "alice"}}])  # fmt: skip
    hidden = t.refused(t.alice, "data/update", "record_not_found", dbHandle=filtered,
                       collection="c", id="hidden", data={"owner": "alice"})  # fmt: skip
    missing = t.refused(t.alice, "data/update", "record_not_found", dbHandle=filtered,
                        collection="c", id="nope", data={"owner": "alice"})  # fmt: skip
    assert hidden.replace("hidden", "X") == missing.replace("nope", "X")
    (t.space("alice") / "in.jsonl").write_text('{"id": "hidden", "owner": "alice"}\n')
    t.refused(t.alice, "data/import", "permission_denied", dbHandle=filtered, collection="c",
              input="in.jsonl")  # fmt: skip
    assert t.ok(t.alice, "data/read", dbHandle=full, collection="c", id="hidden")["data"] == kept


# -- 2. long jobs re-check access between batches ----------------------------------------------------


@pytest.fixture
def shared(service: Service) -> tuple[str, str]:
    """Bob's database of 5 records, granted to alice for reading; (bob's handle, alice's handle)."""
    bobs = service.execute("data/open", {"adapter": "sqlite",
                                         "config": {"path": "bob.sqlite", "mode": "create"}},
                           context=BOB)["dbHandle"]  # fmt: skip
    for n in range(5):
        service.execute("data/create", {"dbHandle": bobs, "collection": "c", "id": f"r{n}",
                                        "data": {"n": n}}, context=BOB)  # fmt: skip
    if not any(t.actor == "alice" for t in service.tokens.list()):
        service.tokens.create("alice")  # a non-admin grants only to a token holder
    service.execute("data/grant", {"dbHandle": bobs, "actor": "alice", "access": "read"},
                    context=BOB)  # fmt: skip
    path = service.settings.space_root() / "bob" / "bob.sqlite"
    hers = service.execute("data/open", {"adapter": "sqlite",
                                         "config": {"path": str(path), "mode": "readonly"}},
                           context=ALICE)["dbHandle"]  # fmt: skip
    return str(bobs), str(hers)


def test_2_a_revoked_grant_stops_a_running_export_and_leaves_no_file(
    service: Service, shared: tuple[str, str]
) -> None:
    bobs, hers = shared
    pages: list[int] = []

    def revoke_after_the_first_page(stats: Any) -> None:
        pages.append(stats.exported)
        if len(pages) == 1:
            service.execute("data/revoke", {"dbHandle": bobs, "actor": "alice"}, context=BOB)

    refused = refused_in_process(
        service, "data/export",
        {"dbHandle": hers, "collection": "c", "output": "out.jsonl", "pageSize": 1},
        ALICE, ExportHooks(on_page=revoke_after_the_first_page),
    )  # fmt: skip
    assert refused.code == "handle_not_found" and "access changed" in refused.message, refused
    assert pages == [1]  # stopped before reading a second page
    space = service.settings.space_root() / "alice"
    assert not (space / "out.jsonl").exists() and not list(space.glob(".*.partial"))


def test_2_a_revoked_grant_stops_a_running_copy(service: Service, shared: tuple[str, str]) -> None:
    bobs, hers = shared
    mine = service.execute("data/open", {"adapter": "sqlite",
                                         "config": {"path": "mine.sqlite", "mode": "create"}},
                           context=ALICE)["dbHandle"]  # fmt: skip
    batches: list[int] = []

    def revoke_after_the_first_batch(stats: Any) -> None:
        batches.append(stats.batches)
        if len(batches) == 1:
            service.execute("data/revoke", {"dbHandle": bobs, "actor": "alice"}, context=BOB)

    refused = refused_in_process(
        service, "data/copy",
        {"from": {"dbHandle": hers, "collection": "c"}, "to": {"dbHandle": mine}, "batchSize": 2},
        ALICE, CopyHooks(on_batch=revoke_after_the_first_batch),
    )  # fmt: skip
    assert refused.code == "handle_not_found" and "access changed" in refused.message, refused
    assert refused.details["copied"] == 2 and batches == [1]
    assert service.execute("data/count", {"dbHandle": mine, "collection": "c"},
                           context=ALICE)["total"] == 2  # fmt: skip


def test_2_a_revoked_token_stops_its_running_export(service: Service) -> None:
    _, row = service.tokens.create("alice")
    alice = Context(actor="alice", session_id="s", is_admin=False, trusted_local=False,
                    token_id=row.token_id)  # fmt: skip
    mine = service.execute("data/open", {"adapter": "sqlite",
                                         "config": {"path": "mine.sqlite", "mode": "create"}},
                           context=alice)["dbHandle"]  # fmt: skip
    for n in range(3):
        service.execute("data/create", {"dbHandle": mine, "collection": "c", "data": {"n": n}},
                        context=alice)  # fmt: skip

    def revoke(stats: Any) -> None:
        if stats.exported == 1:
            service.execute("token/revoke", {"tokenId": row.token_id})

    refused = refused_in_process(
        service, "data/export",
        {"dbHandle": mine, "collection": "c", "output": "o.jsonl", "pageSize": 1},
        alice, ExportHooks(on_page=revoke),
    )  # fmt: skip
    assert refused.code == "unauthorized", refused
    assert not (service.settings.space_root() / "alice" / "o.jsonl").exists()


# -- 3. database files as import inputs --------------------------------------------------------------


def test_3_a_database_read_as_an_input_gets_data_opens_decision(
    with_read_root: tuple[Tenants, Path],
) -> None:
    t, datasets = with_read_root
    strict = datasets / "bobs.json"
    handle = t.ok(t.admin, "data/open", adapter="json", config={"path": str(strict), "mode": "create"},
                  permissions={"owner": "bob", "isolationMode": "strict"})["dbHandle"]  # fmt: skip
    t.ok(t.admin, "data/create", dbHandle=handle, collection="m", data={"fact": SECRET})
    open_code = t.call(t.alice, "data/open", adapter="json",
                       config={"path": str(strict), "mode": "readonly"})["code"]  # fmt: skip
    assert open_code in ("access_denied", "path_not_allowed")
    for extra in ({}, {"onError": "skip"}):
        t.refused(t.alice, "data/import", open_code, input=str(strict), output="stolen.sqlite",
                  **extra)  # fmt: skip
    assert not (t.space("alice") / "stolen.sqlite").exists()
    # A database nobody owns under a read root is readable, as data/open would let it be; while a
    # handle has it open it is that handle's database, never a data file (whoever asks).
    free = datasets / "free.json"
    opened = t.ok(t.admin, "data/open", adapter="json",
                  config={"path": str(free), "mode": "create"})["dbHandle"]  # fmt: skip
    alices = t.ok(t.alice, "data/open", adapter="json",
                  config={"path": str(free), "mode": "readonly"})["dbHandle"]  # fmt: skip
    t.refused(t.alice, "data/import", "path_not_allowed", input=str(free), output="free.sqlite")
    t.ok(t.admin, "data/close", dbHandle=opened)
    if alices != opened:
        t.ok(t.alice, "data/close", dbHandle=alices)
    t.ok(t.alice, "data/import", input=str(free), output="free.sqlite")
    # A hard link to another actor's JSON database, wherever it lies, is no way in.
    bobs = t.ok(t.bob, "data/open", adapter="json",
                config={"path": "notes.json", "mode": "create"})["dbHandle"]  # fmt: skip
    t.ok(t.bob, "data/create", dbHandle=bobs, collection="c", data={"fact": SECRET})
    linked = t.space("alice") / "linked.json"
    os.link(t.space("bob") / "notes.json", linked)  # planted by someone with a shell
    # A non-admin never reads a file with other names (docs/security.md): the path policy
    # answers first, in the words of any path outside its places.
    t.refused(t.alice, "data/open", "path_not_allowed", adapter="json",
              config={"path": "linked.json", "mode": "readonly"})  # fmt: skip
    t.refused(t.alice, "data/import", "path_not_allowed", input="linked.json", output="l.sqlite")
    for path in t.space("alice").rglob("*.sqlite"):
        assert SECRET.encode() not in path.read_bytes()


# -- 4. read roots are decided on real paths ---------------------------------------------------------


def test_4_a_read_root_linked_into_the_data_root_or_home_is_refused(tmp_path: Path) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    (data / "bob").mkdir(parents=True)
    home.mkdir()
    for target in (data, data / "bob", home):
        link = tmp_path / f"link-{target.name}"
        link.symlink_to(target)
        with pytest.raises(ValueError, match="DBHANDLES_READ_ROOTS"):
            Settings(home=home, data_root=data, read_roots=(str(link),))
    home_link = tmp_path / "home-link"
    home_link.symlink_to(home)
    with pytest.raises(ValueError, match="DBHANDLES_DATA_ROOT"):
        Settings(home=home, data_root=home_link / "data")
    # A link made after start-up does not count as a read root either.
    later = tmp_path / "later"
    later.mkdir()
    settings = Settings(home=home, data_root=data, read_roots=(str(later),))
    later.rmdir()
    later.symlink_to(data)
    assert settings.resolved_read_roots() == ()


# -- 5. table output ---------------------------------------------------------------------------------


def test_5_table_output_never_prints_control_characters(t: Tenants) -> None:
    evil = "x\x1b]0;owned\x07\x9b2J\u202e"
    # Anyone can put text in the audit log: the command name of an unauthenticated request.
    t.http.post(f"/commands/{quote(evil)}", json={})
    t.ok(t.alice, "data/create", collection="training_examples", data={"k\x1b[31m": evil})
    env = jtag_env(t.home, JTAG_URL=t.server.url, JTAG_TOKEN=t.admin)
    for args in (("data/audit", "--limit=50"), ("data/list", "--collection=training_examples")):
        shown = run_jtag(*args, "--format=table", env=env)
        assert shown.returncode == 0, shown.stderr
        assert not any(c in shown.stdout for c in "\x1b\x07\x9b\u202e"), shown.stdout
    assert "\\x1b" in run_jtag("data/audit", "--limit=50", "--format=table", env=env).stdout
    table = render_table({"success": True, "items": [{"id": "a\x00b", "t": "\x7f"}]})
    assert "\\x00" in table and "\\x7f" in table and "\x00" not in table


# -- 6. one's own space ------------------------------------------------------------------------------


def test_6_files_in_ones_own_space_are_never_replaced_or_left_behind(t: Tenants) -> None:
    space = t.space("alice")
    space.mkdir(parents=True, mode=0o700)
    (space / "in.jsonl").write_text('{"id": "a"}\nnot json\n')
    (space / "notes.jsonl").write_text("my notes\n")
    # (a) a rejects file replaces only an earlier run's rejects; (c) nothing is created first.
    t.refused(t.alice, "data/import", "file_exists", input="in.jsonl", output="fresh.sqlite",
              onError="skip", rejects="notes.jsonl")  # fmt: skip
    (space / "fresh2.sqlite.rejects.jsonl").write_text("my other notes\n")
    t.refused(t.alice, "data/import", "file_exists", input="in.jsonl", output="fresh2.sqlite",
              onError="skip")  # fmt: skip
    assert (space / "notes.jsonl").read_text() == "my notes\n"
    assert (space / "fresh2.sqlite.rejects.jsonl").read_text() == "my other notes\n"
    assert not (space / "fresh.sqlite").exists() and not (space / "fresh2.sqlite").exists()
    assert [h["handle"] for h in t.ok(t.alice, "data/list-handles")["handles"]] == ["default"]
    t.refused(t.alice, "data/import", "path_not_allowed", input="in.jsonl", output="fresh3.sqlite",
              onError="skip", rejects="/etc/r.jsonl")  # fmt: skip
    assert not (space / "fresh3.sqlite").exists()
    for _ in range(2):  # a re-run replaces its own rejects
        done = t.ok(t.alice, "data/import", input="in.jsonl", output="ok.sqlite", onError="skip",
                    rejects="r.jsonl")  # fmt: skip
        assert done["failed"] == 1
    # (b) an export never deletes a partial file it did not write.
    (space / ".out.jsonl.partial").write_text("someone's half\n")
    t.refused(t.alice, "data/export", "file_exists", dbHandle=done["dbHandle"],
              collection="training_examples", output="out.jsonl")  # fmt: skip
    assert (space / ".out.jsonl.partial").read_text() == "someone's half\n"
    # (d) folders made for outputs are private.
    t.ok(t.alice, "data/export", dbHandle=done["dbHandle"], collection="training_examples",
         output="deep/er/out.jsonl")  # fmt: skip
    for folder in (space / "deep", space / "deep" / "er"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


# -- 7. others' handles, the default's path, audit targets, the dashboard ----------------------------


def test_7_another_actors_handle_is_as_unknown_as_a_ghost(t: Tenants) -> None:
    bobs = t.ok(t.bob, "data/open", adapter="sqlite",
                config={"path": "b.sqlite", "mode": "create"})["dbHandle"]  # fmt: skip
    ghost = "00000000-0000-4000-8000-000000000000"
    for name, params in (("data/close", {}), ("data/list", {"collection": "c"}),
                         ("data/read", {"collection": "c", "id": "x"}),
                         ("data/grant", {"actor": "alice"}), ("data/list-grants", {})):  # fmt: skip
        theirs = t.refused(t.alice, name, "handle_not_found", dbHandle=bobs, **params)
        unknown = t.refused(t.alice, name, "handle_not_found", dbHandle=ghost, **params)
        assert theirs.replace(bobs, "H") == unknown.replace(ghost, "H"), name
        assert "bob" not in theirs
    # Shared, it is visible (and what is not granted is access_denied).
    t.ok(t.bob, "data/grant", dbHandle=bobs, actor="alice", access="read")
    t.ok(t.alice, "data/list", dbHandle=bobs, collection="c")
    t.refused(t.alice, "data/close", "access_denied", dbHandle=bobs)
    # The default database's file (in the home) is not shown to her; the administrator sees it.
    default = t.ok(t.alice, "data/list-handles")["handles"][0]
    assert default["isDefault"] and "path" not in default["config"]
    assert str(t.home) not in orjson.dumps(t.ok(t.alice, "data/list-handles")).decode()
    assert "path" in t.ok(t.admin, "data/list-handles")["handles"][0]["config"]
    # A PostgreSQL open names its target in the audit row, refused or failed, never the password.
    for host in ("127.0.0.1", "10.0.0.9"):
        t.call(t.alice, "data/open", adapter="postgres",
               config={"host": host, "port": 1, "dbname": "db", "user": "u", "password": "pw-77"})  # fmt: skip
    rows = [r for r in t.audit(actor="alice") if r["command"] == "data/open"
            and "postgres" in (r.get("target") or "")]  # fmt: skip
    targets = {r["target"] for r in rows}
    assert {"postgres://127.0.0.1:1/db", "postgres://10.0.0.9:1/db"} <= targets, rows
    assert "pw-77" not in orjson.dumps(t.audit()).decode()
    # The dashboard cannot be framed by another page, and runs only its own scripts.
    page = t.http.get("/")
    assert page.headers["x-frame-options"] == "DENY"
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
    # A #token= link never silently replaces the token a tab already has.
    assert 'id="token-offer"' in page.text


def test_8_clear_never_empties_a_collection_the_handle_may_not_reach(t: Tenants) -> None:
    """data/clear names no collection: through a handle whose rights cover only some collections
    (a grant's or its own deniedCollections/allowedCollections) it is refused, and nothing goes."""
    bobs = t.ok(t.bob, "data/open", adapter="sqlite",
                config={"path": "clr.sqlite", "mode": "create"}, alias="clr")["dbHandle"]  # fmt: skip
    for name in ("private", "public"):
        t.ok(t.bob, "data/create", dbHandle=bobs, collection=name, data={"v": name})
    for permissions in ({"deniedCollections": ["private"]}, {"allowedCollections": ["public"]}):
        t.ok(t.bob, "data/grant", dbHandle=bobs, actor="alice", access="full",
             permissions=permissions)  # fmt: skip
        hers = t.ok(t.alice, "data/open", adapter="sqlite",
                    config={"path": str(t.space("bob") / "clr.sqlite")})["dbHandle"]  # fmt: skip
        error = t.refused(t.alice, "data/clear", "permission_denied", dbHandle=hers)
        assert "private" not in error
        # Her own restricted handle on her own database is held to the same rule.
        own = t.ok(t.alice, "data/open", adapter="sqlite",
                   config={"path": "mine.sqlite", "mode": "create"},
                   permissions=permissions)["dbHandle"]  # fmt: skip
        t.refused(t.alice, "data/clear", "permission_denied", dbHandle=own)
    for name in ("private", "public"):
        assert t.ok(t.bob, "data/count", dbHandle=bobs, collection=name)["total"] == 1


def test_9_the_home_is_refused_in_the_words_of_any_other_path(t: Tenants) -> None:
    """A path in the service's home (which exists or not) answers as any path outside the actor's
    places: the answer never tells a guess of where the home is from a wrong one."""
    for purpose, params in (
        ("data/open", lambda p: {"adapter": "sqlite", "config": {"path": p, "mode": "readonly"}}),
        ("data/import", lambda p: {"input": p, "output": "x.sqlite", "collection": "c"}),
    ):
        answers = [
            t.refused(t.alice, purpose, "path_not_allowed", **params(path)).replace(path, "P")
            for path in (str(t.home / "zzz-nonexistent"), str(t.home / "admin.token"),
                         "/nonexistent-dir/zzz")
        ]  # fmt: skip
        assert len(set(answers)) == 1, answers
        assert "state" not in answers[0]
