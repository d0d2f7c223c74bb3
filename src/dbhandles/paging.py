"""Keyset positions as opaque tokens, and the paging that ``data/list`` and query cursors share."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from dbhandles.adapters.base import Query, Record, Sampling, Session
from dbhandles.errors import InvalidParams
from dbhandles.evaluate import position_of, project, sort_value
from dbhandles.filters import And, FilterNode, SortKey
from dbhandles.values import check_scalar

__all__ = [
    "and_filters",
    "count_matching",
    "decode_token",
    "encode_token",
    "fetch_page",
    "order_signature",
]


def order_signature(order: tuple[SortKey, ...]) -> list[str]:
    return [("-" if k.descending else "") + k.field for k in order]


def encode_token(order: tuple[SortKey, ...], position: tuple[tuple[int, Any], ...]) -> str:
    """An opaque ``nextCursor``: the sort it belongs to and the last row's keyset position."""
    raw = orjson.dumps({"o": order_signature(order), "p": [list(p) for p in position]})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, order: tuple[SortKey, ...]) -> tuple[tuple[int, Any], ...]:
    """Check a ``cursor`` token against the current ``orderBy`` and return its position."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = orjson.loads(raw)
        position = tuple((int(r), v) for r, v in data["p"])
        signature = data["o"]
    except (binascii.Error, ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise InvalidParams(
            "cursor: not a cursor returned by data/list (nextCursor)", field="cursor"
        ) from exc
    if signature != order_signature(order) or len(position) != len(order):
        raise InvalidParams(
            "cursor: it was made for a different orderBy; pass the same orderBy", field="cursor"
        )
    for rank, value in position:
        if (sort_value(value)[0] != rank or rank == 4) and not (rank == 4 and value is None):
            raise InvalidParams("cursor: malformed position", field="cursor")
        # A forged position holding a value no record can hold (dbhandles.values) would be read
        # differently by each adapter.
        problem = check_scalar(value, "cursor")
        if problem is not None:
            raise InvalidParams(f"cursor: malformed position: {problem}", field="cursor")
    return position


def fetch_page(
    session: Session,
    collection: str,
    filter: FilterNode | None,
    order: tuple[SortKey, ...],
    limit: int,
    after: tuple[tuple[int, Any], ...] | None,
    fields: tuple[tuple[str, ...], ...] | None,
    sampling: Sampling | None = None,
) -> tuple[list[Record], tuple[tuple[int, Any], ...] | None, bool]:
    """One page: its (projected) items, the keyset position of its last row, and whether more follow.

    Reads ``limit + 1`` rows so ``hasMore`` never needs a COUNT. With ``sampling`` only the records
    of that sample or split are paged (``Session.find_sampled``).
    """
    query = Query(filter=filter, order=order, limit=limit + 1, after=after)
    if sampling is None:
        rows = session.find(collection, query)
    else:
        rows = session.find_sampled(collection, query, sampling)
    has_more = len(rows) > limit
    rows = rows[:limit]
    last = position_of(rows[-1], order) if rows else None
    return [project(r, fields) for r in rows], last, has_more


def count_matching(
    session: Session, collection: str, filter: FilterNode | None, sampling: Sampling | None
) -> int:
    """How many records ``fetch_page`` pages through (all its pages together)."""
    if sampling is None:
        return session.count(collection, filter)
    return session.count_sampled(collection, filter, sampling)


def and_filters(*nodes: FilterNode | None) -> FilterNode | None:
    present = tuple(n for n in nodes if n is not None)
    if not present:
        return None
    return present[0] if len(present) == 1 else And(present)
