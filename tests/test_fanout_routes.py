"""The fan-out's work per event is one step per socket, not per subscription (issue 13): which
patterns match an event name is worked out once per name, and the access generation is read once per
batch of events; a new subscription is seen by the next event."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.server import fanout as fanout_module
from dbhandles.server.ws_guard import Guard
from tests.servers import app_client


def test_patterns_are_matched_once_per_event_name(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    routed: list[str] = []
    original = fanout_module._routes

    def counting(name: str, patterns: Any) -> Any:
        routed.append(name)
        return original(name, patterns)

    monkeypatch.setattr(fanout_module, "_routes", counting)
    reads: list[int] = []
    generation_now = Guard.generation_now

    def counting_reads(self: Guard) -> Any:
        reads.append(1)
        return generation_now(self)

    monkeypatch.setattr(Guard, "generation_now", counting_reads)
    with app_client(service) as client, contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(client.websocket_connect("/ws")) for _ in range(3)]
        for socket_ in sockets:
            assert socket_.receive_json()["type"] == "hello"
            for i in range(20):
                socket_.send_json({"type": "subscribe", "id": i, "pattern": f"data:c{i}:*" if i else "data:*"})  # fmt: skip
            assert [socket_.receive_json()["type"] for _ in range(20)] == ["subscribed"] * 20
        for n in range(5):
            service.execute("data/create", {"collection": "c1", "id": f"r{n}", "data": {"n": n}})
        for socket_ in sockets:
            got = [socket_.receive_json() for _ in range(5)]
            assert [g["patterns"] for g in got] == [["data:*", "data:c1:*"]] * 5
            assert [g["payload"]["record"]["id"] for g in got] == [f"r{n}" for n in range(5)]
        assert routed == ["data:c1:created"]  # 5 events, 3 sockets, 60 patterns: matched once
        assert 1 <= len(reads) <= 5  # once per batch, never once per socket and event
        # A subscription made now changes the patterns: the next event is routed afresh.
        sockets[0].send_json({"type": "subscribe", "id": 99, "pattern": "data:c1:created"})
        assert sockets[0].receive_json()["type"] == "subscribed"
        service.execute("data/create", {"collection": "c1", "id": "r9", "data": {}})
        assert sockets[0].receive_json()["patterns"] == ["data:*", "data:c1:*", "data:c1:created"]
        assert routed == ["data:c1:created"] * 2
