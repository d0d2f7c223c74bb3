"""The routes that need no token cost O(1) on the loop: documents built once, ETags, and a limit per
address on such requests in progress (server/public.py, issue 13)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.commands.grammar import SETTING_MAXIMUM
from dbhandles.errors import TooManyRequests
from dbhandles.server import create_app, public
from dbhandles.server.public import PUBLIC_REQUESTS_PER_ADDRESS, STATIC_FILES, PublicLimit
from tests.servers import app_client

#: Every route that needs no token, and what builds its document.
PUBLIC_GETS = ["/openapi.json", "/commands", "/commands/data/list", *STATIC_FILES]


@pytest.fixture
def client(service: Service) -> Iterator[Any]:
    with app_client(service) as test_client:
        yield test_client


def test_each_document_is_built_once_per_server(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    for name in ("openapi_document", "commands_listing", "command_info"):
        real = getattr(public, name)

        def counting(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(public, name, counting)
    for _ in range(3):
        for path in PUBLIC_GETS:
            assert client.get(path).status_code == 200, path
    # /openapi.json and /commands were built at start-up, before any connection (issue 13: the
    # first build, on the loop, stalled a flood's every client): only the command's entry is new.
    assert calls == ["command_info"]
    state = client.app.state.dbhandles
    assert state.documents.builds == len(PUBLIC_GETS)


def test_documents_show_the_server_settings(service: Service, client: Any) -> None:
    """Built once, the document still has this server's limits (not the unapplied template)."""
    for path in ("/openapi.json", "/commands", "/commands/data/list"):
        text = client.get(path).text
        assert SETTING_MAXIMUM not in text
        assert f'"maximum":{service.settings.max_limit}' in text, path


@pytest.mark.parametrize("path", PUBLIC_GETS)
def test_a_known_etag_is_answered_304_without_a_body(client: Any, path: str) -> None:
    first = client.get(path)
    etag = first.headers["etag"]
    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert client.get(path, headers={"If-None-Match": '"other"'}).content == first.content


def test_the_dashboard_keeps_its_page_headers(client: Any) -> None:
    page = client.get("/")
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["content-type"].startswith("text/html")


def test_an_unknown_command_entry_is_the_documented_error(client: Any) -> None:
    answer = client.get("/commands/data/nope")
    assert answer.status_code == 404
    assert answer.json()["code"] == "unknown_command"


def test_public_limit_counts_per_address() -> None:
    limit = PublicLimit(2)
    limit.enter("a", holding=True)
    limit.enter("a", holding=True)
    limit.enter("b", holding=True)
    with pytest.raises(TooManyRequests, match="already has 2 answers"):
        limit.enter("a", holding=True)
    limit.leave("a")
    limit.enter("a", holding=True)  # room again once one finished
    for _ in range(3):
        limit.leave("a")
    limit.leave("b")
    assert not limit.counts


# /health is not among them: it is never refused so (tests/test_public_written.py).
@pytest.mark.parametrize("path", ["/openapi.json", "/", "/no/such/route"])
def test_clients_that_never_read_hold_only_their_own_requests(service: Service, path: str) -> None:
    """Requests whose answer cannot be written (a client that does not read: ``send`` never
    returns) are counted each, up to ``PUBLIC_REQUESTS_PER_ADDRESS`` and past it; a request from
    that address on a connection that holds no unsent answer is still served (they held the
    dashboard for everyone at their address, issue 13), and the counts come back."""
    app = create_app(service, require_token=False, hosts=("testserver",))
    state = app.state.dbhandles

    def scope(address: str) -> dict[str, Any]:
        return {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
                "query_string": b"", "headers": [(b"host", b"testserver")], "http_version": "1.1",
                "scheme": "http", "server": ("testserver", 80), "client": (address, 5000),
                "root_path": "", "app": app}  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def main() -> None:
        stuck = asyncio.Event()

        async def never_read(message: dict[str, Any]) -> None:
            await stuck.wait()

        held = [asyncio.create_task(app(scope("10.0.0.1"), receive, never_read))
                for _ in range(PUBLIC_REQUESTS_PER_ADDRESS)]  # fmt: skip
        await asyncio.sleep(0)
        for _ in range(5):
            await asyncio.sleep(0)
        assert state.public.counts["10.0.0.1"] == PUBLIC_REQUESTS_PER_ADDRESS
        sent: list[dict[str, Any]] = []

        async def collect(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope("10.0.0.1"), receive, collect)
        assert sent[0]["status"] in (200, 404)
        sent.clear()
        await app(scope("10.0.0.2"), receive, collect)
        assert sent[0]["status"] in (200, 404)
        stuck.set()
        await asyncio.gather(*held)
        assert not state.public.counts

    asyncio.run(main())
