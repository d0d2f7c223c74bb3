"""Reading a command's request body: taken at once when the server already holds it, otherwise
read within the body deadline; the size limit and a client that leaves hold on both paths."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dbhandles.errors import PayloadTooLarge, RequestTimeout
from dbhandles.server.bodies import read_body as _read


class Cycle:
    """What uvicorn's request cycle shows of a request: ``more_body`` false once the whole body
    is held, and ``receive`` handing out the messages (waiting, like uvicorn, when none is due)."""

    def __init__(self, messages: list[dict[str, Any]], complete: bool) -> None:
        self.messages = messages
        self.more_body = not complete

    async def receive(self) -> dict[str, Any]:
        if not self.messages:
            await asyncio.sleep(3600)  # a client that sends no more
        return self.messages.pop(0)


def body(data: bytes, more: bool = False) -> dict[str, Any]:
    return {"type": "http.request", "body": data, "more_body": more}


@pytest.mark.parametrize("complete", [True, False])
def test_a_body_is_read_whole_whether_or_not_it_had_arrived(complete: bool) -> None:
    parts = [body(b'{"a":'), body(b"1}")] if not complete else [body(b'{"a":1}')]
    if not complete:
        parts[0]["more_body"] = True
    cycle = Cycle(parts, complete)
    assert asyncio.run(_read(cycle.receive, 100, 5.0)) == b'{"a":1}'


def test_a_body_held_in_full_needs_no_deadline() -> None:
    # No timer is armed for it: even a deadline already past does not refuse it.
    cycle = Cycle([body(b"{}")], complete=True)
    assert asyncio.run(_read(cycle.receive, 100, 0.0)) == b"{}"


@pytest.mark.parametrize("complete", [True, False])
def test_a_body_over_the_limit_is_refused_on_both_paths(complete: bool) -> None:
    cycle = Cycle([body(b"x" * 101)], complete)
    with pytest.raises(PayloadTooLarge):
        asyncio.run(_read(cycle.receive, 100, 5.0, "data/create"))


@pytest.mark.parametrize("complete", [True, False])
def test_a_client_that_left_is_no_body(complete: bool) -> None:
    cycle = Cycle([{"type": "http.disconnect"}], complete)
    assert asyncio.run(_read(cycle.receive, 100, 5.0)) is None


def test_a_body_still_arriving_is_cut_at_the_deadline() -> None:
    cycle = Cycle([body(b'{"a":', more=True)], complete=False)
    with pytest.raises(RequestTimeout) as caught:
        asyncio.run(_read(cycle.receive, 100, 0.05))
    assert "5 bytes came" in caught.value.message


def test_another_servers_receive_is_always_read_within_the_deadline() -> None:
    # A receive that is no uvicorn cycle (another ASGI server, Starlette's routing): it may wait.
    cycle = Cycle([], complete=True)

    async def receive() -> dict[str, Any]:
        return await cycle.receive()

    with pytest.raises(RequestTimeout):
        asyncio.run(_read(receive, 100, 0.05))
