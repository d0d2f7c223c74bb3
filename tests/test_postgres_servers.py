"""Two ``jtag serve`` processes on one PostgreSQL default serve the same handles, cursors and events.

Each server has its own home folder (as two hosts would); ``DBHANDLES_DEFAULT_URL`` points both at
one schema of the throwaway PostgreSQL server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dbhandles import Settings
from tests.pgserver import postgres_config, require_postgres, schema_for
from tests.servers import ServerProcess, next_event, subscribed

pytestmark = [pytest.mark.postgres, pytest.mark.needs_server]


def _require_wiring() -> None:
    if "default_url" not in Settings.__dataclass_fields__:
        pytest.fail(
            "Settings.default_url is missing: apply the PostgreSQL-default wiring (pgdefault.py)"
        )


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    _require_wiring()
    url = f"{require_postgres().tcp_url}?schema={schema_for(tmp_path)}"
    first = ServerProcess(tmp_path / "host-a")
    second = ServerProcess(tmp_path / "host-b")
    for server in (first, second):
        server.env["DBHANDLES_DEFAULT_URL"] = url
    # One after the other: the first start creates the admin token, which then serves both.
    with first, second:
        yield first, second


class Client:
    """Commands over HTTP to one server, with the token and session id every server accepts."""

    def __init__(self, server: ServerProcess, token: str) -> None:
        self.server = server
        self.http = httpx.Client(
            base_url=server.url,
            headers={"Authorization": f"Bearer {token}", "X-Session-Id": "walker"},
            timeout=30,
        )

    def __call__(self, command: str, **params: Any) -> dict[str, Any]:
        envelope: dict[str, Any] = self.http.post(f"/commands/{command}", json=params).json()
        assert envelope["success"] is True, (self.server.url, command, envelope)
        return envelope

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def clients(servers: tuple[ServerProcess, ServerProcess]) -> Iterator[tuple[Client, Client]]:
    token = servers[0].token
    pair = (Client(servers[0], token), Client(servers[1], token))
    yield pair
    for client in pair:
        client.close()


def test_a_handle_opened_on_one_server_works_on_the_other(
    clients: tuple[Client, Client], tmp_path: Path
) -> None:
    a, b = clients
    assert a("data/list-handles")["handles"][0]["adapter"] == "postgres"
    handle = a(
        "data/open", adapter="postgres", config=postgres_config(tmp_path / "data"), alias="training"
    )["dbHandle"]
    b(
        "data/create",
        dbHandle="training",
        collection="examples",
        id="e1",
        data={"label": "positive"},
    )
    assert (
        a("data/read", dbHandle=handle, collection="examples", id="e1")["data"]["label"]
        == "positive"
    )
    a("data/create", collection="notes", id="n1", data={"on": "default"})
    assert b("data/read", collection="notes", id="n1")["found"] is True
    assert [h["handle"] for h in b("data/list-handles")["handles"]] == ["default", handle]
    b("data/close", dbHandle="training")
    gone = a.http.post(
        "/commands/data/read", json={"dbHandle": handle, "collection": "examples", "id": "e1"}
    )
    assert gone.json()["code"] == "handle_not_found"


def test_query_next_alternating_between_servers_walks_one_cursor(
    clients: tuple[Client, Client],
) -> None:
    a, b = clients
    ops = [
        {"op": "create", "collection": "rows", "id": f"r{i:03d}", "data": {"i": i}}
        for i in range(23)
    ]
    a("data/batch", operations=ops)
    cursor = b("data/query-open", collection="rows", orderBy=["id"], pageSize=5)["queryHandle"]
    pages = []
    for turn in range(7):
        page = (a, b)[turn % 2]("data/query-next", queryHandle=cursor)
        pages.append((page["pageNumber"], [item["id"] for item in page["items"]], page["hasMore"]))
    assert [p[0] for p in pages[:5]] == [0, 1, 2, 3, 4]
    assert [i for p in pages for i in p[1]] == [f"r{i:03d}" for i in range(23)]
    assert pages[4][2] is False and pages[5][1] == [] and pages[6][1] == []


def test_a_write_on_one_server_reaches_a_subscriber_on_the_other(
    servers: tuple[ServerProcess, ServerProcess], clients: tuple[Client, Client]
) -> None:
    a, _ = clients
    with subscribed(servers[1], servers[0].token) as socket:
        a("data/create", collection="notes", id="n1", data={"text": "hello"})
        event = next_event(socket)
        assert event["event"] == "data:notes:created"
        assert (
            event["payload"]["dbHandle"] == "default"
            and event["payload"]["record"]["text"] == "hello"
        )
        # Larger than a NOTIFY payload may be: it travels by reference, whole.
        a("data/update", collection="notes", id="n1", data={"text": "x" * 20_000})
        event = next_event(socket)
        assert (
            event["event"] == "data:notes:updated"
            and len(event["payload"]["record"]["text"]) == 20_000
        )


def test_servers_stop_cleanly(servers: tuple[ServerProcess, ServerProcess]) -> None:
    for server in servers:
        assert server.stop() == 0, server.output
        assert "Traceback" not in server.output
