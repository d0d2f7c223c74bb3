"""Issue 12: the tenant boundary holds against a hostile actor with an ordinary token.

Each test replays one kind of attack as ``alice`` (a non-admin token) against a real ``jtag serve``
on loopback, and checks it is refused with a documented code while ``bob``'s data and the server's
own state (``admin.token``, ``server.json``, the default database) stay intact. The sibling cases of
each kind are in the same test. See docs/security.md, "Multi-tenant servers".
"""

from __future__ import annotations

import os
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.servers import ServerProcess, jtag_env, run_jtag

pytestmark = pytest.mark.needs_server

SECRET = "bob-secret-7f3a"


@dataclass
class Tenants:
    """A running server, its administrator, and two ordinary actors."""

    server: ServerProcess
    home: Path
    http: httpx.Client
    admin: str
    alice: str
    bob: str

    @property
    def data_root(self) -> Path:
        return self.home.with_name(f"{self.home.name}-data")

    def space(self, actor: str) -> Path:
        return self.data_root / actor

    def call(self, token: str | None, name: str, **params: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.http.post(f"/commands/{name}", json=params, headers=headers)
        body = dict(response.json())
        if not body.get("success"):
            from dbhandles.errors import error_class_for_code

            assert response.status_code == error_class_for_code(body["code"]).http_status, body
        return body

    def ok(self, token: str, name: str, **params: Any) -> dict[str, Any]:
        body = self.call(token, name, **params)
        assert body["success"] is True, body
        return body

    def refused(self, token: str, name: str, code: str | set[str], **params: Any) -> str:
        body = self.call(token, name, **params)
        codes = {code} if isinstance(code, str) else code
        assert body["success"] is False and body["code"] in codes, (name, params, body)
        return str(body["error"])

    def finished_job(self, token: str, job_id: str) -> dict[str, Any]:
        """The job's status once it has ended (polled; nothing asserts how long it took: a job of
        a non-admin runs in a child process, which may take seconds to start on a busy machine)."""
        for _ in range(1200):
            info = self.ok(token, "data/job-status", jobId=job_id)
            if info["status"] not in ("queued", "running"):
                return info
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} did not end")

    def state(self) -> dict[str, bytes]:
        """The service's own files, to compare before and after an attack."""
        return {
            p.name: p.read_bytes() for p in (self.home / "admin.token", self.home / "server.json")
        }

    def audit(self, **filters: Any) -> list[dict[str, Any]]:
        return list(self.ok(self.admin, "data/audit", limit=10_000, **filters)["entries"])


def start(home: Path, **env: str) -> ServerProcess:
    server = ServerProcess(home)
    server.env.update(env)
    return server


@pytest.fixture
def tenants(tmp_path: Path) -> Iterator[Tenants]:
    yield from serve_tenants(tmp_path)


def serve_tenants(tmp_path: Path) -> Iterator[Tenants]:
    """A server on ``tmp_path/home`` with tokens for ``alice`` and ``bob`` (the fixture's body, also
    used by the other ``test_security_*`` files that replay attacks against a real server)."""
    home = tmp_path / "home"
    with start(home, DBHANDLES_POSTGRES_SERVERS="127.0.0.1:1") as server:
        http = httpx.Client(base_url=server.url, timeout=30)
        admin = server.token
        alice = http.post("/commands/token/create", json={"actor": "alice"},
                          headers={"Authorization": f"Bearer {admin}"}).json()["token"]  # fmt: skip
        bob = http.post("/commands/token/create", json={"actor": "bob"},
                        headers={"Authorization": f"Bearer {admin}"}).json()["token"]  # fmt: skip
        world = Tenants(server, home, http, admin, alice, bob)
        try:
            yield world
        finally:
            http.close()


def bob_strict(t: Tenants) -> str:
    """Bob's private database (strict isolation) with a secret, and his alias ``bobwork`` on it."""
    handle = t.ok(t.bob, "data/open", adapter="sqlite", alias="bobwork", preset="PERSONA_KNOWLEDGE",
                  config={"path": "bob.sqlite", "mode": "create", "wal": True})["dbHandle"]  # fmt: skip
    t.ok(t.bob, "data/create", dbHandle=handle, collection="memories", id="m1",
         data={"fact": SECRET})  # fmt: skip
    return str(handle)


def bob_still_has(t: Tenants, handle: str) -> None:
    found = t.ok(t.bob, "data/read", dbHandle="bobwork", collection="memories", id="m1")
    assert found["found"] is True and found["dbHandle"] == handle
    assert found["data"]["fact"] == SECRET


def alice_never_saw(t: Tenants) -> None:
    """Nothing alice can read (her space, her records in default) holds bob's secret."""
    for path in t.space("alice").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    listed = t.ok(t.alice, "data/list", collection="training_examples")
    assert SECRET not in orjson.dumps(listed).decode()


# -- 1. become the administrator ---------------------------------------------------------------------


def test_1_the_home_is_never_read_or_written(tenants: Tenants) -> None:
    t = tenants
    before = t.state()
    home = t.home
    t.ok(t.alice, "data/create", dbHandle="default", collection="training_examples", id="x",
         data={"url": "http://127.0.0.1:9/", "pid": 1, "home": str(home)})  # fmt: skip
    mine = t.ok(t.alice, "data/open", adapter="sqlite",
                config={"path": "mine.sqlite", "mode": "create"})["dbHandle"]  # fmt: skip
    # Read: import the token (its line would land in the rejects file), from any spelling.
    for given in (home / "admin.token", home / "server.json", home / "cli-session",
                  f"../../{home.name}/admin.token", str(home / ".." / home.name / "admin.token")):  # fmt: skip
        t.refused(t.alice, "data/import", "path_not_allowed", input=str(given), output="in.sqlite",
                  onError="skip", rejects="rejects.jsonl")  # fmt: skip
    # Write: export over the server's state, or name it as a rejects file.
    for target in ("server.json", "admin.token", "default.sqlite", "new-file"):
        t.refused(t.alice, "data/export", "path_not_allowed", dbHandle="default",
                  collection="training_examples", output=str(home / target), overwrite=True)  # fmt: skip
    (t.space("alice") / "in.jsonl").write_text('{"id": "a"}\nnot json\n')
    t.refused(t.alice, "data/import", "path_not_allowed", input="in.jsonl", dbHandle=mine,
              onError="skip", rejects=str(home / "server.json"))  # fmt: skip
    # Open: the default database (and its handle table) by path, with any adapter.
    for adapter, name in (("sqlite", "default.sqlite"), ("json", "admin.token"),
                          ("json", "server.json")):  # fmt: skip
        t.refused(t.alice, "data/open", "path_not_allowed", adapter=adapter,
                  config={"path": str(home / name), "mode": "readonly"})  # fmt: skip
    assert t.state() == before
    assert not (home / "new-file").exists()
    # The administrator's next jtag still reaches its own server with its own token.
    proc = run_jtag("data/list-handles", env=jtag_env(home))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert orjson.loads(proc.stdout)["success"] is True


# -- 2. read another actor's data without opening it ---------------------------------------------


def test_2_another_actors_files_and_the_wal_are_not_data_sets(tenants: Tenants) -> None:
    t = tenants
    handle = bob_strict(t)
    t.ok(t.bob, "data/open", adapter="json", preset="PERSONA_KNOWLEDGE",
         config={"path": "bob.json", "mode": "create"})  # fmt: skip
    bobs = t.space("bob")
    json_handle = t.ok(t.bob, "data/open", adapter="json",
                       config={"path": "notes.json", "mode": "create"})["dbHandle"]  # fmt: skip
    t.ok(t.bob, "data/create", dbHandle=json_handle, collection="c", data={"fact": SECRET})
    assert (bobs / "bob.sqlite-wal").exists()
    for given in (bobs / "bob.sqlite-wal", bobs / "bob.sqlite", bobs / "notes.json",
                  bobs / "bob.json", t.home / "default.sqlite-wal", "../bob/notes.json",
                  "../bob/bob.sqlite-wal"):  # fmt: skip
        for params in ({"output": "stolen.sqlite"}, {"output": "stolen.sqlite", "onError": "skip"}):
            t.refused(t.alice, "data/import", "path_not_allowed", input=str(given), **params)
    # Nor by opening or exporting: his databases are his (strict or not), and the answer is the
    # one for any path outside her places, whether a file is there or not (no map of his files).
    for adapter, name in (("sqlite", "bob.sqlite"), ("json", "notes.json"), ("json", "bob.json"),
                          ("sqlite", "missing.sqlite")):  # fmt: skip
        t.refused(t.alice, "data/open", "path_not_allowed", adapter=adapter,
                  config={"path": str(bobs / name), "mode": "readonly"})  # fmt: skip
        t.refused(t.alice, "data/export", "path_not_allowed", input=str(bobs / name),
                  output="o.jsonl")  # fmt: skip
    for name in ("data/read", "data/list", "data/export"):
        params = {"collection": "memories", "id": "m1"} if name == "data/read" else {
            "collection": "memories"}  # fmt: skip
        if name == "data/export":
            params["output"] = "o.jsonl"
        # Not shared with her: his handles are as unknown to her as ghosts (no owner named).
        t.refused(t.alice, name, "handle_not_found", dbHandle=handle, **params)
        t.refused(
            t.alice, name, "handle_not_found", dbHandle=json_handle, **{**params, "collection": "c"}
        )
    # Other actors' handles are not even listed.
    listed = t.ok(t.alice, "data/list-handles")["handles"]
    assert [h["handle"] for h in listed] == ["default"]
    alice_never_saw(t)
    bob_still_has(t, handle)


# -- 3. take over another actor's database ---------------------------------------------------------


def test_3_ownership_and_aliases_cannot_be_taken(tenants: Tenants) -> None:
    t = tenants
    handle = bob_strict(t)
    bobs = t.space("bob")
    mine = t.ok(t.alice, "data/open", adapter="sqlite",
                config={"path": "mine.sqlite", "mode": "create"})["dbHandle"]  # fmt: skip
    t.ok(t.alice, "data/create", dbHandle=mine, collection="c",
         data={"owner": "alice", "isolationMode": "strict"})  # fmt: skip
    # No ownership file to forge: the owner is in the handle store; bob's space is not writable.
    for target in ("bob.sqlite.owner", "bob.sqlite", "anything.jsonl"):
        t.refused(t.alice, "data/export", "path_not_allowed", dbHandle=mine, collection="c",
                  output=str(bobs / target), overwrite=True)  # fmt: skip
    assert not (bobs / "bob.sqlite.owner").exists()
    # His alias: aliases are per actor, so her "bobwork" (durable or memory) is a name of her own
    # that neither re-points his nor reaches his database.
    for adapter, config in (("sqlite", {"path": "trap.sqlite", "mode": "create"}),
                            ("memory", {})):  # fmt: skip
        trap = t.ok(t.alice, "data/open", adapter=adapter, alias="bobwork", config=config)
        t.ok(t.alice, "data/create", dbHandle="bobwork", collection="memories",
             data={"fact": "planted"})  # fmt: skip
        listed = t.ok(t.alice, "data/list", dbHandle="bobwork", collection="memories")
        assert listed["dbHandle"] == trap["dbHandle"] and listed["count"] == 1
    # Nor can she claim to be the owner, or close his handle.
    t.refused(t.alice, "data/open", "permission_denied", adapter="sqlite",
              config={"path": "x.sqlite", "mode": "create"},
              permissions={"owner": "bob", "isolationMode": "strict"})  # fmt: skip
    assert "bob" not in t.refused(t.alice, "data/close", "handle_not_found", dbHandle=handle)
    t.refused(t.alice, "data/grant", "handle_not_found", dbHandle=handle, actor="alice")
    # Bob's next writes land in his database.
    t.ok(t.bob, "data/create", dbHandle="bobwork", collection="memories", id="m2", data={})
    assert t.ok(t.bob, "data/list", dbHandle="bobwork", collection="memories")["count"] == 2
    bob_still_has(t, handle)
    # Memory database names belong to their actor too.
    a = t.ok(t.alice, "data/open", adapter="memory", config={"name": "scratch"})["dbHandle"]
    b = t.ok(t.bob, "data/open", adapter="memory", config={"name": "scratch"})["dbHandle"]
    t.ok(t.bob, "data/create", dbHandle=b, collection="c", data={"fact": SECRET})
    assert t.ok(t.alice, "data/list", dbHandle=a, collection="c")["count"] == 0
    t.refused(t.alice, "data/list", "handle_not_found", dbHandle=b, collection="c")


# -- 4. escape restrictions by opening again -------------------------------------------------------


def test_4_rights_attach_to_the_database(tenants: Tenants, tmp_path: Path) -> None:
    t = tenants
    shared = tmp_path / "tenants.sqlite"
    full = t.ok(t.admin, "data/open", adapter="sqlite",
                config={"path": str(shared), "mode": "create"})["dbHandle"]  # fmt: skip
    for rid, tenant in (("a1", "a"), ("a2", "a"), ("b1", "b")):
        t.ok(
            t.admin,
            "data/create",
            dbHandle=full,
            collection="rows",
            id=rid,
            data={"tenant": tenant},
        )
    t.ok(t.admin, "data/create", dbHandle=full, collection="secrets", id="s", data={})
    # Before it is shared, the file is not alice's to open at all.
    t.refused(t.alice, "data/open", "path_not_allowed", adapter="sqlite",
              config={"path": str(shared)})  # fmt: skip
    t.ok(t.admin, "data/grant", dbHandle=full, actor="alice", access="write",
         permissions={"rowFilter": {"tenant": "a"}, "deniedCollections": ["secrets"]})  # fmt: skip
    for attempt in ({}, {"preset": "GOD_MODE"}, {"permissions": {"read": True, "write": True}}):
        handle = t.ok(t.alice, "data/open", adapter="sqlite", config={"path": str(shared)},
                      **attempt)["dbHandle"]  # fmt: skip
        listed = t.ok(t.alice, "data/list", dbHandle=handle, collection="rows")
        assert sorted(i["id"] for i in listed["items"]) == ["a1", "a2"], attempt
        t.refused(t.alice, "data/list", "permission_denied", dbHandle=handle, collection="secrets")
        t.refused(t.alice, "data/truncate", "permission_denied", dbHandle=handle, collection="rows")
        t.refused(t.alice, "data/export", "permission_denied", dbHandle=handle, collection="rows",
                  output="rows.jsonl")  # fmt: skip
        t.refused(t.alice, "data/export", {"permission_denied", "access_denied"},
                  input=str(shared), collection="rows", output="rows.jsonl")  # fmt: skip
    # The administrator's unrestricted handle is not a way around the grant.
    t.refused(t.alice, "data/list", "access_denied", dbHandle=full, collection="rows")
    # Soft isolation: read-only for others however they open it.
    team = t.ok(t.bob, "data/open", adapter="sqlite", preset="COLLABORATIVE",
                config={"path": "team.sqlite", "mode": "create"})["dbHandle"]  # fmt: skip
    t.ok(t.bob, "data/create", dbHandle=team, collection="notes", id="n", data={})
    for attempt in ({}, {"preset": "GOD_MODE"}):
        other = t.ok(t.alice, "data/open", adapter="sqlite",
                     config={"path": str(t.space("bob") / "team.sqlite")}, **attempt)["dbHandle"]  # fmt: skip
        assert t.ok(t.alice, "data/read", dbHandle=other, collection="notes", id="n")["found"]
        t.refused(t.alice, "data/delete", "permission_denied", dbHandle=other, collection="notes",
                  id="n")  # fmt: skip
    t.refused(t.alice, "data/delete", "access_denied", dbHandle=team, collection="notes", id="n")
    # A revoked grant closes the grantee's handles and ends its access.
    revoked = t.ok(t.admin, "data/revoke", dbHandle=full, actor="alice")
    assert revoked["revoked"] is True and revoked["handlesClosed"] >= 3
    left = t.ok(t.alice, "data/list-handles")["handles"]
    assert not [h for h in left if h["config"].get("path") == str(shared.resolve())]
    t.refused(t.alice, "data/open", "path_not_allowed", adapter="sqlite",
              config={"path": str(shared)})  # fmt: skip
    assert t.ok(t.admin, "data/list", dbHandle=full, collection="rows")["count"] == 3


# -- 5. planted links -----------------------------------------------------------------------------


def test_5_no_file_is_created_or_written_through_a_link(tenants: Tenants, tmp_path: Path) -> None:
    t = tenants
    space = t.space("alice")
    mine = t.ok(t.alice, "data/open", adapter="sqlite",
                config={"path": "mine.sqlite", "mode": "create"})["dbHandle"]  # fmt: skip
    t.ok(t.alice, "data/create", dbHandle=mine, collection="c", id="r", data={})
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    # Links planted in alice's space (by someone with a shell on the host).
    (space / "out.jsonl").symlink_to(t.home / "admin.token")
    (space / "victim.jsonl").symlink_to(victim)
    (space / ".partial.jsonl.partial").symlink_to(victim)
    (space / "db-link.sqlite").symlink_to(outside / "new.sqlite")
    (space / "sub").symlink_to(outside, target_is_directory=True)
    (space / "rejects.jsonl").symlink_to(victim)
    (space / "in.jsonl").write_text('{"id": "a"}\nnot json\n')
    before = t.state()
    t.refused(t.alice, "data/export", "path_not_allowed", dbHandle=mine, collection="c",
              output="out.jsonl", overwrite=True)  # fmt: skip
    t.refused(t.alice, "data/export", "path_not_allowed", dbHandle=mine, collection="c",
              output="victim.jsonl", overwrite=True)  # fmt: skip
    for name in ("db-link.sqlite", "sub/new.sqlite"):
        t.refused(t.alice, "data/open", "path_not_allowed", adapter="sqlite",
                  config={"path": name, "mode": "create"})  # fmt: skip
        t.refused(t.alice, "data/import", "path_not_allowed", input="in.jsonl", output=name)
    t.refused(t.alice, "data/import", "path_not_allowed", input="in.jsonl", dbHandle=mine,
              onError="skip", rejects="rejects.jsonl")  # fmt: skip
    # A link at the export's partial name is replaced, never followed.
    done = t.ok(t.alice, "data/export", dbHandle=mine, collection="c", output="partial.jsonl")
    assert done["exported"] == 1 and not (space / ".partial.jsonl.partial").exists()
    assert victim.read_text() == "untouched\n" and t.state() == before
    assert not list(outside.iterdir())
    # Every file created for her is private; an existing one is replaced only when asked.
    t.ok(t.alice, "data/import", input="in.jsonl", dbHandle=mine, onError="skip",
         rejects="own-rejects.jsonl")  # fmt: skip
    t.ok(t.alice, "data/open", adapter="json", config={"path": "j.json", "mode": "create"})
    for name in ("mine.sqlite", "mine.sqlite-wal", "partial.jsonl", "own-rejects.jsonl", "j.json"):
        if (space / name).exists():
            assert stat.S_IMODE(os.stat(space / name).st_mode) & 0o077 == 0, name
    t.refused(t.alice, "data/export", "file_exists", dbHandle=mine, collection="c",
              output="partial.jsonl")  # fmt: skip
    assert t.ok(t.alice, "data/export", dbHandle=mine, collection="c", output="partial.jsonl",
                overwrite=True)["exported"] == 1  # fmt: skip


# -- 6. destroy shared data and history ------------------------------------------------------------


def test_6_the_shared_default_and_its_history_are_safe(tenants: Tenants) -> None:
    t = tenants
    t.ok(t.admin, "data/create", collection="shared", id="keep", data={"v": 1})
    for name, params in (
        ("data/clear", {}),
        ("data/truncate", {"collection": "shared"}),
        ("data/vacuum", {}),
        ("data/delete", {"collection": "shared", "id": "keep"}),
        ("data/batch", {"operations": [{"op": "delete", "collection": "shared", "id": "keep"}]}),
    ):
        error = t.refused(t.alice, name, "permission_denied", dbHandle="default", **params)
        assert "DBHANDLES_DEFAULT_ACCESS" in error
    # Reading and adding to the shared default stays open to every actor.
    t.ok(t.alice, "data/create", collection="shared", id="mine", data={"v": 2})
    assert t.ok(t.alice, "data/read", collection="shared", id="keep")["found"] is True
    # The system tables are not collections, and the log (and WAL) are not files to overwrite.
    t.refused(t.alice, "data/list", "invalid_params", collection="_dbh_audit")
    wal = t.home / "default.sqlite-wal"
    for target in (wal, t.home / "default.sqlite-shm", t.home / "default.sqlite"):
        t.refused(t.alice, "data/export", "path_not_allowed", dbHandle="default",
                  collection="shared", output=str(target), overwrite=True)  # fmt: skip
    assert wal.exists()
    assert t.ok(t.admin, "data/read", collection="shared", id="keep")["found"] is True
    assert any(e["command"] == "data/clear" and e["code"] == "permission_denied"
               for e in t.audit(actor="alice"))  # fmt: skip


# -- 7. database servers the operator did not choose ----------------------------------------------


def test_7_only_listed_database_servers(tenants: Tenants) -> None:
    pytest.importorskip("psycopg")
    t = tenants
    for config in (
        {"host": "/var/run/postgresql", "user": "postgres", "password": "x"},
        {"url": "postgresql://postgres@/postgres?host=/tmp"},
        {"url": "postgresql://postgres@127.0.0.1:5432/postgres"},  # no password: ~/.pgpass
        {"url": "postgresql://postgres:x@127.0.0.1:5432/postgres"},  # not listed
        {"url": "postgresql://postgres:x@127.0.0.1:1/postgres?sslkey=/etc/hostname"},
        {"url": "postgresql://postgres:x@127.0.0.1:1,10.0.0.1:5432/postgres"},
        {"url": "postgresql://postgres:x@127.0.0.1:1/postgres?service=admin"},
        {"host": "127.0.0.1", "port": 22, "user": "u", "password": "x"},
    ):
        error = t.refused(t.alice, "data/open", "server_not_allowed", adapter="postgres",
                          config=config)  # fmt: skip
        assert "refused" not in error and "timeout" not in error.lower()
    # A listed server that does not answer: the error does not say how (no port scan).
    error = t.refused(t.alice, "data/open", {"storage_error", "storage_busy", "database_not_found"},
                      adapter="postgres",
                      config={"host": "127.0.0.1", "port": 1, "user": "u", "password": "x"})  # fmt: skip
    assert "refused" not in error and "127.0.0.1" not in error and ":1" not in error
    # A third-party kind of database a non-admin cannot name at all is refused the same way.


# -- 8. leave no trace -------------------------------------------------------------------------------


def test_8_every_request_that_reached_a_command_is_audited(
    tenants: Tenants, tmp_path: Path
) -> None:
    from websockets.sync.client import connect

    t = tenants
    wrong = "dbh_0123456789ab_" + "w" * 43
    assert t.http.post("/commands/data/list", json={}).status_code == 401
    assert t.http.post("/commands/data/clear", json={},
                       headers={"Authorization": f"Bearer {wrong}"}).status_code == 401  # fmt: skip
    assert t.http.post("/commands/data/list", json={},
                       headers={"Authorization": "Basic eDp5"}).status_code == 401  # fmt: skip
    assert t.http.post("/commands/data/list", json={"collection": "c"},
                       headers={"Authorization": f"Bearer {t.alice}",
                                "Origin": "https://evil.example"}).status_code == 403  # fmt: skip
    ws_url = t.server.url.replace("http://", "ws://") + "/ws"
    with connect(f"{ws_url}?token={wrong}", open_timeout=10) as socket:
        assert orjson.loads(socket.recv(timeout=10))["code"] == "unauthorized"
    # A refused path names the real target it was refused on.
    t.refused(t.alice, "data/import", "path_not_allowed", input=f"../../{t.home.name}/admin.token",
              output="x.sqlite")  # fmt: skip
    # jtag import-jsonl (in-process, the local administrator) is audited like data/import.
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "a"}\n')
    proc = subprocess.run(
        [str(Path(__file__).resolve().parent.parent / "jtag"), "import-jsonl", f"--input={source}",
         f"--output={tmp_path / 'o.sqlite'}", "--progress=none"],
        env=jtag_env(t.home), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    entries = t.audit()
    refusals = {(e["actor"], e["command"], e["code"]) for e in entries if e["operation"] == "auth"}
    assert ("anonymous", "data/list", "unauthorized") in refusals
    assert ("token:0123456789ab", "data/clear", "unauthorized") in refusals
    assert ("invalid-token", "data/list", "unauthorized") in refusals
    assert ("token:0123456789ab", "(websocket)", "unauthorized") in refusals
    alice_id = t.alice.split("_")[1]
    assert (f"token:{alice_id}", "data/list", "forbidden") in refusals
    assert all(wrong.split("_", 2)[2] not in orjson.dumps(e).decode() for e in entries)
    stolen = next(e for e in entries if e["command"] == "data/import" and e["actor"] == "alice")
    assert stolen["code"] == "path_not_allowed"
    assert str((t.home / "admin.token").resolve()) in (stolen["target"] or "")
    imported = [e for e in entries if e["command"] == "data/import" and e["success"]]
    assert imported and imported[0]["handle"] not in (None, "default")
    assert str(source.resolve()) in (imported[0]["target"] or "")
