"""Reading a command request's body: its declared length against the limit, then the bytes, within
a deadline (``http.serve_command`` decides when, and whether the token is checked first)."""

from __future__ import annotations

import asyncio

from starlette.types import Receive

from dbhandles.errors import InvalidParams, PayloadTooLarge, RequestTimeout

__all__ = ["QUERY_OPEN", "declared_length", "read_body", "too_large"]

QUERY_OPEN = "data/query-open"


def too_large(limit: int, name: str | None = None) -> PayloadTooLarge:
    if name == QUERY_OPEN:
        return PayloadTooLarge(
            f"request body is larger than {limit} bytes, which no data/query-open can need: a "
            "query cursor keeps at most DBHANDLES_MAX_CURSOR_SPEC_BYTES of query (filter, orderBy "
            "and fields as JSON); use a smaller filter, or data/list",
            field="body",
        )
    return PayloadTooLarge(
        f"request body is larger than {limit} bytes; send less per request (data/batch in several "
        "parts) or raise DBHANDLES_MAX_BODY_BYTES on the server",
        field="body",
    )


def declared_length(declared: str | None, limit: int, name: str | None = None) -> int | None:
    """The declared Content-Length, if any.

    Raises:
        InvalidParams: it is not a number. PayloadTooLarge: it is over ``limit``.
    """
    if declared is None:
        return None
    try:
        length = int(declared)
    except ValueError:
        raise InvalidParams("Content-Length is not a number", field="Content-Length") from None
    if length > limit:
        raise too_large(limit, name)
    return length


def _arrived(receive: Receive) -> bool:
    """Whether the server already holds the whole request body, so that ``receive`` returns it
    without waiting: uvicorn's request cycle says so (``more_body`` false once the message is
    complete); of any other server it is not known."""
    return getattr(getattr(receive, "__self__", None), "more_body", True) is False


async def read_body(
    receive: Receive, limit: int, timeout: float, name: str | None = None
) -> bytes | None:
    """The body, or None if the client disconnected.

    A body the server already holds in full (``_arrived``: the usual small request, which came
    with its headers) is taken without arming the timeout (a timer per request costs more than
    the rest of the read); any other is read within ``timeout``.

    Raises:
        PayloadTooLarge: more than ``limit`` bytes arrived (whatever Content-Length said).
        RequestTimeout: the body did not arrive in full within ``timeout`` seconds.
    """
    if _arrived(receive):
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body: bytes = message.get("body", b"")
        if len(body) > limit:
            raise too_large(limit, name)
        if not message.get("more_body", False):
            return body
        chunks, total = [body], len(body)  # not expected of uvicorn: read the rest as below
    else:
        chunks, total = [], 0
    try:
        async with asyncio.timeout(timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                chunk = message.get("body", b"")
                total += len(chunk)
                if total > limit:
                    raise too_large(limit, name)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    except TimeoutError:
        raise RequestTimeout(
            f"the request body did not arrive within {timeout:g} s ({total} bytes came); send it "
            "faster, or raise DBHANDLES_BODY_TIMEOUT_SECONDS on the server",
            field="body",
        ) from None
