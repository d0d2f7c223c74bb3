"""HTTP routes in-process: envelopes, status codes, bad input through every door, schemas, static files."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dbhandles import Service
from dbhandles.commands import COMMANDS, Command
from dbhandles.errors import DbHandlesError, error_class_for_code
from dbhandles.server.http import status_for
from dbhandles.server.openapi import error_codes
from dbhandles.wire import home_id
from tests.servers import ThreadServer, app_client


@pytest.fixture
def client(service: Service) -> Iterator[Any]:
    with app_client(service) as test_client:
        yield test_client


def assert_error(response: httpx.Response, code: str, field: str | None = None) -> dict[str, Any]:
    """The documented failure envelope, with the status that follows its code, and no traceback."""
    body = response.json()
    assert set(body) >= {"success", "timestamp", "error", "code"}
    assert body["success"] is False
    assert body["code"] == code
    assert response.status_code == error_class_for_code(code).http_status
    assert "Traceback" not in response.text
    if field is not None:
        assert body["field"] == field
    return dict(body)


def test_command_success(client: Any) -> None:
    response = client.post("/commands/data/list", json={"collection": "users"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["success"] is True
    assert body["items"] == [] and body["dbHandle"] == "default"


def test_empty_body_means_no_params(client: Any) -> None:
    response = client.post("/commands/data/list-handles", content=b"")
    assert response.status_code == 200
    assert response.json()["handles"][0]["handle"] == "default"


def test_malformed_json(client: Any) -> None:
    assert_error(client.post("/commands/data/list", content=b"{not json"), "invalid_params", "body")


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"42", b"null"])
def test_body_must_be_an_object(client: Any, body: bytes) -> None:
    assert_error(client.post("/commands/data/list", content=body), "invalid_params", "body")


def test_unknown_command(client: Any) -> None:
    body = assert_error(client.post("/commands/data/nope", json={}), "unknown_command", "command")
    assert "GET /commands" in body["error"]


def test_wrong_types(client: Any) -> None:
    assert_error(
        client.post("/commands/data/list", json={"collection": "c", "limit": "many"}),
        "invalid_params",
        "limit",
    )
    assert_error(
        client.post("/commands/data/create", json={"collection": "c", "data": [1]}),
        "invalid_params",
        "data",
    )


def test_missing_params(client: Any) -> None:
    assert_error(
        client.post("/commands/data/create", json={"data": {}}), "invalid_params", "collection"
    )


def test_unknown_param(client: Any) -> None:
    assert_error(
        client.post("/commands/data/list", json={"collection": "c", "limt": 5}),
        "invalid_params",
        "limt",
    )


def test_statuses_follow_error_codes(client: Any) -> None:
    assert_error(
        client.post("/commands/data/close", json={"dbHandle": "default"}),
        "default_handle_protected",
    )
    assert_error(
        client.post("/commands/data/list", json={"dbHandle": "nope", "collection": "c"}),
        "handle_not_found",
    )
    client.post("/commands/data/create", json={"collection": "c", "data": {}, "id": "x"})
    assert_error(
        client.post("/commands/data/create", json={"collection": "c", "data": {}, "id": "x"}),
        "record_exists",
    )


@pytest.mark.parametrize("code", sorted(error_codes()))
def test_status_for_every_code_is_the_exception_status(code: str) -> None:
    assert status_for(code) == error_class_for_code(code).http_status


def test_oversized_body_by_content_length(tmp_path: Path) -> None:
    from dbhandles import Settings

    with (
        Service(settings=Settings(home=tmp_path / "h", max_body_bytes=2048)) as svc,
        app_client(svc) as client,
    ):
        big = {"collection": "c", "data": {"blob": "x" * 5000}}
        body = assert_error(
            client.post("/commands/data/create", json=big), "payload_too_large", "body"
        )
        assert "2048 bytes" in body["error"]
        assert client.post("/commands/data/list", json={"collection": "c"}).json()["count"] == 0


def test_oversized_body_streamed_without_length(tmp_path: Path) -> None:
    from dbhandles import Settings

    def chunks() -> Iterator[bytes]:
        yield b'{"collection": "c", "data": {"blob": "'
        for _ in range(50):
            yield b"x" * 100
        yield b'"}}'

    with (
        Service(settings=Settings(home=tmp_path / "h", max_body_bytes=2048)) as svc,
        app_client(svc) as client,
    ):
        response = client.post("/commands/data/create", content=chunks())
        assert "content-length" not in {k.lower() for k in response.request.headers}
        assert_error(response, "payload_too_large", "body")


def test_query_open_body_far_over_the_cursor_spec_limit_is_refused_unread(tmp_path: Path) -> None:
    """A data/query-open body that cannot hold a query the cursor keeps is refused from its length
    (declared or streamed), before it is parsed; one within the limit still opens a cursor."""
    from dbhandles import Settings
    from dbhandles.server.http import LARGE_BODY, QUERY_BODY_FACTOR

    spec = 2048  # the least the setting allows is 1 KiB
    limit = QUERY_BODY_FACTOR * spec + LARGE_BODY
    settings = Settings(home=tmp_path / "h", max_cursor_spec_bytes=spec)
    huge = {"collection": "c", "filter": {"tag": {"$in": ["v" * 10] * (limit // 10)}}}

    def streamed() -> Iterator[bytes]:
        text = httpx.Request("POST", "http://x", json=huge).content
        for i in range(0, len(text), 1000):
            yield text[i : i + 1000]

    with Service(settings=settings) as svc, app_client(svc) as client:
        for response in (
            client.post("/commands/data/query-open", json=huge),
            client.post("/commands/data/query-open", content=streamed()),
        ):
            body = assert_error(response, "payload_too_large", "body")
            assert f"{limit} bytes" in body["error"]
            assert "DBHANDLES_MAX_CURSOR_SPEC_BYTES" in body["error"]
        # Within the body limit, the cursor's own check answers (the spec is measured).
        medium = {"collection": "c", "filter": {"tag": {"$in": ["v" * 10] * 400}}}
        assert_error(client.post("/commands/data/query-open", json=medium), "payload_too_large",
                     "filter")  # fmt: skip
        opened = client.post("/commands/data/query-open", json={"collection": "c"}).json()
        assert opened["success"] is True, opened
        # Other commands keep the general limit.
        assert client.post("/commands/data/list", json=huge).json()["success"] is True


def test_bad_content_length(client: Any) -> None:
    response = client.post("/commands/data/list", content=b"{}", headers={"content-length": "abc"})
    assert response.status_code in (400, 422)  # the HTTP layer may refuse it before the app does


def test_session_id_header_is_echoed(client: Any) -> None:
    body = client.post("/commands/data/list-handles", headers={"X-Session-Id": "sess-1"}).json()
    assert body["sessionId"] == "sess-1"
    assert_error(
        client.post("/commands/data/list-handles", headers={"X-Session-Id": "x" * 500}),
        "invalid_params",
    )


def test_unexpected_failure_is_500_without_traceback(
    client: Any, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> dict[str, Any]:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(service, "dispatch", boom)
    body = assert_error(client.post("/commands/data/list-handles"), "internal_error")
    assert "secret internals" not in body["error"]


def test_handler_crash_is_500_without_traceback(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(service: Service, params: Any, context: Any) -> Any:
        raise ZeroDivisionError("kaboom")

    monkeypatch.setitem(
        COMMANDS, "data/vacuum", dataclasses.replace(COMMANDS["data/vacuum"], handler=crash)
    )
    body = assert_error(client.post("/commands/data/vacuum"), "internal_error")
    assert "kaboom" not in body["error"]


def test_unknown_route_and_method_are_envelopes(client: Any) -> None:
    assert_error(client.get("/nothing/here"), "not_found", "path")
    response = client.delete("/commands/data/list")
    assert response.status_code == 405
    assert response.json()["success"] is False
    assert response.json()["code"] == "invalid_params"


def test_get_commands_lists_every_command_with_schemas(client: Any) -> None:
    body = client.get("/commands").json()
    names = [c["name"] for c in body["commands"]]
    assert names == sorted(COMMANDS)
    listing = next(c for c in body["commands"] if c["name"] == "data/list")
    assert "collection" in listing["params"]["properties"]
    assert listing["params"]["required"] == ["collection"]
    assert "items" in listing["result"]["properties"]
    one = client.get("/commands/data/list").json()
    assert one == listing
    assert_error(client.get("/commands/data/nope"), "unknown_command")


def test_openapi_documents_every_command(client: Any) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    for name, command in COMMANDS.items():
        post = doc["paths"][f"/commands/{name}"]["post"]
        assert post["summary"] == command.summary
        assert "200" in post["responses"] and "400" in post["responses"]
        ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.split("/")[-1] in doc["components"]["schemas"]
    assert "ErrorEnvelope" in doc["components"]["schemas"]


def test_health(client: Any, service: Service) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["service"] == "dbhandles"
    # The home is named by a hash (the CLI compares it with its own), never by its path.
    assert body["homeId"] == home_id(str(service.settings.home.resolve()))
    assert str(service.settings.home) not in str(body)


@pytest.mark.parametrize(
    ("path", "kind", "marker"),
    [("/", "text/html", "<title>dbhandles</title>"), ("/jtag.js", "text/javascript", "export const Commands"),
     ("/app.js", "text/javascript", "Events.subscribe"), ("/style.css", "text/css", ":root"),
     ("/favicon.svg", "image/svg+xml", "<svg")],
)  # fmt: skip
def test_static_files(client: Any, path: str, kind: str, marker: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(kind)
    assert marker in response.text


def test_the_page_loads_nothing_its_own_policy_refuses(client: Any) -> None:
    """The page's policy allows images from the server only (``default-src 'self'``): its icon is
    a file there, not a ``data:`` URL the browser would refuse."""
    response = client.get("/")
    assert "img-src" not in response.headers["content-security-policy"]
    assert "data:" not in response.text and 'href="/favicon.svg"' in response.text


def test_blocking_work_does_not_block_the_event_loop(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow command runs in a worker thread: /health answers while it is still running."""
    started = threading.Event()

    def slow(svc: Service, params: Any, context: Any) -> Any:
        started.set()
        time.sleep(1.5)
        raise DbHandlesError("done sleeping")

    slow_command: Command = dataclasses.replace(COMMANDS["data/vacuum"], handler=slow)
    monkeypatch.setitem(COMMANDS, "data/vacuum", slow_command)
    with ThreadServer(service) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        worker = threading.Thread(target=lambda: http.post("/commands/data/vacuum"))
        worker.start()
        assert started.wait(5)
        t0 = time.monotonic()
        assert http.get("/health").status_code == 200
        assert time.monotonic() - t0 < 0.5
        worker.join()


# -- tokens ---------------------------------------------------------------------------------------


def test_bearer_token_sets_the_actor(service: Service) -> None:
    token, _ = service.tokens.create("alice", admin=False)
    with app_client(service) as client:
        ok = client.post(
            "/commands/data/list-handles", headers={"Authorization": f"Bearer {token}"}
        )
        assert ok.status_code == 200
        assert_error(client.post("/commands/data/list-handles", headers={"Authorization": "Bearer dbh_nope"}),
                     "unauthorized")  # fmt: skip
        assert_error(client.post("/commands/data/list-handles", headers={"Authorization": "Basic abc"}),
                     "unauthorized")  # fmt: skip


def test_tokens_are_required_by_default(service: Service) -> None:
    from dbhandles.server import create_app

    assert create_app(service).state.dbhandles.require_token is True
    token, _ = service.tokens.create("admin", admin=True)
    with app_client(service, require_token=True) as client:
        body = assert_error(client.post("/commands/data/list-handles"), "unauthorized")
        assert "Bearer" in body["error"]
        ok = client.post(
            "/commands/data/list-handles", headers={"Authorization": f"Bearer {token}"}
        )
        assert ok.status_code == 200
        assert client.get("/health").status_code == 200  # liveness stays open for the CLI's probe


def test_requests_from_the_network_get_path_roots(service: Service, tmp_path: Path) -> None:
    """Over HTTP a database outside the allowed folders is refused (in-process it is the local user's)."""
    from dbhandles import Settings

    # By default the user's home folder is not an allowed root (only DBHANDLES_HOME and the temp folder)...
    user_home = Path.home().resolve()
    roots = service.settings.roots()
    assert not any(user_home == root or root in user_home.parents for root in roots)
    # ...and a path outside the roots is refused: shown with roots inside the test's own folder.
    outside = tmp_path / "outside" / "db.sqlite"
    settings = Settings(home=tmp_path / "roots-home", allowed_roots=(tmp_path / "roots-home",))
    params = {"adapter": "sqlite", "config": {"path": str(outside), "mode": "create"}}
    with Service(settings=settings) as svc, app_client(svc) as client:
        body = client.post("/commands/data/open", json=params).json()
    assert body["success"] is False
    assert body["code"] == "path_not_allowed", body
    assert not outside.exists()


@pytest.mark.parametrize(
    "headers",
    [{"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}, {"Origin": "http://evil.example"},
     {"Origin": "null"}, {"Origin": "http://127.0.0.1:9999"}],
)  # fmt: skip
def test_cross_site_requests_are_refused(client: Any, headers: dict[str, str]) -> None:
    body = assert_error(client.post("/commands/data/list-handles", headers=headers), "forbidden")
    assert "web page" in body["error"]


def test_same_origin_requests_are_served(client: Any) -> None:
    headers = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    assert client.post("/commands/data/list-handles", headers=headers).status_code == 200


def test_authenticated_requests_refused_before_a_command_runs_are_audited(
    service: Service,
) -> None:
    """An unknown command or a body that is no params object leaves an audit row too (issue 12)."""
    token = service.execute("token/create", {"actor": "carol"})["token"]
    headers = {"Authorization": f"Bearer {token}"}
    with app_client(service, require_token=True) as client:
        assert client.post("/commands/nonexistent/cmd", headers=headers).status_code == 404
        assert (
            client.post("/commands/data/list", headers=headers, content=b"[1, 2]").status_code
            == 400
        )
        assert (
            client.post("/commands/data/list", headers=headers, content=b"not json").status_code
            == 400
        )
    service.audit.flush()
    rows = service.execute("data/audit", {"actor": "carol"})["entries"]
    assert sorted((r["command"], r["code"]) for r in rows) == [
        ("data/list", "invalid_params"),
        ("data/list", "invalid_params"),
        ("nonexistent/cmd", "unknown_command"),
    ]
