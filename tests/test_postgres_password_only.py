"""Issue 12: a non-admin actor's PostgreSQL connection is authenticated by the password it gave,
never by the server process's own identity (peer, trust, ident, a certificate, ``~/.pgpass``,
``PG*`` variables), even on a server an administrator listed (docs/security.md, "Multi-tenant
servers").

A cluster of its own (``pg_hba.conf`` below) serves a real ``jtag serve`` listing both its socket
folder and its TCP address; ``alice`` holds an ordinary token, ``bobpg`` owns ``bobdata``.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.pgserver import PgServer, postgres_binaries
from tests.servers import ServerProcess

pytestmark = [pytest.mark.postgres, pytest.mark.needs_server]

SECRET = "bob-pg-secret-51c2"
#: The harness's superuser by trust (to set up), the test process's OS user by peer (a role of
#: that name, superuser: what a server running as that user would get), bobpg by password, clearpg
#: by a cleartext password.
HBA = """\
local all postgres trust
local all bobpg scram-sha-256
local all clearpg password
local all all peer
host all all 127.0.0.1/32 scram-sha-256
"""


@dataclass
class World:
    pg: PgServer
    server: ServerProcess
    http: httpx.Client
    admin: str
    alice: str
    me: str  # the OS user of this process (and of the jtag serve it starts): a peer role

    def call(self, token: str, name: str, **params: Any) -> dict[str, Any]:
        response = self.http.post(
            f"/commands/{name}", json=params, headers={"Authorization": f"Bearer {token}"}
        )
        return dict(response.json())

    def open(self, token: str, **config: Any) -> dict[str, Any]:
        return self.call(token, "data/open", adapter="postgres",
                         config={"dbname": "bobdata", "schema": "public", **config})  # fmt: skip

    def socket(self, **config: Any) -> dict[str, Any]:
        return {"host": str(self.pg.socket_dir), "port": self.pg.port, **config}

    def tcp(self, **config: Any) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.pg.port, **config}


def _cluster() -> PgServer:
    if postgres_binaries() is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found; install postgresql")
    from tests import pgserver

    return pgserver._start()  # a cluster of its own: its pg_hba.conf is not the shared one's


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[PgServer, str]]:
    import psycopg

    pg = _cluster()
    try:
        me = getpass.getuser()
        admin_url = f"postgresql://postgres@/postgres?host={pg.socket_dir}&port={pg.port}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE \"{me}\" SUPERUSER LOGIN PASSWORD 'me-pw'")
            conn.execute("CREATE ROLE bobpg LOGIN PASSWORD 'bob-pw'")
            conn.execute("CREATE ROLE clearpg LOGIN PASSWORD 'clear-pw'")
            conn.execute("CREATE DATABASE bobdata OWNER bobpg")
        with psycopg.connect(admin_url.replace("/postgres?", "/bobdata?"), autocommit=True) as c:
            c.execute("SET ROLE bobpg")
            c.execute("CREATE TABLE secrets (id text PRIMARY KEY, fact text)")
            c.execute("INSERT INTO secrets VALUES ('s1', %s)", (SECRET,))
        (pg.data_dir / "pg_hba.conf").write_text(HBA)
        pg.pg_ctl("reload")
        yield pg, me
    finally:
        pg.stop()


@pytest.fixture
def world(cluster: tuple[PgServer, str], tmp_path: Path) -> Iterator[World]:
    pg, me = cluster
    server = ServerProcess(tmp_path / "home")
    server.env["DBHANDLES_POSTGRES_SERVERS"] = f"{pg.socket_dir}:{pg.port},127.0.0.1:{pg.port}"
    with server:
        http = httpx.Client(base_url=server.url, timeout=60)
        admin = server.token
        alice = http.post("/commands/token/create", json={"actor": "alice"},
                          headers={"Authorization": f"Bearer {admin}"}).json()["token"]  # fmt: skip
        try:
            yield World(pg, server, http, admin, alice, me)
        finally:
            http.close()


def _secret_intact(w: World) -> None:
    import psycopg

    url = f"postgresql://bobpg:bob-pw@127.0.0.1:{w.pg.port}/bobdata"
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT fact FROM secrets").fetchall() == [(SECRET,)]


def test_a_server_identity_never_authenticates_a_non_admin(world: World) -> None:
    w = world
    for config in (
        w.socket(user=w.me, password="anything-wrong"),  # peer: the server's OS user
        w.socket(user="postgres", password="anything-wrong"),  # trust
        {"url": f"postgresql://{w.me}:x@/bobdata?host={w.pg.socket_dir}&port={w.pg.port}"},
    ):
        body = w.open(w.alice, **config)
        assert body["success"] is False and body["code"] == "server_not_allowed", (config, body)
        assert "password" in body["error"] and "Traceback" not in body["error"]
    # A wrong password where the server asks for one: refused (its code: could not be opened).
    for config in (w.socket(user="bobpg", password="wrong"), w.tcp(user="bobpg", password="no")):
        body = w.open(w.alice, **config)
        assert body["success"] is False and body["code"] != "server_not_allowed", body
    _secret_intact(w)
    rows = w.call(w.admin, "data/audit", actor="alice", limit=1000)["entries"]
    rows = [r for r in rows if r["command"] == "data/open"]
    assert sum(r["code"] == "server_not_allowed" for r in rows) == 3, rows


def test_the_right_password_opens_over_the_socket_and_tcp(world: World) -> None:
    w = world
    for config in (
        w.socket(user="bobpg", password="bob-pw"),
        w.tcp(user="bobpg", password="bob-pw"),
    ):
        body = w.open(w.alice, **config)
        assert body["success"] is True, (body, w.server.output[-3000:])
        assert body["config"]["passwordOnly"] is True  # forced, whatever the actor asked
        listed = w.call(w.alice, "data/list", dbHandle=body["dbHandle"], collection="secrets")
        assert [item["fact"] for item in listed["items"]] == [SECRET], listed
    # Asking for the server's identity back is not heard: the flag is forced on.
    body = w.open(w.alice, **w.socket(user=w.me, password="x", passwordOnly=False))
    assert body["code"] == "server_not_allowed", body


def test_the_administrator_keeps_the_server_identity(world: World) -> None:
    w = world
    for config in (
        w.socket(user=w.me),
        w.socket(user="postgres"),
        w.socket(user=w.me, password="z"),
    ):
        body = w.open(w.admin, **config)
        assert body["success"] is True, (config, body)
        assert "passwordOnly" not in body["config"]
    # An administrator may ask for the tenants' rule on its own handle.
    body = w.open(w.admin, **w.socket(user=w.me, password="z", passwordOnly=True))
    assert body["code"] == "server_not_allowed", body


def test_the_server_process_environment_is_not_used(
    cluster: tuple[PgServer, str], tmp_path: Path
) -> None:
    """``PGPORT``, ``PGPASSWORD``, ``PGUSER`` and a password file of the server process's user
    are for administrators: a non-admin's connection names its own port and password."""
    pg, me = cluster
    passfile = tmp_path / "pgpass"
    passfile.write_text("*:*:*:bobpg:bob-pw\n")
    passfile.chmod(0o600)
    server = ServerProcess(tmp_path / "home")
    server.env.update({
        "DBHANDLES_POSTGRES_SERVERS": f"127.0.0.1,127.0.0.1:{pg.port}",
        "PGPORT": str(pg.port), "PGPASSWORD": "bob-pw", "PGPASSFILE": str(passfile),
        "PGUSER": "bobpg", "PGDATABASE": "bobdata",
    })  # fmt: skip
    with server, httpx.Client(base_url=server.url, timeout=60) as http:
        admin = server.token
        alice = http.post("/commands/token/create", json={"actor": "alice"},
                          headers={"Authorization": f"Bearer {admin}"}).json()["token"]  # fmt: skip
        w = World(pg, server, http, admin, alice, me)
        # No port: 5432 as listed, never PGPORT's (where the cluster is).
        body = w.open(alice, host="127.0.0.1", user="bobpg", password="wrong")
        assert body["success"] is False, body
        # A wrong password is not mended by PGPASSWORD or the password file.
        body = w.open(alice, **w.tcp(user="bobpg", password="wrong"))
        assert body["success"] is False, body
        assert w.open(alice, **w.tcp(user="bobpg", password="bob-pw"))["success"] is True
        # The administrator's handles still use them (documented: docs/security.md).
        assert w.open(admin, host="127.0.0.1")["success"] is True


def test_a_libpq_without_require_auth_is_refused_once_connected(
    cluster: tuple[PgServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """libpq before 16 has no ``require_auth``: the connection made by peer is refused all the
    same, by libpq's ``PQconnectionUsedPassword``, before any statement runs."""
    import psycopg

    from dbhandles.adapters.postgres import PostgresAdapter, PostgresConfig
    from dbhandles.errors import ServerNotAllowed

    pg, me = cluster
    monkeypatch.setattr(psycopg.pq, "version", lambda: 150000)
    config = PostgresConfig(host=str(pg.socket_dir), port=pg.port, user=me, password="wrong",
                            dbname="bobdata", password_only=True)  # fmt: skip
    assert "require_auth" not in PostgresAdapter(config).conninfo
    with pytest.raises(ServerNotAllowed, match="without checking its password"):
        PostgresAdapter(config).connect()
    right = config.model_copy(update={"user": "bobpg", "password": "bob-pw"})
    adapter = PostgresAdapter(right)
    adapter.connect()
    adapter.close()


def test_a_cleartext_password_server_is_refused_clearly(world: World) -> None:
    """A pg_hba ``password`` line would have the password sent in cleartext (a man in the middle
    who strips TLS could ask for it): a tenant's connection refuses it, naming what to change."""
    import psycopg

    if psycopg.pq.version() < 160000:
        pytest.skip("libpq before 16 has no require_auth")
    w = world
    body = w.open(w.alice, **w.socket(user="clearpg", password="clear-pw"))
    assert body["success"] is False and body["code"] == "server_not_allowed", body
    assert "cleartext" in body["error"] and "scram-sha-256" in body["error"], body
    assert "Traceback" not in body["error"]
    # The administrator's own handle is not a tenant's: the server's method is its business.
    assert w.open(w.admin, **w.socket(user="clearpg", password="clear-pw"))["success"] is True


def test_a_tenants_sslmode_is_kept(world: World) -> None:
    """A tenant's ``sslmode=require`` is passed on, never replaced by ``prefer``: this cluster has
    no SSL, so the connection is refused (clearly) rather than made in the clear. A weaker mode,
    or any other option, is an administrator's."""
    from dbhandles.adapters.postgres_config import PostgresConfig, connection_params

    w = world
    url = f"postgresql://bobpg:bob-pw@127.0.0.1:{w.pg.port}/bobdata?sslmode=require"
    body = w.open(w.alice, url=url)
    assert body["success"] is False and body["code"] == "server_not_allowed", body
    assert "does not offer SSL" in body["error"] and "Traceback" not in body["error"], body
    for mode in ("disable", "allow", "prefer"):
        body = w.open(w.alice, url=url.replace("require", mode))
        assert body["code"] == "server_not_allowed" and "sslmode" in body["error"], body
    tenant = PostgresConfig(url=url, password_only=True)
    assert "sslmode=require" in connection_params(tenant)[0]
    # Without one, none is named: the operator's PGSSLMODE (or libpq's default) applies.
    plain = PostgresConfig(url=url.split("?")[0], password_only=True)
    assert "sslmode" not in connection_params(plain)[0]
