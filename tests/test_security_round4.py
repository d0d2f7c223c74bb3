"""Issue 12, round four: what an outside tester holding an ordinary token still found.

Job events and results name only what their reader may know; a demoted administrator's name keeps
nothing; the server answers only to its own host names; credentials are never ambiguous; aliases
cannot be enumerated; names hold no bidi or control characters and every ``jtag`` format escapes
them; a non-admin's own param errors are shown as they are. See docs/security.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import Context, Service
from dbhandles.cli.output import render, render_json, render_table
from dbhandles.events import Event
from dbhandles.server.ws_guard import Guard
from tests.security_helpers import ALICE, BOB, ROOT, refused
from tests.servers import app_client
from tests.test_server_http import assert_error

#: Every character of the display rule that orjson would print raw.
UNSHOWABLE = "\x7f\x85\u061c\u200e\u200f\u2028\u2029\u202a\u202e\u2066\u2069"


# -- 3. job events and results ----------------------------------------------------------------------


def test_job_events_reach_only_their_actor_and_administrators(service: Service) -> None:
    seen: list[Event] = []
    service.events.subscribe("*", seen.append)
    service.execute("data/create", {"collection": "plans", "data": {"n": 1}}, context=ALICE)
    mine = service.execute("data/open", {"adapter": "sqlite", "config": {"path": "mine.sqlite",
                                         "mode": "create"}}, context=ALICE)["dbHandle"]  # fmt: skip
    (service.settings.space_root() / "alice" / "in.jsonl").write_text('{"n": 1}\n')
    service.execute("data/export", {"dbHandle": "default", "collection": "plans",
                                    "output": "alice-private-plans.jsonl"}, context=ALICE)  # fmt: skip
    service.execute("data/import", {"dbHandle": mine, "collection": "c", "input": "in.jsonl"},
                    context=ALICE)  # fmt: skip
    service.execute("data/copy", {"from": {"dbHandle": mine, "collection": "c"},
                                  "to": {"dbHandle": mine, "collection": "d"}}, context=ALICE)  # fmt: skip
    jobs = [e for e in seen if e.name.split(":")[0] in ("import", "export", "copy")]
    assert {e.name for e in jobs} >= {"export:done", "import:done", "copy:done"}
    bob, alice, root = (
        Guard(service, BOB, None),
        Guard(service, ALICE, None),
        Guard(service, ROOT, None),
    )
    for event in jobs:
        assert event.payload["actor"] == "alice", event
        assert not bob.may_see(event), event
        assert alice.may_see(event) and root.may_see(event), event
    # alice's own export from the default database never shows where the home is.
    done = next(e for e in jobs if e.name == "export:done")
    assert done.payload["input"] == "<home>/default.sqlite"
    assert f"{service.settings.home}/" not in orjson.dumps([e.payload for e in jobs]).decode()


def test_results_never_show_a_non_admin_the_home(service: Service) -> None:
    service.execute("data/create", {"collection": "c", "data": {"n": 1}}, context=BOB)
    exported = service.execute("data/export", {"dbHandle": "default", "collection": "c",
                                               "output": "o.jsonl"}, context=BOB)  # fmt: skip
    assert exported["input"] == "<home>/default.sqlite"
    (service.settings.space_root() / "bob" / "in.jsonl").write_text('{"n": 2}\n')
    imported = service.execute("data/import", {"dbHandle": "default", "collection": "c",
                                               "input": "in.jsonl"}, context=BOB)  # fmt: skip
    assert imported["output"] == "<home>/default.sqlite"
    home = str(service.settings.home)
    assert f"{home}/" not in orjson.dumps([exported, imported]).decode()
    # An administrator sees the real path.
    admin = service.execute("data/export", {"dbHandle": "default", "collection": "c",
                                            "output": str(service.settings.space_root() / "o2.jsonl")},
                           context=ROOT)  # fmt: skip
    assert admin["input"].startswith(home)


# -- 4. a demoted administrator's name ---------------------------------------------------------------


def test_a_name_that_was_an_administrators_never_gets_a_plain_token(service: Service) -> None:
    _, row = service.tokens.create("ops", admin=True)
    service.execute("token/revoke", {"tokenId": row.token_id})
    error = refused(service, "token/create", {"actor": "ops"}, Context())
    assert error.code == "invalid_params" and error.field == "actor", error
    assert "administrator's name" in error.message
    assert service.execute("token/create", {"actor": "ops", "admin": True})["isAdmin"]


@pytest.mark.parametrize("expires", ["0s", "0d", "00m", " 0 w"])
def test_a_token_lifetime_is_more_than_0(service: Service, expires: str) -> None:
    error = refused(service, "token/create", {"actor": "alice", "expires": expires}, Context())
    assert (error.code, error.field) == ("invalid_params", "expires"), error
    assert not service.tokens.list()


# -- 5. the Host header (DNS rebinding) and 9. ambiguous credentials --------------------------------


@pytest.fixture
def anonymous(service: Service) -> Iterator[Any]:
    with app_client(service, require_token=False) as client:
        yield client


@pytest.mark.parametrize(
    "host", ["attacker.example:18713", "attacker.example", "127.0.0.1.evil.example"]
)
def test_a_foreign_host_is_refused_in_every_mode(anonymous: Any, host: str) -> None:
    from starlette.testclient import WebSocketDenialResponse

    same = {"Host": host, "Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"}
    response = anonymous.post("/commands/token/create", json={"actor": "evil", "admin": True},
                              headers=same)  # fmt: skip
    assert_error(response, "forbidden")
    assert response.json()["field"] == "Host"
    with (
        pytest.raises(WebSocketDenialResponse) as denied,
        anonymous.websocket_connect("/ws", headers={"Host": host}),
    ):
        pass
    assert denied.value.status_code == 403


@pytest.mark.parametrize("host", ["127.0.0.1:18713", "localhost:1", "[::1]:7878", "LOCALHOST."])
def test_loopback_names_are_answered(service: Service, host: str) -> None:
    with app_client(service, require_token=False, hosts=()) as client:
        response = client.post("/commands/data/list-handles", headers={"Host": host})
        assert response.status_code == 200, response.text
        assert_error(client.post("/commands/data/list-handles"), "forbidden")  # "testserver"


def test_allowed_hosts_setting_adds_names(home: Path) -> None:
    from dbhandles import Settings

    settings = Settings(home=home, allowed_hosts=("db.example.org",))
    with Service(settings=settings) as service, app_client(service, hosts=()) as client:
        ok = client.post("/commands/data/list-handles", headers={"Host": "db.example.org:80"})
        assert ok.status_code == 200
        assert_error(client.post("/commands/data/list-handles",
                                 headers={"Host": "other.example"}), "forbidden")  # fmt: skip


def test_ambiguous_credentials_are_refused(service: Service) -> None:
    token = service.tokens.create("alice")[0]
    with app_client(service, require_token=True) as client:
        twice = [("Authorization", "Bearer garbage"), ("Authorization", f"Bearer {token}")]
        response = client.post("/commands/data/list-handles", headers=twice)
        assert_error(response, "unauthorized")
        assert "more than one credential" in response.json()["error"]
        for url, headers in [
            ("/ws?token=garbage", {"Authorization": f"Bearer {token}"}),
            (f"/ws?token={token}&token=garbage", {}),
            (f"/ws?token={token}&token={token}", {}),
        ]:
            with client.websocket_connect(url, headers=headers) as socket:
                message = socket.receive_json()
                assert (message["type"], message["code"]) == ("error", "unauthorized"), url
        with client.websocket_connect(f"/ws?token={token}") as socket:
            assert socket.receive_json()["type"] == "hello"


# -- 6. aliases ----------------------------------------------------------------------------------------


def test_another_actors_alias_is_answered_as_an_unknown_name(service: Service) -> None:
    service.execute("data/open", {"adapter": "memory", "alias": "admdb", "config": {}},
                    context=ROOT)  # fmt: skip
    service.execute("data/open", {"adapter": "memory", "alias": "alicedb", "config": {}},
                    context=ALICE)  # fmt: skip
    unknown = refused(service, "data/list", {"dbHandle": "nosuch", "collection": "c"}, BOB)
    for name in ("admdb", "alicedb"):
        error = refused(service, "data/list", {"dbHandle": name, "collection": "c"}, BOB)
        assert (error.code, error.message) == (
            unknown.code,
            unknown.message.replace("nosuch", name),
        ), error


# -- 7. names and the display rule --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a\x1bb", "a\u202eb", "a\u200fb", "a\u2028b", "a\x85b"])
def test_memory_names_refuse_control_and_bidi_characters(service: Service, name: str) -> None:
    error = refused(service, "data/open", {"adapter": "memory", "config": {"name": name}}, BOB)
    assert (error.code, error.field) == ("invalid_params", "config.name"), error


def test_every_output_format_escapes_the_display_rule() -> None:
    envelope = {"success": True, "id": f"x{UNSHOWABLE}\x1by", "data": {"k": UNSHOWABLE}}
    for text in (render_json(envelope), render_table(envelope), render(envelope, "json")):
        assert not any(ch in text for ch in UNSHOWABLE + "\x1b"), repr(text)
    # JSON output is the same JSON to a program.
    assert orjson.loads(render_json(envelope)) == envelope
    rows = {"success": True, "items": [{"id": f"r{UNSHOWABLE}", "v": "\u200e"}]}
    assert not any(ch in render_table(rows) for ch in UNSHOWABLE)


# -- 8. a non-admin's own param errors -----------------------------------------------------------------


def test_a_non_admins_own_param_error_is_shown_and_a_masked_one_logged(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    error = refused(service, "data/open",
                    {"adapter": "memory", "alias": "bad alias!", "config": {}}, BOB)  # fmt: skip
    assert (error.code, error.field) == ("invalid_params", "alias"), error
    assert "server log" not in error.message
    # A server nobody listens on, listed for non-admins: why it failed is the server's to know.
    server = Service(settings=service.settings.__class__(home=service.settings.home,
                                                         postgres_servers=("127.0.0.1:1",)))  # fmt: skip
    try:
        with caplog.at_level(logging.WARNING, logger="dbhandles.commands.handles"):
            masked = refused(
                server,
                "data/open",
                {
                    "adapter": "postgres",
                    "config": {
                        "host": "127.0.0.1",
                        "port": 1,
                        "dbname": "x",
                        "user": "u",
                        "password": "p",
                        "connectTimeout": 1,
                    },
                },
                BOB,
            )
        assert "server log" in masked.message, masked
        assert any("bob" in r.getMessage() for r in caplog.records)
    finally:
        server.close()


# -- 10. the export input's field ------------------------------------------------------------------------


def test_a_refused_export_input_names_the_input(service: Service) -> None:
    error = refused(
        service,
        "data/export",
        {"input": "/etc/passwd.sqlite", "collection": "c", "output": "o.jsonl"},
        BOB,
    )
    assert (error.code, error.field) == ("path_not_allowed", "input"), error
    assert error.message.startswith("input:"), error
