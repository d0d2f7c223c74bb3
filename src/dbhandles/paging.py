"""Keyset positions as opaque tokens, and the paging that ``data/list`` and query cursors share."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

from dbhandles.adapters.base import Query, Record, Sampling, Session
from dbhandles.adapters.foreign_common import ColumnPaths
from dbhandles.errors import Conflict, InvalidParams
from dbhandles.evaluate import position_of, project, sort_value
from dbhandles.filters import And, Compare, FilterNode, SortKey
from dbhandles.values import check_scalar, dump_json, json_text

__all__ = [
    "MAX_POSITION_BYTES",
    "RowPosition",
    "and_filters",
    "check_shape",
    "count_matching",
    "decode_token",
    "encode_token",
    "fetch_page",
    "order_signature",
    "shape_of",
    "token_shape",
]


def shape_of(session: Session, collection: str, order: tuple[SortKey, ...]) -> str | None:
    """What a keyset position of ``collection`` depends on, as a short fingerprint; ``None`` for a
    collection (its storage never changes shape).

    For a table or view dbhandles did not create: its kind, its key and what an id is, and the
    name, type and field of each column that is part of the key or sorted on (every column of a
    view, whose rows are told apart by all of them). A table renamed away and a view created by its
    name, a sorted column dropped or retyped, a different key: another fingerprint. Adding an
    index or an unrelated column changes nothing.
    """
    description = session.table(collection)
    if description is None:
        return None
    key = set(description.get("primaryKey") or ())
    sorted_on = {name for k in order for name in (k.path[0], ".".join(k.path))}
    every = description.get("kind") != "table"
    columns = [
        [c["name"], c.get("type"), c.get("field", c["name"])]
        for c in description.get("columns", ())
        if every or c["name"] in key or c.get("field", c["name"]) in sorted_on
    ]
    seen = [description.get("kind"), description.get("primaryKey"), description.get("id"), columns]
    return hashlib.sha256(orjson.dumps(seen)).hexdigest()[:16]


def check_shape(made: str | None, now: str | None, collection: str, field: str, again: str) -> None:
    """Refuse a position made when ``collection`` had the fingerprint ``made`` (``shape_of``) if
    it has another one ``now``: its rows would be paged by keys that no longer mean the same.

    Raises:
        Conflict: ``field`` names the cursor; the message says what to do (``again``).
    """
    if made != now:
        raise Conflict(
            f"{field}: {json_text(collection, 80)} changed since this cursor was made (it was replaced, dropped "
            f"or re-created, or its key or a sorted column changed), so its position no longer "
            f"says which rows are left; {again}",
            field=field,
            details={"reason": "schema_changed"},
        )


def token_shape(token: str) -> str | None:
    """The fingerprint a ``nextCursor`` carries (``None``: made for a collection, or malformed,
    which ``decode_token`` refuses)."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        shape = json.loads(raw).get("s")
    except (binascii.Error, ValueError, AttributeError, RecursionError):
        return None
    return shape if isinstance(shape, str) else None


#: The most bytes of sort values a ``nextCursor`` carries; past it, the cursor names the last row
#: by its id (``RowPosition``) and the next page reads that row's values again (docs/filters.md).
MAX_POSITION_BYTES = 1024


@dataclass(frozen=True, slots=True)
class RowPosition:
    """A keyset position too large to carry: the last row's id (the order's final key), and a
    digest of its sort values (``position_digest``) to check they did not change.

    ``by_text``: ``record_id`` is the decimal text of an integer id no cursor value may be (a
    PostgreSQL ``jsonb`` key's number in 2**63 .. 2**64 - 1), compared as that integer again (not
    looked up as an id's text, which a text key ``"18446744073709551615"`` of the same table may
    be too).
    """

    record_id: Any
    digest: str
    by_text: bool = False


def position_digest(position: tuple[tuple[int, Any], ...]) -> str:
    """A digest of a keyset position (hex, 32 characters)."""
    return hashlib.sha256(dump_json([list(p) for p in position])).hexdigest()[:32]


def order_signature(order: tuple[SortKey, ...]) -> list[str]:
    return [("-" if k.descending else "") + k.field for k in order]


def encode_token(
    order: tuple[SortKey, ...], position: tuple[tuple[int, Any], ...], shape: str | None = None
) -> str:
    """An opaque ``nextCursor``: the sort it belongs to, the last row's keyset position, and the
    fingerprint of a table dbhandles did not create (``shape_of``; absent for a collection).

    A position whose values take more than ``MAX_POSITION_BYTES`` (a sort on a long text) is
    carried as the last row's id and a digest of the values instead (``RowPosition``), so a cursor
    stays small enough to send back whatever the records hold.
    """
    values = [list(p) for p in position]
    token: dict[str, Any] = {"o": order_signature(order), "p": values}
    by_id = order and order[-1].path == ("id",) and len(position) == len(order)
    if by_id and _too_long(values):
        record_id = position[-1][1]
        token = {"o": token["o"], "r": record_id, "h": position_digest(position)}
        if type(record_id) is int and check_scalar(record_id, "cursor") is not None:
            token.update(r=str(record_id), t=1)  # carried as its text (``RowPosition.by_text``)
    if shape is not None:
        token["s"] = shape
    raw = dump_json(token)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _too_long(values: list[list[Any]]) -> bool:
    """Whether a position is carried by its row (``RowPosition``): its values take more than
    ``MAX_POSITION_BYTES``, or hold an integer a cursor value may not (``_beyond_cursor``)."""
    try:
        return len(orjson.dumps(values)) > MAX_POSITION_BYTES or _beyond_cursor(values)
    except orjson.JSONEncodeError:
        return True


def _beyond_cursor(values: list[list[Any]]) -> bool:
    """Whether ``values`` hold an integer outside (-2**63, 2**63), which ``decode_token`` refuses
    in a position (as in a filter) but a served row may hold: a JSON-adapter file's integer in
    2**63 .. 2**64 - 1 (kept exactly, the file writable) or past 64 bits (read-only, served
    exactly), and a foreign 64-bit column's -2**63 (docs/filters.md "Values"). Such a position is
    carried by its row, which the next page reads again."""
    stack: list[Any] = [values]
    while stack:
        value = stack.pop()
        if type(value) is int and not -(2**63) < value < 2**63:
            return True
        if isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
    return False


def decode_token(
    token: str, order: tuple[SortKey, ...]
) -> tuple[tuple[int, Any], ...] | RowPosition:
    """Check a ``cursor`` token against the current ``orderBy`` and return its position (or the
    last row's id, for a position too large to carry: ``fetch_page`` reads its values).

    Raises:
        InvalidParams: not a token of data/list, or made for another ``orderBy``.
    """
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        # Python's json, not orjson: orjson reads an integer past 64 bits (a forged 2**64) as a
        # float, which would pass for a number; json keeps it an integer, refused below.
        data = json.loads(raw)
        if isinstance(data, dict) and "r" in data:
            return _row_position(data, order)
        position = tuple((int(r), v) for r, v in data["p"])
        signature = data["o"]
    except (binascii.Error, ValueError, KeyError, TypeError, RecursionError) as exc:
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
        # differently by each adapter; U+0000 is the exception (``_position_scalar``).
        problem = _position_scalar(value, "s" in data)
        if problem is not None:
            raise InvalidParams(f"cursor: malformed position: {problem}", field="cursor")
    return position


def _position_scalar(value: object, foreign: bool) -> str | None:
    """``check_scalar`` of a cursor's value; but U+0000 is taken in the cursor of a table
    dbhandles did not create (``foreign``: the token carries its shape, ``shape_of``), whose TEXT
    another tool may have written with it and the page that served the row showed: a position
    is dbhandles' own encoding of a served row, and SQLite compares text holding U+0000 byte by
    byte (``BINARY``), so paging past such a row goes on instead of failing part-way. No
    collection value holds it (refused there as in a filter); PostgreSQL text cannot, and its
    adapter refuses a bound one as ``invalid_params``."""
    if foreign and isinstance(value, str) and "\x00" in value:
        value = value.replace("\x00", "")
    return check_scalar(value, "cursor")


#: The text of an integer a ``RowPosition`` carries ``by_text`` (at most 100 digits).
_DECIMAL = re.compile(r"-?[0-9]{1,100}")


def _row_position(data: dict[str, Any], order: tuple[SortKey, ...]) -> RowPosition:
    record_id, digest = data["r"], data["h"]
    if data["o"] != order_signature(order):
        raise InvalidParams(
            "cursor: it was made for a different orderBy; pass the same orderBy", field="cursor"
        )
    by_text = data.get("t") == 1
    if (
        not isinstance(digest, str)
        or not order
        or order[-1].path != ("id",)
        or not isinstance(record_id, str if by_text else str | int | float)  # a REAL key's float
        or (by_text and _DECIMAL.fullmatch(record_id) is None)
        or isinstance(record_id, bool)
        or _position_scalar(record_id, "s" in data) is not None
    ):
        raise InvalidParams("cursor: malformed position", field="cursor")
    return RowPosition(record_id, digest, by_text)


def _resolve(
    session: Session,
    collection: str,
    filter: FilterNode | None,
    order: tuple[SortKey, ...],
    after: RowPosition,
) -> tuple[tuple[int, Any], ...]:
    """The keyset position of the row ``after`` names, read again under the same filter (a row
    the caller cannot list is no row here either).

    Raises:
        Conflict: the row is gone, no longer matches, or its sort values changed
            (``details.reason`` ``cursor_row_changed``).
    """
    record_id = int(after.record_id) if after.by_text else after.record_id
    # A node, not ``parse_filter``: the id is a served row's, wherever its value lies.
    same = and_filters(filter, Compare(("id",), "eq", record_id))
    rows = session.find(collection, Query(filter=same, order=order, limit=1))
    position = (
        position_of(rows[0], _paths_of(session, collection, order, None)[0]) if rows else None
    )
    if position is None or position_digest(position) != after.digest:
        raise Conflict(
            "cursor: the record the previous page ended at was deleted, changed so that it no "
            "longer matches, or had its sort values changed, so this cursor no longer says which "
            "records are left (its sort values were too long to carry in the cursor, which names "
            "the record instead); list again without cursor",
            field="cursor",
            details={"reason": "cursor_row_changed"},
        )
    return position


def _paths_of(
    session: Session,
    collection: str,
    order: tuple[SortKey, ...],
    fields: tuple[tuple[str, ...], ...] | None,
) -> tuple[tuple[SortKey, ...], tuple[tuple[str, ...], ...] | None]:
    if any(len(p) > 1 for p in (*(k.path for k in order), *(fields or ()))):
        # On a table with a column named ``a.b`` the path a -> b is that column (as in its SQL).
        paths = ColumnPaths.of(session.table(collection))
        return paths.order(order), paths.fields(fields)
    return order, fields


def fetch_page(
    session: Session,
    collection: str,
    filter: FilterNode | None,
    order: tuple[SortKey, ...],
    limit: int,
    after: tuple[tuple[int, Any], ...] | RowPosition | None,
    fields: tuple[tuple[str, ...], ...] | None,
    sampling: Sampling | None = None,
) -> tuple[list[Record], tuple[tuple[int, Any], ...] | None, bool]:
    """One page: its (projected) items, the keyset position of its last row, and whether more follow.

    Reads ``limit + 1`` rows so ``hasMore`` never needs a COUNT. With ``sampling`` only the records
    of that sample or split are paged (``Session.find_sampled``). A ``RowPosition`` is read again
    first (``_resolve``: ``Conflict`` when its row is gone or changed).
    """
    if isinstance(after, RowPosition):
        after = _resolve(session, collection, filter, order, after)
    query = Query(filter=filter, order=order, limit=limit + 1, after=after)
    if sampling is None:
        rows = session.find(collection, query)
    else:
        rows = session.find_sampled(collection, query, sampling)
    has_more = len(rows) > limit
    rows = rows[:limit]
    order, fields = _paths_of(session, collection, order, fields)
    last = position_of(rows[-1], order) if rows else None
    # Without a projection the records are the adapter's, fresh for this call: served as they are.
    return (rows if fields is None else [project(r, fields) for r in rows]), last, has_more


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
