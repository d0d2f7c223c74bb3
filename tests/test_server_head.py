"""What a request head may be, and an end that loses no answer (issue 13): a head over
``DBHANDLES_MAX_HEADER_BYTES`` or of more than ``MAX_HEADER_FIELDS`` fields is answered 431 with the
error envelope without being held; a malformed request after complete ones, and a client's end of
stream (a half-close), come only after the answers of every request received before them.

Every server is ``server_config`` (what ``jtag serve`` runs) on loopback in a thread; every wait is
bounded, and nothing asserts a speed.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

import orjson
import pytest

from dbhandles.server.connections import MAX_HEADER_FIELDS
from tests.server_helpers import (
    closed_by_server,
    connect,
    health_from,
    post,
    read_answer,
    serving,
)

HEAD = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    """Send ``data``; a server that refused and closed may reset the rest (that is its right)."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


def _refused_431(sock: socket.socket) -> dict[str, object]:
    status, headers, body = read_answer(sock)
    envelope = orjson.loads(body)
    assert status == 431, body
    assert (envelope["success"], envelope["code"], envelope["field"]) == (
        False,
        "payload_too_large",
        "headers",
    )
    assert headers["connection"] == "close"
    assert closed_by_server(sock)
    return envelope


# -- the head's bound ------------------------------------------------------------------------------


def test_a_header_line_over_the_limit_is_answered_431_and_closed(home: Path) -> None:
    with serving(home, max_header_bytes=16 * 1024) as (_service, served):
        sock = connect(served.port)
        big = HEAD + b"X-Big: " + b"x" * (1 << 20)  # a 1 MB header line that never ends
        sender = threading.Thread(target=_send_quietly, args=(sock, big))
        sender.start()
        envelope = _refused_431(sock)
        assert "DBHANDLES_MAX_HEADER_BYTES" in str(envelope["error"])
        sender.join(20)
        sock.close()
        # The server holds nothing of it, and serves everyone else.
        assert health_from(served.url, "127.0.0.1").status_code == 200


def test_many_small_headers_over_the_byte_limit_are_refused_too(home: Path) -> None:
    with serving(home, max_header_bytes=4096) as (_service, served):
        sock = connect(served.port)
        headers = b"".join(b"X-A%d: %d\r\n" % (i % 90, i) for i in range(5000))
        sender = threading.Thread(target=_send_quietly, args=(sock, HEAD + headers + b"\r\n"))
        sender.start()
        _refused_431(sock)
        sender.join(20)
        sock.close()


def test_more_header_fields_than_the_limit_are_answered_431(home: Path) -> None:
    with serving(home) as (_service, served):
        sock = connect(served.port)
        fields = b"".join(b"X-F: %d\r\n" % i for i in range(MAX_HEADER_FIELDS))
        sock.sendall(HEAD + fields + b"\r\n")  # Host plus the limit: one too many
        envelope = _refused_431(sock)
        assert str(MAX_HEADER_FIELDS) in str(envelope["error"])
        sock.close()


def test_a_head_just_under_both_limits_is_served(home: Path) -> None:
    with serving(home, max_header_bytes=8192) as (_service, served):
        sock = connect(served.port)
        fields = b"".join(b"X-F: %d\r\n" % i for i in range(MAX_HEADER_FIELDS - 2))
        pad = b"X-Pad: " + b"p" * (8192 - len(HEAD) - len(fields) - 200) + b"\r\n"
        head = HEAD + fields + pad + b"\r\n"
        assert len(head) < 8192
        sock.sendall(head)
        assert read_answer(sock)[0] == 200
        sock.close()


def test_a_large_body_after_a_small_head_is_not_counted_as_head(home: Path) -> None:
    # One write holds the head and a body ten times the head limit: only the head counts.
    with serving(home, max_header_bytes=4096) as (service, served):
        sock = connect(served.port)
        sock.sendall(
            post("data/create", {"collection": "c", "id": "r1", "data": {"x": "y" * 40_000}})
        )
        status, _, body = read_answer(sock)
        assert status == 200, body
        assert service.execute("data/read", {"collection": "c", "id": "r1"})["found"]
        sock.close()


def test_a_pipelined_head_over_the_limit_comes_after_the_answer_before_it(home: Path) -> None:
    with serving(home, max_header_bytes=4096) as (service, served):
        sock = connect(served.port)
        create = post("data/create", {"collection": "c", "id": "r1", "data": {"x": 1}})
        sender = threading.Thread(
            target=_send_quietly, args=(sock, create + HEAD + b"X-Big: " + b"x" * 200_000)
        )
        sender.start()
        stream = sock.makefile("rb")
        status, _, body = read_answer(stream)
        assert status == 200 and orjson.loads(body)["id"] == "r1"
        status, _, body = read_answer(stream)
        assert (status, orjson.loads(body)["code"]) == (431, "payload_too_large")
        sender.join(20)
        stream.close()
        sock.close()
        assert service.execute("data/read", {"collection": "c", "id": "r1"})["found"]


# -- the bound at its edge: a head that begins inside a piece counts from where it begins -------------

LIMIT = 64 * 1024


def _head(size: int, body: bytes = b"") -> bytes:
    """A request head of exactly ``size`` bytes (its blank line included), then ``body``."""
    start = b"POST /commands/data/create HTTP/1.1\r\nHost: 127.0.0.1\r\n" if body else HEAD
    if body:
        start += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    pad = b"X-Pad: " + b"p" * (size - len(start) - len(b"X-Pad: \r\n\r\n")) + b"\r\n\r\n"
    head = start + pad
    assert len(head) == size
    return head + body


def _create(record_id: str) -> bytes:
    return orjson.dumps({"collection": "c", "id": record_id, "data": {"x": "y" * 100}})


@pytest.mark.parametrize("with_body", [False, True])
def test_a_head_of_exactly_the_limit_is_served_and_one_byte_more_is_431(
    home: Path, with_body: bool
) -> None:
    # The first request of a connection: its head begins in the first piece read, which counts.
    with serving(home) as (_service, served):
        assert _service.settings.max_header_bytes == LIMIT
        sock = connect(served.port)
        sock.sendall(_head(LIMIT, _create("r1") if with_body else b""))
        assert read_answer(sock)[0] == 200
        sock.close()
        sock = connect(served.port)
        sender = threading.Thread(
            target=_send_quietly, args=(sock, _head(LIMIT + 1, _create("r2") if with_body else b""))
        )
        sender.start()
        _refused_431(sock)
        sender.join(20)
        sock.close()


@pytest.mark.parametrize("before", ["get", "post"])
def test_a_pipelined_head_is_bound_at_the_limit_after_a_request_in_the_same_piece(
    home: Path, before: str
) -> None:
    # A body of its own before the head (a 40 KB one: most of the piece the head begins in).
    body = {"collection": "c", "data": {"x": "y" * 40_000}}
    first = HEAD + b"\r\n" if before == "get" else post("data/create", body)
    with serving(home) as (_service, served):
        sock = connect(served.port)
        sock.sendall(first + _head(LIMIT))
        stream = sock.makefile("rb")
        assert read_answer(stream)[0] == 200
        assert read_answer(stream)[0] == 200
        stream.close()
        sock.close()
        sock = connect(served.port)
        sender = threading.Thread(target=_send_quietly, args=(sock, first + _head(LIMIT + 1)))
        sender.start()
        stream = sock.makefile("rb")
        assert read_answer(stream)[0] == 200
        status, _, body = read_answer(stream)
        assert (status, orjson.loads(body)["code"]) == (431, "payload_too_large")
        sender.join(20)
        stream.close()
        sock.close()


# -- every request that ran is answered, before the connection's end ---------------------------------


def _stored(service: object, *ids: str) -> list[bool]:
    return [
        service.execute("data/read", {"collection": "c", "id": i})["found"]  # type: ignore[attr-defined]
        for i in ids
    ]


def test_a_malformed_request_after_a_create_is_answered_after_the_create(home: Path) -> None:
    with serving(home) as (service, served):
        sock = connect(served.port)
        sock.sendall(post("data/create", {"collection": "c", "id": "r1", "data": {"a": 1}})
                     + b"GARBAGE\r\n\r\n")  # fmt: skip
        stream = sock.makefile("rb")
        status, _, body = read_answer(stream)
        assert (status, orjson.loads(body)["id"]) == (200, "r1")
        status, headers, body = read_answer(stream)
        envelope = orjson.loads(body)
        assert (status, envelope["code"], envelope["field"]) == (400, "invalid_params", "request")
        assert headers["connection"] == "close"
        assert stream.read() == b""  # then closed
        stream.close()
        sock.close()
        assert _stored(service, "r1") == [True]


def test_two_pipelined_creates_then_garbage_are_both_run_and_answered_in_order(
    home: Path,
) -> None:
    with serving(home) as (service, served):
        sock = connect(served.port)
        sock.sendall(post("data/create", {"collection": "c", "id": "r1", "data": {"a": 1}})
                     + post("data/create", {"collection": "c", "id": "r2", "data": {"a": 2}})
                     + b"GARBAGE\r\n\r\n")  # fmt: skip
        stream = sock.makefile("rb")
        answers = [read_answer(stream) for _ in range(3)]
        assert [a[0] for a in answers] == [200, 200, 400]
        assert [orjson.loads(a[2]).get("id") for a in answers[:2]] == ["r1", "r2"]
        assert stream.read() == b""
        stream.close()
        sock.close()
        assert _stored(service, "r1", "r2") == [True, True]


def test_a_request_whose_body_is_cut_by_garbage_is_not_run(home: Path) -> None:
    # A chunked body that turns into garbage: that request never completed, so it does not run.
    with serving(home) as (service, served):
        sock = connect(served.port)
        sock.sendall(
            b"POST /commands/data/create HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'5\r\n{"col\r\nZZZ not a chunk size\r\n\r\n'
        )
        status, _, body = read_answer(sock)
        assert (status, orjson.loads(body)["code"]) == (400, "invalid_params")
        assert closed_by_server(sock)
        sock.close()
        assert service.execute("data/list", {"collection": "c"})["items"] == []


@pytest.mark.parametrize("pipelined", [1, 2])
def test_a_half_closed_client_still_gets_every_answer(home: Path, pipelined: int) -> None:
    with serving(home) as (service, served):
        sock = connect(served.port)
        ids = [f"r{i}" for i in range(pipelined)]
        sock.sendall(b"".join(post("data/create", {"collection": "c", "id": i, "data": {}})
                              for i in ids))  # fmt: skip
        sock.shutdown(socket.SHUT_WR)  # the client is done sending (RFC 9112 §9.6)
        stream = sock.makefile("rb")
        answers = [read_answer(stream) for _ in ids]
        assert [(s, orjson.loads(b)["id"]) for s, _, b in answers] == [(200, i) for i in ids]
        assert stream.read() == b""  # then the server closes
        stream.close()
        sock.close()
        assert _stored(service, *ids) == [True] * pipelined


def test_a_half_close_in_the_middle_of_a_request_runs_nothing(home: Path) -> None:
    with serving(home) as (service, served):
        sock = connect(served.port)
        whole = post("data/create", {"collection": "c", "id": "r1", "data": {"a": 1}})
        sock.sendall(whole[:-3])  # the body is three bytes short
        sock.shutdown(socket.SHUT_WR)
        assert closed_by_server(sock)
        sock.close()
        assert service.execute("data/list", {"collection": "c"})["items"] == []


def test_a_half_closed_idle_connection_is_closed(home: Path) -> None:
    with serving(home) as (_service, served):
        sock = connect(served.port)
        sock.sendall(HEAD + b"\r\n")
        assert read_answer(sock)[0] == 200
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(100) == b""  # closed at once, not at the keep-alive deadline
        sock.close()


def test_a_late_pipelined_head_is_answered_408_after_the_requests_before_it(home: Path) -> None:
    with serving(home, header_timeout_seconds=1.0) as (service, served):
        sock = connect(served.port)
        sock.sendall(post("data/create", {"collection": "c", "id": "r1", "data": {}})
                     + post("data/create", {"collection": "c", "id": "r2", "data": {}})
                     + b"POST /commands/data/list HTTP/1.1\r\n")  # fmt: skip
        stream = sock.makefile("rb")
        answers = [read_answer(stream) for _ in range(3)]
        assert [a[0] for a in answers] == [200, 200, 408]
        assert orjson.loads(answers[2][2])["code"] == "request_timeout"
        assert stream.read() == b""
        stream.close()
        sock.close()
        assert _stored(service, "r1", "r2") == [True, True]
