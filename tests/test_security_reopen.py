"""Issue 12, round 8: the names files are used by hold at every reopen, for every caller.

Each test runs against a real ``jtag serve`` as non-admin actors (``alice``, ``bob``), restarts
included, and plays the local user who can make links in alice's space:

1. a stored handle whose file was swapped for a hard link to another actor's (or the
   administrator's) database, or for a symbolic link to the home's default database, is refused
   ``path_not_allowed`` at every reopen (running, after a restart, after a crash), never opens the
   other file; the owners keep using their databases under their own names;
2. a link to another database's ``-wal`` planted next to alice's database refuses alice's
   database only, never bob's;
3. a file with other names is never an import input for a remote caller, an administrator too:
   ``admin.token`` is never read through a link; the local user reads its own data files by any
   name, never a live database's other name;
4. a hard link to a JSON-adapter database never becomes a readable copy of it after its owner's
   next commit.

See docs/security.md, "One name per file".
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from dbhandles.errors import PathNotAllowed
from dbhandles.service import Service
from tests.test_security_links import words
from tests.test_security_tenants import Tenants, serve_tenants, start

pytestmark = pytest.mark.needs_server

SECRET = "bob-secret-7f3a"
ADMIN_SECRET = "admin-secret-91c2"


@pytest.fixture
def t(tmp_path: Path) -> Iterator[Tenants]:
    for world in serve_tenants(tmp_path):
        for actor in ("alice", "bob"):
            world.space(actor).mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            yield world
        finally:
            world.server.__exit__()


def restart(t: Tenants, sig: int = signal.SIGTERM) -> None:
    """Stop the server (``SIGKILL``: a crash, leaving ``-wal`` files behind) and start a new one
    on the same home and port, which knows no name of the first one."""
    t.server.stop(sig)
    server = start(t.home, DBHANDLES_POSTGRES_SERVERS="127.0.0.1:1")
    server.port, server.url = t.server.port, t.server.url
    t.server = server.__enter__()


def remove(path: Path) -> None:
    """``path`` and its side files, as a shell user would ``rm path*``."""
    for name in (path, *(Path(f"{path}{s}") for s in ("-wal", "-shm", "-journal"))):
        name.unlink(missing_ok=True)


def never_shows(body: dict[str, object], *secrets: str) -> None:
    text = orjson.dumps(body).decode()
    for secret in secrets:
        assert secret not in text, body


# -- 1. a stored handle's file swapped for a link ---------------------------------------------------


def test_1_a_stored_handle_whose_file_became_a_hard_link_never_opens_the_other_file(
    t: Tenants,
) -> None:
    bob, alice = t.space("bob"), t.space("alice")
    # bob: a database whose handle he closed, and one he keeps open (alias bw); the
    # administrator: one of its own.
    closed = t.ok(t.bob, "data/open", adapter="sqlite",
                  config={"path": "bob2.sqlite", "mode": "create"})["dbHandle"]  # fmt: skip
    t.ok(t.bob, "data/create", dbHandle=closed, collection="secrets", id="s", data={"v": SECRET})
    t.ok(t.bob, "data/close", dbHandle=closed)
    t.ok(t.bob, "data/open", adapter="sqlite", alias="bw", preset="PERSONA_KNOWLEDGE",
         config={"path": "bob.sqlite", "mode": "create"})  # fmt: skip
    t.ok(t.bob, "data/create", dbHandle="bw", collection="secrets", id="s", data={"v": SECRET})
    admin_file = t.data_root / "admin-files" / "adm5.sqlite"
    t.ok(t.admin, "data/open", adapter="sqlite", alias="adm",
         config={"path": str(admin_file), "mode": "create"})  # fmt: skip
    t.ok(t.admin, "data/create", dbHandle="adm", collection="secrets", id="s",
         data={"v": ADMIN_SECRET})  # fmt: skip
    ids = {}
    for alias, name in (("ax", "x.sqlite"), ("ay", "y.sqlite"), ("az", "z.sqlite")):
        ids[alias] = t.ok(t.alice, "data/open", adapter="sqlite", alias=alias,
                          config={"path": name, "mode": "create"})["dbHandle"]  # fmt: skip
        t.ok(t.alice, "data/create", dbHandle=alias, collection="mine", data={"n": 1})
    # The local user swaps alice's files for links to the others' databases.
    for name, target in (("x.sqlite", bob / "bob2.sqlite"), ("y.sqlite", bob / "bob.sqlite"),
                         ("z.sqlite", admin_file)):  # fmt: skip
        remove(alice / name)
        os.link(target, alice / name)
    for phase in ("running", "restarted", "crashed"):
        for alias in ("ax", "ay", "az"):
            for command, params in (("data/list", {"collection": "secrets"}),
                                    ("data/truncate", {"collection": "secrets"}),
                                    ("data/create", {"collection": "mine", "data": {"n": 2}})):  # fmt: skip
                body = t.call(t.alice, command, dbHandle=alias, **params)
                assert body["code"] == "path_not_allowed", (phase, alias, command, body)
                never_shows(body, SECRET, ADMIN_SECRET, str(bob), str(admin_file))
                words(t, body)
        # A job (run by the server, in a child process for an export) and a second process on
        # the home (the local user, in-process) decide the same.
        job = t.ok(t.alice, "data/job-start", command="data/export",
                   params={"dbHandle": "ax", "collection": "secrets", "output": "o.jsonl"})  # fmt: skip
        failed = t.finished_job(t.alice, job["jobId"])
        assert failed["status"] == "failed", failed
        assert failed["error"]["code"] == "path_not_allowed", failed
        never_shows(failed, SECRET)
        assert not (alice / "o.jsonl").exists()
        with Service(home=t.home) as local:
            for handle in ids.values():
                with pytest.raises(PathNotAllowed):
                    local.execute("data/list", {"dbHandle": handle, "collection": "secrets"})
        # Bob's databases and the administrator's keep working under their own names.
        found = t.ok(t.bob, "data/read", dbHandle="bw", collection="secrets", id="s")
        assert found["data"]["v"] == SECRET, phase
        again = t.ok(t.bob, "data/open", adapter="sqlite", config={"path": "bob2.sqlite"})
        read = t.ok(t.bob, "data/read", dbHandle=again["dbHandle"], collection="secrets", id="s")
        assert read["data"]["v"] == SECRET, phase
        t.ok(t.bob, "data/close", dbHandle=again["dbHandle"])
        t.ok(t.bob, "data/open", adapter="sqlite", config={"path": "bob.sqlite"})
        found = t.ok(t.admin, "data/read", dbHandle="adm", collection="secrets", id="s")
        assert found["data"]["v"] == ADMIN_SECRET, phase
        t.ok(t.admin, "data/open", adapter="sqlite", config={"path": str(admin_file)})
        restart(t, signal.SIGKILL if phase == "restarted" else signal.SIGTERM)
    # The handle stays, and works again once its file is back.
    remove(alice / "x.sqlite")
    (alice / "x.sqlite").touch()
    assert t.ok(t.alice, "data/count", dbHandle="ax", collection="mine")["total"] == 0


def test_1_a_stored_handle_whose_file_became_a_symlink_never_opens_its_target(
    t: Tenants,
) -> None:
    alice, bob = t.space("alice"), t.space("bob")
    t.ok(t.admin, "data/create", collection="imp", id="keep", data={"v": 1})
    t.ok(t.alice, "data/open", adapter="sqlite", alias="as2",
         config={"path": "s2.sqlite", "mode": "create"})  # fmt: skip
    t.ok(t.alice, "data/count", dbHandle="as2", collection="imp")
    # A folder swapped for a link to bob's space, where a database of the same name is his.
    t.ok(t.alice, "data/open", adapter="sqlite", alias="asub",
         config={"path": "sub/d.sqlite", "mode": "create"})  # fmt: skip
    t.ok(t.bob, "data/open", adapter="sqlite", preset="PERSONA_KNOWLEDGE",
         config={"path": "d.sqlite", "mode": "create"})  # fmt: skip
    bobs = t.ok(t.bob, "data/open", adapter="sqlite", config={"path": "d.sqlite"})["dbHandle"]
    t.ok(t.bob, "data/create", dbHandle=bobs, collection="secrets", id="s", data={"v": SECRET})
    remove(alice / "s2.sqlite")
    os.symlink(t.home / "default.sqlite", alice / "s2.sqlite")
    for name in os.listdir(alice / "sub"):
        os.unlink(alice / "sub" / name)
    os.rmdir(alice / "sub")
    os.symlink(bob, alice / "sub")
    for phase in ("running", "restarted"):
        for command, params in (("data/truncate", {"collection": "imp"}),
                                ("data/delete", {"collection": "imp", "id": "keep"}),
                                ("data/list", {"collection": "imp"})):  # fmt: skip
            body = t.call(t.alice, command, dbHandle="as2", **params)
            assert body["code"] == "path_not_allowed", (phase, command, body)
            words(t, body)
        body = t.call(t.alice, "data/list", dbHandle="asub", collection="secrets")
        assert body["code"] == "path_not_allowed", (phase, body)
        never_shows(body, SECRET)
        assert t.ok(t.admin, "data/read", collection="imp", id="keep")["found"] is True
        assert t.ok(t.bob, "data/count", dbHandle=bobs, collection="secrets")["total"] == 1
        restart(t)


# -- 2. a planted side-file link refuses the database it was planted next to ----------------------


def test_2_a_planted_wal_link_refuses_the_database_it_is_next_to_never_the_owner(
    t: Tenants,
) -> None:
    alice, bob = t.space("alice"), t.space("bob")
    handle = t.ok(t.bob, "data/open", adapter="sqlite", alias="bw",
                  config={"path": "bob.sqlite", "mode": "create", "wal": True})["dbHandle"]  # fmt: skip
    t.ok(t.bob, "data/create", dbHandle=handle, collection="secrets", id="s", data={"v": SECRET})
    t.ok(t.alice, "data/open", adapter="sqlite",
         config={"path": "a2.sqlite", "mode": "create", "wal": True})  # fmt: skip
    wal = Path(f"{bob / 'bob.sqlite'}-wal")
    assert wal.exists()
    for suffix in ("-wal", "-shm"):
        Path(f"{alice / 'a2.sqlite'}{suffix}").unlink(missing_ok=True)
        if Path(f"{bob / 'bob.sqlite'}{suffix}").exists():
            os.link(f"{bob / 'bob.sqlite'}{suffix}", f"{alice / 'a2.sqlite'}{suffix}")
    for phase in ("running", "crashed"):
        # Bob opens his database again, and reads it, through every door that checks it.
        again = t.ok(t.bob, "data/open", adapter="sqlite", config={"path": "bob.sqlite"})
        read = t.ok(t.bob, "data/read", dbHandle=again["dbHandle"], collection="secrets", id="s")
        assert read["data"]["v"] == SECRET, phase
        assert t.ok(t.bob, "data/read", dbHandle="bw", collection="secrets", id="s")["found"]
        # Alice's database, next to which the link was planted, is refused.
        body = t.call(t.alice, "data/open", adapter="sqlite", config={"path": "a2.sqlite"})
        assert body["code"] in ("not_a_database", "path_not_allowed"), (phase, body)
        never_shows(body, SECRET, str(bob))
        if phase == "running":
            restart(t, signal.SIGKILL)  # the -wal files stay, with both names


# -- 3. files with other names are never inputs, for any caller ------------------------------------


def test_3_an_administrator_never_imports_a_link_to_admin_token(t: Tenants) -> None:
    alice = t.space("alice")
    os.link(t.home / "admin.token", alice / "tok.jsonl")
    body = t.call(t.admin, "data/import", dbHandle="default", collection="imp",
                  input=str(alice / "tok.jsonl"), onError="skip",
                  rejects=str(alice / "rej-adm.jsonl"))  # fmt: skip
    assert body["code"] == "path_not_allowed", body
    assert not (alice / "rej-adm.jsonl").exists()
    token = (t.home / "admin.token").read_text().strip()
    never_shows(body, token)
    # The same file by a name with one... there is none: the link refuses every caller.
    body = t.call(t.alice, "data/import", dbHandle="default", collection="imp", input="tok.jsonl",
                  onError="skip", rejects="rej.jsonl")  # fmt: skip
    assert body["code"] == "path_not_allowed", body
    # A data set with other names is refused too, for the administrator; with one name, read.
    (alice / "in2.jsonl").write_text('{"id": "a", "n": 1}\n')
    os.link(alice / "in2.jsonl", alice / "in2link.jsonl")
    for name in ("in2.jsonl", "in2link.jsonl"):
        body = t.call(t.admin, "data/import", dbHandle="default", collection="imp",
                      input=str(alice / name))  # fmt: skip
        assert body["code"] == "path_not_allowed" and "hard link" in body["error"], body
    os.unlink(alice / "in2link.jsonl")
    t.ok(
        t.admin, "data/import", dbHandle="default", collection="imp", input=str(alice / "in2.jsonl")
    )


def test_3_the_local_user_never_imports_a_link_to_a_live_database(tmp_path: Path) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    data.mkdir()
    with Service(home=home) as service:
        (data / "in.jsonl").write_text('{"id": "a", "n": 1}\n')
        os.link(data / "in.jsonl", data / "link.jsonl")
        os.link(home / "default.sqlite", data / "default-link.jsonl")
        with pytest.raises(PathNotAllowed):
            service.execute("data/import", {"dbHandle": "default", "collection": "imp",
                                            "input": str(data / "default-link.jsonl"),
                                            "onError": "skip",
                                            "rejects": str(data / "rej.jsonl")})  # fmt: skip
        assert not (data / "rej.jsonl").exists()
        # A plain data file with other names is the local user's own (issue #15, finding 6:
        # tests/test_import_hard_links.py): it imports by either name.
        for name, imported in (("link.jsonl", 1), ("in.jsonl", 0)):
            done = service.execute(
                "data/import",
                {"dbHandle": "default", "collection": "imp", "input": str(data / name)},
            )
            assert done["imported"] == imported


# -- 4. a link to a JSON-adapter database never keeps its content -----------------------------------


def test_4_a_link_to_a_json_database_is_never_a_copy_of_it(t: Tenants) -> None:
    alice, bob = t.space("alice"), t.space("bob")
    handle = t.ok(t.bob, "data/open", adapter="json", preset="PERSONA_KNOWLEDGE",
                  config={"path": "b.json", "mode": "create"})["dbHandle"]  # fmt: skip
    t.ok(t.bob, "data/create", dbHandle=handle, collection="secrets", id="s", data={"v": SECRET})
    os.link(bob / "b.json", alice / "bl.json")
    body = t.call(t.alice, "data/open", adapter="json", config={"path": "bl.json"})
    assert body["code"] == "path_not_allowed", body
    # Bob's next commit gives b.json a new file: the one the link names is emptied.
    t.ok(t.bob, "data/create", dbHandle=handle, collection="secrets", id="t", data={"v": "2"})
    assert SECRET.encode() not in (alice / "bl.json").read_bytes()
    for phase in ("running", "restarted"):
        body = t.call(t.alice, "data/open", adapter="json", config={"path": "bl.json"})
        never_shows(body, SECRET)
        if body["success"]:
            listed = t.ok(t.alice, "data/list", dbHandle=body["dbHandle"], collection="secrets")
            never_shows(listed, SECRET)
        body = t.call(t.alice, "data/import", dbHandle="default", collection="x", input="bl.json")
        never_shows(body, SECRET)
        assert SECRET not in orjson.dumps(t.ok(t.alice, "data/list", collection="x")).decode()
        found = t.ok(t.bob, "data/read", dbHandle=handle, collection="secrets", id="s")
        assert found["data"]["v"] == SECRET, phase
        restart(t)


# -- 6. the default data root never shows where the home is ----------------------------------------


def test_6_no_answer_or_event_shows_a_non_admin_the_data_root(t: Tenants) -> None:
    from websockets.sync.client import connect

    alice = t.space("alice")
    (alice / "in.jsonl").write_text('{"id": "a", "n": 1}\n{"id": "b", "n": 2}\n{bad\n')
    (alice / "junk.sqlite").write_bytes(b"not a database" * 100)
    spellings = {str(t.data_root), os.path.realpath(t.data_root), str(t.home),
                 os.path.realpath(t.home)}  # fmt: skip
    bodies: list[object] = []
    ws_url = t.server.url.replace("http://", "ws://") + "/ws"
    with connect(f"{ws_url}?token={t.alice}", open_timeout=10) as socket:
        socket.send(orjson.dumps({"type": "subscribe", "id": "s", "pattern": "*"}).decode())
        opened = t.ok(t.alice, "data/open", adapter="sqlite",
                      config={"path": "x.sqlite", "mode": "create"})  # fmt: skip
        assert opened["config"]["path"] == "x.sqlite", opened
        imported = t.ok(t.alice, "data/import", input="in.jsonl", output="o.sqlite",
                        collection="c", onError="skip", rejects="rej.jsonl")  # fmt: skip
        assert (imported["output"], imported["rejects"]) == ("o.sqlite", "rej.jsonl"), imported
        exported = t.ok(t.alice, "data/export", dbHandle=imported["dbHandle"], collection="c",
                        output="out.jsonl")  # fmt: skip
        assert exported["output"] == "out.jsonl", exported
        job = t.ok(t.alice, "data/job-start", command="data/import",
                   params={"input": "in.jsonl", "output": "p.sqlite", "collection": "c",
                           "onError": "skip"})  # fmt: skip
        done = t.finished_job(t.alice, job["jobId"])
        assert done["status"] == "done", done
        listed = t.ok(t.alice, "data/list-handles")
        assert "x.sqlite" in orjson.dumps(listed).decode()
        refused = t.call(t.alice, "data/open", adapter="sqlite", config={"path": "junk.sqlite"})
        assert refused["code"] == "not_a_database" and "junk.sqlite" in refused["error"], refused
        bodies += [opened, imported, exported, job, done, listed, refused,
                   t.ok(t.alice, "data/job-list")]  # fmt: skip
        events: list[object] = []
        while not any(isinstance(e, dict) and e.get("event") == "import:done"
                      and e.get("payload", {}).get("output") == "p.sqlite"
                      for e in events):  # fmt: skip
            events.append(orjson.loads(socket.recv(timeout=10)))
        kinds = {e.get("event") for e in events if isinstance(e, dict)}
        assert {"import:done", "export:done"} <= kinds, events
        bodies += events
    for body in bodies:
        text = orjson.dumps(body).decode()
        for spelled in spellings:
            assert spelled not in text, (spelled, body)
    # An administrator sees the paths as they are.
    admin = t.ok(t.admin, "data/list-handles")
    assert str(os.path.realpath(alice / "x.sqlite")) in orjson.dumps(admin).decode()
