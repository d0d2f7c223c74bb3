"""Issue 12, the last outside checks: hard links, the Host header at every door, stored owners,
and one error code for one kind of refused file.

Each test runs as a non-admin actor (``alice``, ``bob``: ordinary tokens) against a real
``jtag serve``:

1. a hard link to a database the service uses (the home's default database, its ``-wal``, a
   registered database, a JSON-adapter database) refuses the link, never the database under the
   name the service knows it by (also after a restart), and never shows a non-admin the home;
2. the owner of a file someone linked elsewhere keeps using it by its own name, and is never told
   that its own space is not its own;
3. every door (command routes, the WebSocket upgrade, the dashboard's files, ``/health``) answers
   several ``Host`` headers, or none in HTTP/1.1, with one 400 ``invalid_params`` envelope;
4. ``permissions.owner`` is answered only as stored: a non-admin naming an owner that is not the
   stored one is refused;
5. a file the caller may not use is ``path_not_allowed`` through every door (open, import input,
   rejects, export output); ``invalid_params`` stays for a path no file system takes.

See docs/security.md, "Multi-tenant servers" and "One name per file".
"""

from __future__ import annotations

import os
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.test_security_tenants import Tenants, serve_tenants, start

pytestmark = pytest.mark.needs_server


@pytest.fixture
def t(tmp_path: Path) -> Iterator[Tenants]:
    """``serve_tenants``, also stopping a server ``restart`` started."""
    for world in serve_tenants(tmp_path):
        for actor in ("alice", "bob"):  # the data spaces exist, for links made from a shell
            world.space(actor).mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            yield world
        finally:
            world.server.__exit__()


def restart(t: Tenants) -> None:
    """Stop the server and start a new one on the same home and port (its tokens are kept), so
    nothing of the first process's memory (open connections, names it used) helps."""
    t.server.stop()
    server = start(t.home, DBHANDLES_POSTGRES_SERVERS="127.0.0.1:1")
    server.port, server.url = t.server.port, t.server.url
    t.server = server.__enter__()


def words(t: Tenants, body: dict[str, Any]) -> str:
    """An error's words, checked never to name the home (where it is is not a non-admin's)."""
    text = str(body["error"])
    for home in (str(t.home), os.path.realpath(t.home)):
        assert f"{home}/" not in text and not text.endswith(home), body
    return text


def own_database(t: Tenants, token: str, name: str, adapter: str = "sqlite") -> str:
    """A database ``name`` in the token's data space with one record, its handle closed again."""
    handle = t.ok(token, "data/open", adapter=adapter,
                  config={"path": name, "mode": "create"})["dbHandle"]  # fmt: skip
    t.ok(token, "data/create", dbHandle=handle, collection="c", id="r1", data={"s": "mine"})
    t.ok(token, "data/close", dbHandle=handle)
    return handle


# -- 1. a link to the default database refuses the link, not the database --------------------------


def test_1_a_link_to_the_default_database_refuses_the_link_only(t: Tenants) -> None:
    t.ok(t.alice, "data/create", collection="c", id="before", data={"n": 1})
    space = t.space("alice")
    default = t.home / "default.sqlite"
    os.link(default, space / "mine.sqlite")
    wal = Path(f"{default}-wal")
    if wal.exists():
        os.link(wal, space / "wal.jsonl")
    for _ in ("running", "restarted"):
        # The default database works under its own name for everyone, the first process and a
        # new one (which never had a connection open when the link appeared).
        t.ok(t.alice, "data/create", collection="c", data={"n": 2})
        assert t.ok(t.alice, "data/read", collection="c", id="before")["data"]["n"] == 1
        assert t.ok(t.admin, "data/count", collection="c")["total"] >= 2
        # The link is refused, by every door, with words about the link and no home path.
        body = t.call(t.alice, "data/open", adapter="sqlite", config={"path": "mine.sqlite"})
        assert body["code"] == "path_not_allowed", body
        assert "hard link" in words(t, body) and "outside" not in words(t, body)
        body = t.call(t.alice, "data/open", adapter="json", config={"path": "mine.sqlite"})
        assert body["code"] == "path_not_allowed", body
        words(t, body)
        body = t.call(t.alice, "data/import", dbHandle="default", collection="x",
                      input="mine.sqlite")  # fmt: skip
        assert body["code"] == "path_not_allowed", body
        words(t, body)
        if (space / "wal.jsonl").exists() and (space / "wal.jsonl").stat().st_nlink > 1:
            # (Once SQLite deletes the -wal at a checkpoint, the link is an ordinary file.)
            body = t.call(t.alice, "data/import", dbHandle="default", collection="x",
                          input="wal.jsonl")  # fmt: skip
            assert body["code"] == "path_not_allowed", body
            words(t, body)
        body = t.call(t.alice, "data/export", dbHandle="default", collection="c",
                      output="mine.sqlite")  # fmt: skip
        assert body["code"] == "path_not_allowed", body
        words(t, body)
        # An administrator naming the link is refused the same way, the database never.
        body = t.call(t.admin, "data/open", adapter="sqlite",
                      config={"path": str(space / "mine.sqlite")})  # fmt: skip
        assert body["code"] == "path_not_allowed" and "hard link" in body["error"], body
        restart(t)
    assert t.ok(t.admin, "data/read", collection="c", id="before")["data"]["n"] == 1


def test_1_a_link_to_the_default_databases_wal_leaves_the_database_working(t: Tenants) -> None:
    """Its side file linked elsewhere (with the database open, so the ``-wal`` exists) is that
    link's problem: the database keeps opening under its own name after a restart."""
    t.ok(t.alice, "data/create", collection="c", id="kept", data={"n": 1})
    wal = Path(f"{t.home / 'default.sqlite'}-wal")
    shm = Path(f"{t.home / 'default.sqlite'}-shm")
    assert wal.exists()  # the server holds its connections open: the database is in WAL mode
    for side in (wal, shm):
        if side.exists():
            os.link(side, t.space("alice") / f"{side.name[-3:]}.jsonl")
    restart(t)
    assert t.ok(t.alice, "data/read", collection="c", id="kept")["data"]["n"] == 1
    t.ok(t.alice, "data/create", collection="c", data={"n": 2})


def test_1_a_new_service_on_a_home_whose_wal_is_linked_elsewhere_starts(tmp_path: Path) -> None:
    """While the first service holds the default database open (its ``-wal`` and ``-shm`` exist),
    links to them elsewhere; a second service on the same home (another ``jtag``, a reconnect
    after idle release) opens the database under its own name, its side files included, and the
    links stay refused as data files."""
    from dbhandles import Service
    from dbhandles.errors import DbHandlesError

    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    elsewhere.mkdir()
    with Service(home=home) as first:
        first.execute("data/create", {"collection": "c", "id": "kept", "data": {"n": 1}})
        linked = []
        for suffix in ("-wal", "-shm"):
            side = Path(f"{home / 'default.sqlite'}{suffix}")
            assert side.exists()
            os.link(side, elsewhere / f"x{suffix[1:]}.jsonl")
            linked.append(elsewhere / f"x{suffix[1:]}.jsonl")
        with Service(home=home) as second:
            assert second.execute("data/read", {"collection": "c", "id": "kept"})["found"]
            second.execute("data/create", {"collection": "c", "data": {"n": 2}})
            for path in linked:
                with pytest.raises(DbHandlesError) as refused:
                    second.execute("data/import", {"dbHandle": "default", "collection": "x",
                                                   "input": str(path)})  # fmt: skip
                assert refused.value.code == "path_not_allowed", refused.value


def test_1_a_link_to_a_registered_database_is_refused_and_the_database_kept(
    t: Tenants,
) -> None:
    own_database(t, t.alice, "a.sqlite")
    own_database(t, t.alice, "notes.json", adapter="json")
    space = t.space("alice")
    os.link(space / "a.sqlite", space / "again.sqlite")
    os.link(space / "notes.json", space / "again.json")
    restart(t)
    for name, adapter in (("a.sqlite", "sqlite"), ("notes.json", "json")):
        handle = t.ok(t.alice, "data/open", adapter=adapter, config={"path": name})["dbHandle"]
        assert t.ok(t.alice, "data/read", dbHandle=handle, collection="c", id="r1")["data"]
    for name, adapter in (("again.sqlite", "sqlite"), ("again.json", "json")):
        body = t.call(t.alice, "data/open", adapter=adapter, config={"path": name})
        assert body["code"] == "path_not_allowed" and "hard link" in body["error"], body


# -- 2. the owner of a linked file keeps it ---------------------------------------------------------


def test_2_bobs_file_linked_into_alices_space_stays_bobs(t: Tenants) -> None:
    own_database(t, t.bob, "b.sqlite")
    os.link(t.space("bob") / "b.sqlite", t.space("alice") / "bb.sqlite")
    for _ in ("running", "restarted"):
        # Bob's own name is the name the service knows: it works, and is never "outside".
        handle = t.ok(t.bob, "data/open", adapter="sqlite", config={"path": "b.sqlite"})
        assert t.ok(t.bob, "data/read", dbHandle=handle["dbHandle"], collection="c",
                    id="r1")["data"]["s"] == "mine"  # fmt: skip
        # Alice's link is refused, naming neither bob nor his path.
        for params in ({"path": "bb.sqlite"}, {"path": "bb.sqlite", "mode": "readonly"}):
            body = t.call(t.alice, "data/open", adapter="sqlite", config=params)
            assert body["code"] == "path_not_allowed", body
            assert "bob" not in body["error"], body
        body = t.call(t.alice, "data/import", dbHandle="default", collection="x",
                      input="bb.sqlite")  # fmt: skip
        assert body["code"] == "path_not_allowed" and "bob" not in body["error"], body
        restart(t)


def test_2_an_unregistered_file_of_bobs_is_refused_about_the_link(t: Tenants) -> None:
    """A file bob's space holds but the service never opened (put there from a shell): no name of
    it is known, so neither is used; bob is told about the links, not that his space is not his."""
    bob_space = t.space("bob")
    with sqlite3.connect(bob_space / "raw.sqlite") as conn:
        conn.execute("create table t (x)")
    conn.close()
    (bob_space / "raw.jsonl").write_text('{"x": 1}\n')
    os.link(bob_space / "raw.sqlite", t.space("alice") / "r.sqlite")
    os.link(bob_space / "raw.jsonl", t.space("alice") / "r.jsonl")
    for name, params in (
        ("data/open", {"adapter": "sqlite", "config": {"path": "raw.sqlite"}}),
        ("data/import", {"dbHandle": "default", "collection": "x", "input": "raw.jsonl"}),
    ):
        body = t.call(t.bob, name, **params)
        assert body["code"] == "path_not_allowed", body
        assert "hard link" in body["error"] and "outside your data space" not in body["error"], body


# -- 3. the Host header at every door ---------------------------------------------------------------


def _raw(t: Tenants, request: str) -> tuple[int, str]:
    """Send ``request`` as written (httpx would merge or fix its headers); the status and body."""
    with socket.create_connection(("127.0.0.1", t.server.port), timeout=30) as conn:
        conn.sendall(request.encode("latin-1"))
        data = b""
        while not data.startswith(b"HTTP/1.1 101") and (chunk := conn.recv(65536)):
            data += chunk  # to the end, or only the head of an accepted upgrade
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode(errors="replace")


_UPGRADE = ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")  # fmt: skip


@pytest.mark.parametrize(
    "request_line",
    ["GET /ws HTTP/1.1", "GET /health HTTP/1.1", "GET / HTTP/1.1", "GET /app.js HTTP/1.1",
     "GET /openapi.json HTTP/1.1", "GET /commands HTTP/1.1", "POST /commands/data/list-handles HTTP/1.1"],
)  # fmt: skip
def test_3_every_door_answers_several_hosts_or_none_with_one_envelope(
    t: Tenants, request_line: str
) -> None:
    extra = _UPGRADE if "/ws" in request_line else "Connection: close\r\n"
    if request_line.startswith("POST"):
        extra += f"Authorization: Bearer {t.alice}\r\nContent-Length: 2\r\n"
    body_text = "{}" if request_line.startswith("POST") else ""
    for hosts, code, words_ in (
        ("Host: 127.0.0.1\r\nHost: evil.example\r\n", "invalid_params", "not several"),
        ("Host: 127.0.0.1\r\nHost: 127.0.0.1\r\n", "invalid_params", "not several"),
        ("", "invalid_params", "must carry a Host header"),
        ("Host: evil.example\r\n", "forbidden", "does not answer to"),  # the same kind's 403
    ):
        status, body = _raw(t, f"{request_line}\r\n{hosts}{extra}\r\n{body_text}")
        envelope = httpx.Response(200, content=body).json()
        assert status == (400 if code == "invalid_params" else 403), (request_line, hosts, body)
        assert envelope["success"] is False and envelope["code"] == code, envelope
        assert envelope["field"] == "Host" and words_ in envelope["error"], envelope
    # One Host the server answers to still works through that door.
    status, _ = _raw(t, f"{request_line}\r\nHost: 127.0.0.1\r\n{extra}\r\n{body_text}")
    assert status in (101, 200), (request_line, status)
    t.server.stop()
    assert "ERROR" not in t.server.output and "Traceback" not in t.server.output, t.server.output


# -- 4. permissions.owner is answered as stored -----------------------------------------------------


def test_4_a_non_admin_naming_an_owner_not_stored_is_refused(t: Tenants) -> None:
    handle = t.ok(t.bob, "data/open", adapter="sqlite",
                  config={"path": "b.sqlite", "mode": "create"})["dbHandle"]  # fmt: skip
    t.ok(t.bob, "data/grant", dbHandle=handle, actor="alice", access="write")
    path = str(t.space("bob") / "b.sqlite")
    for permissions in ({"owner": "alice"}, {"owner": "alice", "isolationMode": "strict"},
                        {"owner": "alice", "read": True}, {"owner": "carol"}):  # fmt: skip
        body = t.call(t.alice, "data/open", adapter="sqlite", config={"path": path},
                      permissions=permissions)  # fmt: skip
        assert body["code"] == "permission_denied", body
        assert body["field"] == "permissions.owner" and "permissions.owner" in body["error"], body
    # Naming the owner stored is no claim: accepted, and answered as stored
    # (tests/test_security_doors.py, 10).
    named = t.ok(t.alice, "data/open", adapter="sqlite", config={"path": path},
                 permissions={"owner": "bob"})  # fmt: skip
    assert named["owner"] == "bob" and named["permissions"]["owner"] == "bob", named
    # Without owner, the answer names none; the stored owner is still bob.
    opened = t.ok(t.alice, "data/open", adapter="sqlite", config={"path": path})
    assert (opened["permissions"] or {}).get("owner") is None, opened
    grants = t.ok(t.bob, "data/list-grants", dbHandle=handle)
    assert [g["actor"] for g in grants["grants"]] == ["alice"], grants
    # Its own new database: it is stored as the owner, and answered so.
    mine = t.ok(t.alice, "data/open", adapter="sqlite", config={"path": "a.sqlite", "mode": "create"},
                permissions={"owner": "alice"})  # fmt: skip
    assert mine["permissions"]["owner"] == "alice"
    again = t.ok(t.alice, "data/open", adapter="sqlite", config={"path": "a.sqlite"},
                 permissions={"owner": "alice"})  # fmt: skip
    assert again["permissions"]["owner"] == "alice"
    # Bob, not the owner of alice's database, cannot name himself either (no grant: not shared).
    body = t.call(t.bob, "data/open", adapter="sqlite", permissions={"owner": "bob"},
                  config={"path": str(t.space("alice") / "a.sqlite")})  # fmt: skip
    assert body["code"] == "path_not_allowed", body
    # An administrator naming an owner it does not record is answered the stored one.
    admin = t.ok(t.admin, "data/open", adapter="sqlite", config={"path": path},
                 permissions={"owner": "carol"})  # fmt: skip
    assert admin["permissions"]["owner"] == "bob", admin
    listed = {h["handle"]: h for h in t.ok(t.admin, "data/list-handles")["handles"]}
    assert listed[admin["dbHandle"]]["permissions"]["owner"] == "bob"


# -- 5. one code for one kind of refused file -------------------------------------------------------


def test_5_a_file_the_caller_may_not_use_is_path_not_allowed_through_every_door(
    t: Tenants,
) -> None:
    own_database(t, t.alice, "db.sqlite")
    space = t.space("alice")
    (space / "data.jsonl").write_text('{"x": 1}\n')
    os.link(space / "data.jsonl", space / "twice.jsonl")
    (space / "plain.jsonl").write_text('{"x": 1}\n')
    (space / "dir").mkdir()
    export = {"dbHandle": "default", "collection": "c"}
    imports = {"dbHandle": "default", "collection": "x"}
    refused = [
        ("data/export", {**export, "output": "twice.jsonl"}),  # other names
        ("data/export", {**export, "output": "db.sqlite", "overwrite": True}),  # a database
        ("data/export", {**export, "output": "x.sqlite-wal"}),  # a side file's name
        ("data/export", {**export, "output": "dir", "overwrite": True}),  # a folder
        ("data/import", {**imports, "input": "twice.jsonl"}),  # (administrators may read it)
        ("data/import", {**imports, "input": "db.sqlite"}),
        ("data/import", {**imports, "input": "db.sqlite-journal"}),
        (
            "data/import",
            {**imports, "input": "plain.jsonl", "onError": "skip", "rejects": "twice.jsonl"},
        ),
        (
            "data/import",
            {**imports, "input": "plain.jsonl", "onError": "skip", "rejects": "db.sqlite"},
        ),
        ("data/open", {"adapter": "sqlite", "config": {"path": "twice.jsonl"}}),
        ("data/open", {"adapter": "json", "config": {"path": "twice.jsonl"}}),
    ]
    for token in (t.alice, t.admin):
        for name, params in refused:
            if token == t.admin:
                if params.get("input") == "twice.jsonl":
                    continue  # a data set with other names: only a non-admin's reads are limited
                params = _absolute(params, space)
            body = t.call(token, name, **params)
            assert body.get("code") == "path_not_allowed", (token == t.admin, name, params, body)
    # Malformed path text stays invalid_params, through every door.
    for name, params in (
        ("data/export", {**export, "output": "bad\nname.jsonl"}),
        ("data/import", {**imports, "input": "bad\x01.jsonl"}),
        ("data/open", {"adapter": "sqlite", "config": {"path": "bad\x7f.sqlite"}}),
    ):
        body = t.call(t.alice, name, **params)
        assert body["code"] in ("invalid_params", "invalid_config"), (name, body)
    assert (space / "data.jsonl").read_text() == '{"x": 1}\n'
    assert (space / "plain.jsonl").read_text() == '{"x": 1}\n'


def _absolute(params: dict[str, Any], space: Path) -> dict[str, Any]:
    """``params`` with every file name made absolute in ``space`` (what an administrator sends)."""
    out = dict(params)
    for key in ("input", "output", "rejects"):
        if key in out:
            out[key] = str(space / out[key])
    if "config" in out:
        out["config"] = {**out["config"], "path": str(space / out["config"]["path"])}
    return out


def test_1_no_error_shows_a_non_admin_the_home(tmp_path: Path) -> None:
    """The backstop every command's error passes (``paths.mask_error``): the home's path, as
    configured and real, is ``<home>`` to a remote non-admin actor; a path that merely starts
    like it (``home-data``) and administrators' errors are left as they are."""
    from dbhandles import Context, Settings
    from dbhandles.errors import StorageError
    from dbhandles.security.paths import mask_error

    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "home")
    # The data root lies elsewhere: ``home-data`` only looks like the home (and the data root).
    settings = Settings(home=tmp_path / "home", data_root=tmp_path / "spaces")
    alice = Context(actor="alice", session_id="s", is_admin=False, trusted_local=False)
    admin = Context(actor="root", session_id="s", is_admin=True, trusted_local=False)
    text = (f"cannot open {tmp_path / 'home'}/default.sqlite nor {tmp_path / 'real'}/x-wal; "
            f"{tmp_path / 'home-data'}/alice/a.sqlite is yours; the home is {tmp_path / 'real'}")  # fmt: skip
    for context, shown in (
        (
            alice,
            f"cannot open <home>/default.sqlite nor <home>/x-wal; {tmp_path / 'home-data'}"
            "/alice/a.sqlite is yours; the home is <home>",
        ),
        (admin, text),
    ):
        error = StorageError(text)
        mask_error(settings, context, error)
        assert error.message == str(error) == shown
        assert error.code == "storage_error"
    # A home path the caller itself gave is echoed as given: masking only that answer would tell
    # it that it had named the home (an oracle for a guessed home path).
    given = {"input": f"{tmp_path / 'home'}/admin.token"}
    error = StorageError(f"input: {given['input']} is outside your data space")
    mask_error(settings, alice, error, given)
    assert error.message == f"input: {given['input']} is outside your data space"


def test_1_one_masker_shows_neither_the_home_nor_the_data_root(tmp_path: Path) -> None:
    """``paths.mask_error`` is the one masker: the home (to the very end of a message), the data
    root and the actor's space in one pass, each left as is where the caller's params (at any
    depth, past Python's recursion limit) named it."""
    from dbhandles import Context, Settings
    from dbhandles.errors import StorageError
    from dbhandles.security.paths import mask_error

    settings = Settings(home=tmp_path / "home", data_root=tmp_path / "spaces")
    root = settings.space_root()
    alice = Context(actor="alice", session_id="s", is_admin=False, trusted_local=False)
    text = (f"{root}/alice/a.sqlite, {root}/bob/b.sqlite and {tmp_path / 'home'}/x-wal; "
            f"the home is {tmp_path / 'home'}")  # fmt: skip
    error = StorageError(text)
    mask_error(settings, alice, error)
    assert error.message == ("a.sqlite, <data>/bob/b.sqlite and <home>/x-wal; the home is <home>")
    deep: object = f"{root}/bob/b.sqlite"
    for _ in range(5000):
        deep = [deep]
    error = StorageError(text)
    mask_error(settings, alice, error, {"input": deep})
    assert f"{root}/bob/b.sqlite" in error.message and "<home>/x-wal" in error.message
