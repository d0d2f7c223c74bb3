"""Issue 12, the second round: what the outside check left open at the tenant boundary.

Each test runs as a non-admin actor (``alice`` or ``bob``, ordinary tokens) against a real
``jtag serve`` (``test_security_tenants.serve_tenants``), one whole kind per test:

1. losing access takes effect at once, also for the events of an open WebSocket;
2. a row filter is not an oracle for the ids it hides;
3. ``data/open``'s answer for a path outside the caller's places does not depend on what is there;
4. ``jtag import-jsonl`` / ``export-jsonl`` run as the actor of ``--token``, through the server;
5. names (aliases, memory databases) belong to actors: nobody squats or reaches another's;
6. jobs, query cursors and the audit log of other actors are out of reach.

See docs/security.md, "Multi-tenant servers".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.test_security_tenants import Tenants, serve_tenants

pytestmark = pytest.mark.needs_server


@pytest.fixture
def t(tmp_path: Path) -> Iterator[Tenants]:
    yield from serve_tenants(tmp_path)


@contextmanager
def subscribed(t: Tenants, token: str) -> Iterator[Socket]:
    """A WebSocket of the actor of ``token``, subscribed to ``data:*``."""
    from websockets.sync.client import connect

    url = t.server.url.replace("http://", "ws://") + f"/ws?token={token}"
    with connect(url, open_timeout=10) as socket:
        yield Socket(socket)


class Socket:
    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.next("hello")
        self.socket.send(orjson.dumps({"type": "subscribe", "id": "s", "pattern": "data:*"}))
        self.next("subscribed")

    def next(self, kind: str | None = None) -> dict[str, Any]:
        """The next message (of type ``kind``, if given: it must be that)."""
        message = dict(orjson.loads(self.socket.recv(timeout=20)))
        assert kind is None or message["type"] == kind, message
        return message

    def rest(self) -> list[dict[str, Any]]:
        """Every message until the server closes the socket."""
        from websockets.exceptions import ConnectionClosed

        messages = []
        try:
            while True:
                messages.append(dict(orjson.loads(self.socket.recv(timeout=30))))
        except ConnectionClosed:
            return messages


def shared_with_bob(t: Tenants, **grant: Any) -> str:
    """Alice's database ``shared.sqlite``, shared with bob (read unless ``grant`` says more)."""
    handle = str(t.ok(t.alice, "data/open", adapter="sqlite",
                      config={"path": "shared.sqlite", "mode": "create"})["dbHandle"])  # fmt: skip
    t.ok(t.alice, "data/grant", dbHandle=handle, actor="bob", **grant)
    return handle


def marker(t: Tenants, rid: str) -> None:
    """A write every actor may see (the shared default): events after it came after it."""
    t.ok(t.admin, "data/create", collection="public", id=rid, data={})


# -- 1. losing access is immediate ------------------------------------------------------------------


def test_1_revoking_access_stops_events_at_once(t: Tenants) -> None:
    handle = shared_with_bob(t)
    with subscribed(t, t.bob) as bob:
        t.ok(t.alice, "data/create", dbHandle=handle, collection="notes", id="seen", data={})
        assert bob.next("event")["payload"]["id"] == "seen"  # his decision is cached now
        # A narrower grant: the collection it denies stops at once (and with it, borrowing her
        # handle: rights limited to some collections apply only to his own handles).
        t.ok(t.alice, "data/grant", dbHandle=handle, actor="bob",
             permissions={"deniedCollections": ["secret"]})  # fmt: skip
        t.ok(t.alice, "data/create", dbHandle=handle, collection="secret", id="narrowed", data={})
        marker(t, "m1")
        assert bob.next("event")["payload"]["id"] == "m1"
        # Revoked: nothing more of her database reaches him, from the moment revoke returns.
        t.ok(t.alice, "data/grant", dbHandle=handle, actor="bob", access="read")
        t.ok(t.alice, "data/create", dbHandle=handle, collection="notes", id="again", data={})
        assert bob.next("event")["payload"]["id"] == "again"
        assert t.ok(t.alice, "data/revoke", dbHandle=handle, actor="bob")["revoked"] is True
        t.ok(t.alice, "data/create", dbHandle=handle, collection="notes", id="revoked", data={})
        marker(t, "m2")
        assert bob.next("event")["payload"]["id"] == "m2"
        # Her isolation changed to strict (reopening her own database): the same.
        t.ok(t.alice, "data/grant", dbHandle=handle, actor="bob", access="read")
        t.ok(t.alice, "data/create", dbHandle=handle, collection="notes", id="third", data={})
        assert bob.next("event")["payload"]["id"] == "third"
        t.ok(t.alice, "data/revoke", dbHandle=handle, actor="bob")
        soft = t.ok(t.alice, "data/open", adapter="sqlite", preset="COLLABORATIVE",
                    config={"path": "shared.sqlite"})["dbHandle"]  # fmt: skip
        t.ok(t.alice, "data/create", dbHandle=soft, collection="notes", id="soft", data={})
        assert bob.next("event")["payload"]["id"] == "soft"  # soft: others may read
        t.ok(t.alice, "data/open", adapter="sqlite", preset="PERSONA_KNOWLEDGE",
             config={"path": "shared.sqlite"})  # fmt: skip
        t.ok(t.alice, "data/create", dbHandle=soft, collection="notes", id="strict", data={})
        marker(t, "m3")
        assert bob.next("event")["payload"]["id"] == "m3"
        # His token revoked: not one more event, then the socket is closed.
        token_id = t.bob.split("_")[1]
        t.ok(t.admin, "token/revoke", tokenId=token_id)
        marker(t, "m4")
        rest = bob.rest()
        assert [m for m in rest if m["type"] == "event"] == [], rest
        assert rest and rest[-1]["code"] == "unauthorized"


# -- 2. a row filter hides ids, it does not reveal them ----------------------------------------------


def test_2_a_row_filter_is_no_oracle_for_hidden_ids(t: Tenants) -> None:
    full = t.ok(t.bob, "data/open", adapter="sqlite",
                config={"path": "tenants.sqlite", "mode": "create"})["dbHandle"]  # fmt: skip
    for rid, tenant in (("a1", "a"), ("b1", "b")):
        t.ok(t.bob, "data/create", dbHandle=full, collection="rows", id=rid,
             data={"tenant": tenant})  # fmt: skip
    t.ok(t.bob, "data/grant", dbHandle=full, actor="alice", access="write",
         permissions={"rowFilter": {"tenant": "a"}})  # fmt: skip
    mine = t.ok(t.alice, "data/open", adapter="sqlite",
                config={"path": str(t.space("bob") / "tenants.sqlite")})["dbHandle"]  # fmt: skip
    rows = {"dbHandle": mine, "collection": "rows"}
    # Every spelling of "this id" gets the answer a free id gets: hidden, taken and free alike.
    answers = []
    for rid in ("b1", "a1", "free"):
        answers.append((
            t.call(t.alice, "data/create", **rows, id=rid, data={"tenant": "a"})["code"],
            t.call(t.alice, "data/create", **rows, data={"id": rid, "tenant": "a"})["code"],
            t.call(t.alice, "data/batch", dbHandle=mine, operations=[
                {"op": "create", "collection": "rows", "id": rid, "data": {"tenant": "a"}}])["code"],
        ))  # fmt: skip
    assert answers == [("permission_denied",) * 3] * 3, answers
    for rid in ("b1", "free"):
        assert t.ok(t.alice, "data/read", **rows, id=rid)["found"] is False
        assert t.ok(t.alice, "data/delete", **rows, id=rid)["found"] is False
        assert t.call(t.alice, "data/update", **rows, id=rid, data={"x": 1})["code"] == (
            "record_not_found"
        )
        batch = t.call(t.alice, "data/batch", dbHandle=mine, operations=[
            {"op": "update", "collection": "rows", "id": rid, "data": {"x": 1}}])  # fmt: skip
        assert batch["code"] == "record_not_found"
    # Imports (which keep the ids of the file) do not run through a row filter at all.
    t.space("alice").mkdir(parents=True, exist_ok=True)
    (t.space("alice") / "in.jsonl").write_text('{"id": "b1", "tenant": "a"}\n')
    t.refused(t.alice, "data/import", "permission_denied", input="in.jsonl", dbHandle=mine)
    # New records get ids dbhandles chooses; bob's row is untouched.
    created = t.ok(t.alice, "data/create", **rows, data={"tenant": "a"})
    assert created["id"] not in ("a1", "b1")
    assert (
        t.ok(t.bob, "data/read", dbHandle=full, collection="rows", id="b1")["data"]["tenant"] == "b"
    )


# -- 3. data/open does not map other actors' files ---------------------------------------------------


def test_3_the_answer_outside_ones_places_does_not_depend_on_the_files(
    t: Tenants, tmp_path: Path
) -> None:
    bobs = t.space("bob")
    t.ok(t.bob, "data/open", adapter="sqlite", preset="PERSONA_KNOWLEDGE",
         config={"path": "strict.sqlite", "mode": "create"})  # fmt: skip
    t.ok(t.bob, "data/open", adapter="sqlite", config={"path": "plain.sqlite", "mode": "create"})
    (bobs / "unregistered.sqlite").write_bytes(b"")
    admins = tmp_path / "admin-only.sqlite"
    t.ok(t.admin, "data/open", adapter="sqlite", preset="PERSONA_KNOWLEDGE",
         config={"path": str(admins), "mode": "create"})  # fmt: skip
    targets = [bobs / "strict.sqlite", bobs / "plain.sqlite", bobs / "unregistered.sqlite",
               bobs / "missing.sqlite", admins, tmp_path / "missing.sqlite", Path("/etc/hostname"),
               "../bob/strict.sqlite", "../bob/missing.sqlite"]  # fmt: skip
    answers = set()
    for target in targets:
        for mode in ("readonly", "readwrite", "create"):
            body = t.call(t.alice, "data/open", adapter="sqlite",
                          config={"path": str(target), "mode": mode})  # fmt: skip
            assert body["success"] is False
            answers.add((body["code"], body["error"]))
            assert "bob" not in body["error"] and "admin" not in body["error"].lower()
    assert len(answers) == 1, answers
    assert next(iter(answers))[0] == "path_not_allowed"
    assert not (bobs / "missing.sqlite").exists() and not (tmp_path / "missing.sqlite").exists()


# -- 4. the JSONL commands run as the actor of the token -------------------------------------------


def test_4_jsonl_commands_run_as_the_tokens_actor(t: Tenants, tmp_path: Path) -> None:
    from tests.servers import envelope_of, jtag_env, run_jtag

    env = jtag_env(t.home)
    space = t.space("alice")
    space.mkdir(parents=True, exist_ok=True)
    (space / "in.jsonl").write_text('{"id": "a", "v": 1}\n{"id": "b", "v": 2}\n')
    done = envelope_of(run_jtag("import-jsonl", "--input=in.jsonl", "--output=mine.sqlite",
                                "--progress=none", f"--token={t.alice}", env=env))  # fmt: skip
    assert done["success"] is True and done["imported"] == 2, done
    assert done["output"] == "mine.sqlite"  # her space, shown by its name there
    assert (space / "mine.sqlite").is_file()  # the server resolved it there
    handles = t.ok(t.alice, "data/list-handles")["handles"]
    assert done["dbHandle"] in [h["handle"] for h in handles]
    exported = envelope_of(run_jtag("export-jsonl", f"--db-handle={done['dbHandle']}",
                                    "--output=out.jsonl", f"--token={t.alice}", env=env))  # fmt: skip
    assert exported["success"] is True and exported["exported"] == 2, exported
    assert (space / "out.jsonl").exists()
    # Her rights, not the local administrator's: the home and bob's files stay out of reach.
    before = t.state()
    for args in (("import-jsonl", f"--input={t.home / 'admin.token'}", "--output=x.sqlite",
                  "--on-error=skip"),
                 ("export-jsonl", "--db-handle=default", "--collection=c",
                  f"--output={t.home / 'server.json'}", "--overwrite")):  # fmt: skip
        refused = envelope_of(run_jtag(*args, f"--token={t.alice}", env=env))
        assert refused["code"] == "path_not_allowed", refused
    proc = run_jtag("import-jsonl", "--input=in.jsonl", "--output=y.sqlite",
                    env={**env, "JTAG_TOKEN": t.alice})  # fmt: skip
    assert envelope_of(proc)["success"] is True and (space / "y.sqlite").exists()
    assert t.state() == before
    entries = t.audit(actor="alice")
    assert {"data/import", "data/export"} <= {e["command"] for e in entries}
    # A token and no server for the home: refused loudly, nothing runs in-process.
    other = tmp_path / "no-server"
    source = tmp_path / "plain.jsonl"
    source.write_text('{"id": "a"}\n')
    for args in (("import-jsonl", f"--input={source}", f"--output={tmp_path / 'z.sqlite'}"),
                 ("export-jsonl", "--db-handle=default", f"--output={tmp_path / 'z.jsonl'}")):  # fmt: skip
        proc = run_jtag(*args, f"--token={t.alice}", env=jtag_env(other))
        assert proc.returncode == 1
        assert envelope_of(proc)["code"] == "server_unreachable"
    assert not (tmp_path / "z.sqlite").exists() and not (tmp_path / "z.jsonl").exists()


# -- 5. names belong to actors ------------------------------------------------------------------------


def test_5_aliases_and_memory_names_are_per_actor(t: Tenants, tmp_path: Path) -> None:
    # Alice points the well-known names first; bob's own names are not blocked by hers.
    for name in ("primary", "training"):
        t.ok(t.alice, "data/open", adapter="sqlite", alias=name,
             config={"path": f"{name}.sqlite", "mode": "create"})  # fmt: skip
        t.ok(t.alice, "data/create", dbHandle=name, collection="c", id="hers", data={})
    for name in ("primary", "training"):
        bobs = t.ok(t.bob, "data/open", adapter="sqlite", alias=name,
                    config={"path": f"{name}.sqlite", "mode": "create"})["dbHandle"]  # fmt: skip
        t.ok(t.bob, "data/create", dbHandle=name, collection="c", id="his", data={})
        listed = t.ok(t.bob, "data/list", dbHandle=name, collection="c")
        assert listed["dbHandle"] == bobs and [i["id"] for i in listed["items"]] == ["his"]
        assert [i["id"] for i in t.ok(t.alice, "data/list", dbHandle=name, collection="c")[
            "items"]] == ["hers"]  # fmt: skip
    # Cursors named through an own alias keep working (the alias is resolved as its actor names it).
    opened = t.http.post("/commands/data/query-open",
                         json={"dbHandle": "training", "collection": "c", "pageSize": 1},
                         headers={"Authorization": f"Bearer {t.bob}", "X-Session-Id": "q"}).json()  # fmt: skip
    page = t.http.post("/commands/data/query-next",
                       json={"dbHandle": "training", "queryHandle": opened["queryHandle"]},
                       headers={"Authorization": f"Bearer {t.bob}", "X-Session-Id": "q"}).json()  # fmt: skip
    assert page["success"] is True and page["dbHandle"] == bobs, page
    # Each sees its own aliases by the names it gave; no one sees the other's.
    for token in (t.alice, t.bob):
        shown = [a for h in t.ok(token, "data/list-handles")["handles"] for a in h["aliases"]]
        assert sorted(shown) == ["primary", "training"]
    # An administrator's alias is its own too: another actor's use of it is answered as an
    # unknown name (handle_not_found), and it blocks no one from pointing the same name.
    t.ok(t.admin, "data/open", adapter="sqlite", alias="ops",
         config={"path": str(tmp_path / "ops.sqlite"), "mode": "create"})  # fmt: skip
    t.refused(t.alice, "data/list", "handle_not_found", dbHandle="ops", collection="c")
    mine = t.ok(t.alice, "data/open", adapter="memory", alias="ops", config={})["dbHandle"]
    assert t.ok(t.alice, "data/list", dbHandle="ops", collection="c")["dbHandle"] == mine
    assert t.ok(t.admin, "data/list", dbHandle="ops", collection="c")["dbHandle"] != mine
    # Memory names: nobody spells another actor's ('/' is reserved), administrators included.
    b = t.ok(t.bob, "data/open", adapter="memory", config={"name": "notes"})["dbHandle"]
    t.ok(t.bob, "data/create", dbHandle=b, collection="c", id="secret", data={})
    for token in (t.admin, t.alice):
        for name in ("bob/notes", "bob/../bob/notes", "/notes"):
            t.refused(token, "data/open", "invalid_params", adapter="memory",
                      config={"name": name})  # fmt: skip
    admins = t.ok(t.admin, "data/open", adapter="memory", config={"name": "notes"})["dbHandle"]
    assert t.ok(t.admin, "data/list", dbHandle=admins, collection="c")["count"] == 0
    assert t.ok(t.bob, "data/list", dbHandle=b, collection="c")["count"] == 1


# -- 6. other actors' jobs, cursors, grants and the audit log ------------------------------------


def test_6_jobs_cursors_grants_and_the_log_of_others_are_out_of_reach(t: Tenants) -> None:
    bobs = t.ok(t.bob, "data/open", adapter="sqlite",
                config={"path": "b.sqlite", "mode": "create"})["dbHandle"]  # fmt: skip
    t.ok(t.bob, "data/create", dbHandle=bobs, collection="c", id="r", data={"fact": "x"})
    job = t.ok(t.bob, "data/job-start", command="data/export",
               params={"dbHandle": bobs, "collection": "c", "output": "b.jsonl"})["jobId"]  # fmt: skip
    for name in ("data/job-status", "data/job-cancel"):
        t.refused(t.alice, name, "job_not_found", jobId=job)
    assert all(j["actor"] == "alice" for j in t.ok(t.alice, "data/job-list")["jobs"])
    # A job runs as the actor that started it: no wider than its commands.
    stolen = t.ok(t.alice, "data/job-start", command="data/import",
                  params={"input": str(t.home / "admin.token"), "output": "x.sqlite"})  # fmt: skip
    status = t.finished_job(t.alice, stolen["jobId"])
    assert status["status"] == "failed" and status["error"]["code"] == "path_not_allowed"
    # His query cursor is not hers, even with its id (sessions belong to their actor).
    cursor = t.http.post("/commands/data/query-open", json={"dbHandle": bobs, "collection": "c"},
                         headers={"Authorization": f"Bearer {t.bob}", "X-Session-Id": "s1"}).json()  # fmt: skip
    for session in ("s1", None):
        headers = {"Authorization": f"Bearer {t.alice}"}
        if session is not None:
            headers["X-Session-Id"] = session
        body = t.http.post("/commands/data/query-next", json={"queryHandle": cursor["queryHandle"]},
                           headers=headers).json()  # fmt: skip
        assert body["code"] in ("cursor_not_found", "handle_not_found"), body
    # Grants and the log: his grants are his to list; the audit log is the administrators'.
    t.refused(t.alice, "data/list-grants", "access_denied")
    t.refused(t.alice, "data/list-grants", "handle_not_found", dbHandle=bobs)
    t.refused(t.alice, "data/audit", "forbidden")
    t.refused(t.alice, "data/audit", "forbidden", actor="bob")
