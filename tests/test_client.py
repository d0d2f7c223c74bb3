"""``dbhandles.client.Client``: same results and same exceptions as the in-process API; events over /ws."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dbhandles import DbHandlesError, Service, Settings
from dbhandles.client import Client
from dbhandles.commands.handles import OpenParams
from tests.servers import ThreadServer, free_port

UNREACHABLE_HINT = "cannot reach|cannot open the event socket|without a dbhandles envelope"
VOLATILE = {"timestamp", "openedAt", "lastUsedAt", "sessionId"}


@pytest.fixture
def server(service: Service) -> Iterator[ThreadServer]:
    with ThreadServer(service) as running:
        yield running


@pytest.fixture
def client(server: ThreadServer) -> Iterator[Client]:
    with Client(server.url) as remote:
        yield remote


def stable(value: Any) -> Any:
    """An envelope without the fields that differ from call to call."""
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def test_same_results_as_in_process(client: Client, service: Service, tmp_path: Path) -> None:
    opened = client.execute("data/open", {"adapter": "sqlite", "config": {"path": str(tmp_path / "a.sqlite"),
                                                                           "mode": "create"}})  # fmt: skip
    handle = opened["dbHandle"]
    client.execute(
        "data/create", {"dbHandle": handle, "collection": "c", "data": {"x": 1}, "id": "r1"}
    )
    for name, params in [
        ("data/read", {"dbHandle": handle, "collection": "c", "id": "r1"}),
        ("data/list", {"dbHandle": handle, "collection": "c"}),
        ("data/schema", {"dbHandle": handle}),
        ("data/list-handles", {}),
    ]:
        assert stable(client.execute(name, params)) == stable(service.execute(name, params))


CASES: list[tuple[str, dict[str, Any]]] = [
    ("data/close", {"dbHandle": "default"}),
    ("data/list", {"dbHandle": "no-such-handle", "collection": "c"}),
    ("data/list", {"collection": "c", "limit": "many"}),
    ("data/list", {"collection": "line\nbreak"}),
    ("data/create", {"collection": "c"}),
    ("data/nope", {}),
    ("data/open", {"adapter": "nosql"}),
    ("data/query-next", {"queryHandle": "00000000-0000-4000-8000-000000000000"}),
    ("data/list", {"collection": "c", "filter": {"x": {"$near": 1}}}),
]


@pytest.mark.parametrize(("name", "params"), CASES)
def test_same_exceptions_as_in_process(
    client: Client, service: Service, name: str, params: dict[str, Any]
) -> None:
    with pytest.raises(DbHandlesError) as local:
        service.execute(name, params)
    with pytest.raises(DbHandlesError) as remote:
        client.execute(name, params)
    assert type(remote.value) is type(local.value)
    assert (remote.value.code, remote.value.field) == (local.value.code, local.value.field)
    assert remote.value.message == local.value.message or name == "data/nope"


def test_record_exists_is_the_same_exception(client: Client) -> None:
    from dbhandles import RecordExists

    client.execute("data/create", {"collection": "c", "data": {}, "id": "dup"})
    with pytest.raises(RecordExists):
        client.execute("data/create", {"collection": "c", "data": {}, "id": "dup"})


def test_dispatch_returns_the_failure_envelope(client: Client) -> None:
    envelope = client.dispatch("data/close", {"dbHandle": "default"})
    assert (envelope["success"], envelope["code"]) == (False, "default_handle_protected")


def test_params_may_be_a_model(client: Client) -> None:
    result = client.execute("data/open", OpenParams(adapter="memory", config={}))
    assert result["adapter"] == "memory"


def test_unreachable_server() -> None:
    with Client(f"http://127.0.0.1:{free_port()}") as dead:
        assert dead.dispatch("data/list-handles")["code"] == "server_unreachable"
        with pytest.raises(DbHandlesError, match=UNREACHABLE_HINT) as gone:
            dead.execute("data/list-handles")
        assert (gone.value.code, gone.value.http_status) == ("server_unreachable", 503)
        with pytest.raises(DbHandlesError, match=UNREACHABLE_HINT):
            dead.events("data:*")


def test_not_a_dbhandles_server() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text="<html>hello</html>"))
    with (
        Client("http://example.invalid", transport=transport) as other,
        pytest.raises(DbHandlesError, match=UNREACHABLE_HINT),
    ):
        other.execute("data/list-handles")


def test_events_iterator(client: Client) -> None:
    with client.events(["data:notes:*"]) as events:
        assert events.session_id
        client.execute("data/create", {"collection": "other", "data": {}})
        client.execute("data/create", {"collection": "notes", "data": {"t": 1}, "id": "n1"})
        client.execute("data/update", {"collection": "notes", "id": "n1", "data": {"t": 2}})
        first = next(events)
        second = events.get(timeout=5)
        assert (first.name, first.payload["id"]) == ("data:notes:created", "n1")
        assert (second.name, second.payload["record"]["t"]) == ("data:notes:updated", 2)
        with pytest.raises(TimeoutError):
            events.get(timeout=0.2)


def test_events_from_writes_in_another_thread(client: Client, server: ThreadServer) -> None:
    with client.events("data:*") as events:

        def writer() -> None:
            with Client(server.url) as other:
                for i in range(5):
                    other.execute("data/create", {"collection": "t", "data": {"i": i}})

        thread = threading.Thread(target=writer)
        thread.start()
        got = [events.get(timeout=5).payload["record"]["i"] for _ in range(5)]
        thread.join()
        assert got == [0, 1, 2, 3, 4]


def test_bad_pattern_is_refused(client: Client) -> None:
    from dbhandles import InvalidParams

    with pytest.raises(InvalidParams):
        client.events([""])


def test_client_against_a_server_on_another_home(tmp_path: Path) -> None:
    with (
        Service(settings=Settings(home=tmp_path / "other")) as svc,
        ThreadServer(svc) as srv,
        Client(srv.url) as c,
    ):
        assert c.execute("data/list-handles")["handles"][0]["config"]["path"].startswith(
            str(tmp_path / "other")
        )
