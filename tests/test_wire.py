"""``dbhandles.wire``: the one wire protocol of ``Client`` (httpx) and ``jtag`` (http.client)."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from dbhandles import wire
from dbhandles.cli.transport import CLI_HINT, RemoteTransport
from dbhandles.client import Client
from dbhandles.commands.envelope import error_envelope
from dbhandles.errors import (
    DbHandlesError,
    DefaultHandleProtected,
    InvalidParams,
    RecordNotFound,
    ServerUnreachable,
)
from tests.servers import free_port

HEAVY = ("httpx", "pydantic", "starlette", "uvicorn", "websockets", "dbhandles.service",
         "dbhandles.commands", "dbhandles.client")  # fmt: skip


def without_timestamp(envelope: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in envelope.items() if k != "timestamp"}


def test_wire_imports_nothing_heavy() -> None:
    """The CLI imports it on every start: no httpx, pydantic or service behind it."""
    probe = f"import sys, dbhandles.wire; print([m for m in {HEAVY!r} if m in sys.modules])"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_routes_and_urls() -> None:
    assert f"http://{wire.DEFAULT_HOST}:{wire.DEFAULT_PORT}" == wire.DEFAULT_URL
    assert wire.command_path("data/list") == "/commands/data/list"
    assert wire.ws_url("http://127.0.0.1:7878") == "ws://127.0.0.1:7878/ws"
    assert wire.ws_url("https://example.org/db/") == "wss://example.org/db/ws"


def test_request_headers() -> None:
    assert wire.request_headers() == {
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    headers = wire.request_headers("dbh_secret", "s-1")
    assert (headers["Authorization"], headers["X-Session-Id"]) == ("Bearer dbh_secret", "s-1")


def test_encode_params() -> None:
    assert orjson.loads(wire.encode_params({"a": 1})) == {"a": 1}
    assert wire.encode_params(None) == b"{}"
    with pytest.raises(TypeError):
        wire.encode_params({"a": object()})


def test_failure_envelope_is_the_error_envelope() -> None:
    for exc in (InvalidParams("bad", field="limit"), ServerUnreachable("gone")):
        assert without_timestamp(wire.failure_envelope(exc)) == without_timestamp(
            error_envelope(exc)
        )
    assert set(wire.failure_envelope(ServerUnreachable("gone"))) == {
        "success",
        "timestamp",
        "error",
        "code",
    }


def test_cannot_reach() -> None:
    envelope = wire.cannot_reach("http://h:1", "refused")
    assert envelope["code"] == wire.UNREACHABLE == "server_unreachable"
    assert envelope["error"] == "cannot reach the dbhandles server at http://h:1 (refused); " + (
        wire.SERVE_HINT
    )
    assert wire.cannot_reach("http://h:1", "refused", "hint").get("error", "").endswith("; hint")


def test_read_envelope() -> None:
    ok = {"success": True, "timestamp": "t", "handles": []}
    assert wire.read_envelope("http://h", 200, orjson.dumps(ok)) == ok
    failed = {"success": False, "error": "no", "code": "not_found"}
    assert wire.read_envelope("http://h", 404, orjson.dumps(failed)) == failed
    for body in (b"<html>hi</html>", b"[1, 2]", b'{"detail": "Not Found"}', b""):
        envelope = wire.read_envelope("http://h", 502, body)
        assert envelope["code"] == "server_unreachable"
        assert envelope["error"] == (
            "http://h answered HTTP 502 without a dbhandles envelope; is it a dbhandles server?"
        )


def test_raise_for() -> None:
    wire.raise_for({"success": True})
    with pytest.raises(RecordNotFound) as found:
        wire.raise_for(
            {"success": False, "error": "no r1", "code": "record_not_found", "field": "id"}
        )
    assert (found.value.message, found.value.field) == ("no r1", "id")
    with pytest.raises(DefaultHandleProtected):
        wire.raise_for(error_envelope(DefaultHandleProtected("keep it")))
    with pytest.raises(ServerUnreachable) as gone:
        wire.raise_for(wire.cannot_reach("http://h", "refused"))
    assert gone.value.http_status == 503
    with pytest.raises(DbHandlesError) as unknown:
        wire.raise_for({"success": False, "error": "new", "code": "from_the_future"})
    assert (type(unknown.value), unknown.value.code) == (DbHandlesError, "from_the_future")


def test_is_dbhandles_health() -> None:
    assert wire.is_dbhandles_health({"service": "dbhandles", "home": "/h"})
    assert not wire.is_dbhandles_health({"service": "other"})
    assert not wire.is_dbhandles_health(["dbhandles"])


# -- both clients speak it ------------------------------------------------------------------------


class _NotDbhandles(http.server.BaseHTTPRequestHandler):
    """Some other web server: every request gets an HTML page; the last request is kept."""

    seen: dict[str, Any] = {}

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        type(self).seen = {
            "path": self.path,
            "headers": {
                k: self.headers[k]
                for k in ("Content-Type", "Accept", "Authorization", "X-Session-Id")
            },
            "body": orjson.loads(self.rfile.read(length)),
        }
        page = b"<html>hello</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def other_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotDbhandles)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_both_clients_send_the_same_request(other_server: str) -> None:
    params = {"collection": "c", "limit": 2}
    sent = []
    with Client(other_server, "dbh_t", session_id="s-1") as client:
        python = client.dispatch("data/list", params)
        sent.append(_NotDbhandles.seen)
    cli = RemoteTransport(other_server, session_id="s-1", token="dbh_t").dispatch(
        "data/list", params
    )
    sent.append(_NotDbhandles.seen)
    assert (
        sent[0]
        == sent[1]
        == {
            "path": wire.command_path("data/list"),
            "headers": wire.request_headers("dbh_t", "s-1"),
            "body": params,
        }
    )
    # ... and read the answer the same way: not a dbhandles server.
    assert without_timestamp(python) == without_timestamp(cli)
    assert without_timestamp(python) == without_timestamp(
        wire.read_envelope(other_server, 200, b"<html>hello</html>")
    )


def test_both_clients_report_an_unreachable_server_alike() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url) as client:
        python = client.dispatch("data/list-handles")
    cli = RemoteTransport(url).dispatch("data/list-handles", {})
    for envelope, hint in ((python, wire.SERVE_HINT), (cli, CLI_HINT)):
        assert envelope["code"] == "server_unreachable"
        assert envelope["error"].startswith(f"cannot reach the dbhandles server at {url} (")
        assert envelope["error"].endswith(f"); {hint}")


def test_client_uses_the_wire_headers() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"success": True, "timestamp": "t"})

    with Client("http://h", "tok", session_id="s", transport=httpx.MockTransport(answer)) as c:
        assert c.execute("data/list-handles") == {"success": True, "timestamp": "t"}
    assert seen[0].url.path == wire.command_path("data/list-handles")
    for key, value in wire.request_headers("tok", "s").items():
        assert seen[0].headers[key] == value


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, b'{"success": false}'),  # no code, no error
        (200, b'{"success": false, "code": 7, "error": "x"}'),
        (500, b'{"success": true}'),  # a success the status contradicts
        (200, b'{"success": "yes"}'),
    ],
)
def test_a_body_that_only_looks_like_an_envelope_is_not_trusted(status: int, body: bytes) -> None:
    envelope = wire.read_envelope("http://x", status, body)
    assert envelope["success"] is False and envelope["code"] == "server_unreachable"


def test_real_envelopes_pass_through() -> None:
    ok = wire.read_envelope("http://x", 200, b'{"success": true, "n": 1}')
    assert ok == {"success": True, "n": 1}
    failed = b'{"success": false, "error": "no", "code": "handle_not_found"}'
    assert wire.read_envelope("http://x", 404, failed)["code"] == "handle_not_found"
