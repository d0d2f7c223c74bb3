"""The original system's ``data/list`` cursor, ``{"field", "value", "direction"}``, paged as a keyset.

The original turned it into a plain ``field > value`` (``after``) or ``field < value`` (``before``)
filter, whatever the sort: rows sharing the value (every record of one import shares ``createdAt``)
were skipped without a word. Here it is a keyset position like ``nextCursor``:

* the list is ordered by ``field`` (ascending for ``after``, descending for ``before``), then ``id``;
  without ``orderBy`` that order is implied, and an ``orderBy`` that says anything else is refused;
* ``id`` (optional, an addition to the original's shape) is the last row's id: with it the position
  is exact, so rows sharing the value are neither skipped nor repeated;
* without ``id`` the page starts after every row holding ``value``; that is exact only when no
  other row holds it, so when several rows hold it the call is refused (``invalid_params``), never
  answered with rows missing;
* ``value`` may be ``null`` (a missing or null field sorts first).

On a table dbhandles did not create, ids are the key's values: numbers for a numeric key, text
for the others (docs/foreign-tables.md). A cursor's ``id`` (or its ``value`` when it pages by
``id``) is given as text or a number, so it is placed at the row it names, read under the list's
filter (``LegacyPosition.place``): an id that names no row the list shows (gone, no longer
matching, or no id of that table, such as ``abc`` for an integer key) is refused with
``conflict`` (``cursor_row_changed``), as a ``nextCursor`` naming its row is, never read as a
position of the wrong type (text sorts after every number: the rows left would be skipped).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ValidationError

from dbhandles.adapters.base import Query, Session
from dbhandles.commands.base import Params
from dbhandles.commands.grammar import FieldPath, RecordId
from dbhandles.documents import id_text
from dbhandles.errors import Conflict, InvalidParams
from dbhandles.evaluate import rank, sort_value
from dbhandles.filters import (
    MAX_ID_LENGTH,
    Compare,
    FilterNode,
    SortKey,
    parse_order_by,
    validate_path,
)
from dbhandles.paging import and_filters
from dbhandles.param_errors import pydantic_words
from dbhandles.values import check_scalar, json_text

__all__ = ["KeyCursor", "LegacyPosition", "check_cursor", "legacy_position"]

#: An id after every possible id (ids are at most ``MAX_ID_LENGTH`` characters, code point order).
_AFTER_EVERY_ID = "\U0010ffff" * (MAX_ID_LENGTH + 1)


class KeyCursor(Params):
    """The original system's cursor: the rows after (or before) ``value`` of ``field``."""

    field: FieldPath
    """The field the list is ordered by (createdAt in the original)."""
    value: str | int | float | bool | None
    """That field's value in the last row already seen (null allowed)."""
    direction: Literal["after", "before"] = "after"
    """after: ascending order; before: descending order."""
    id: RecordId | None = None
    """The last row's id: makes the position exact when rows share the value."""


_FORMS = (
    "a cursor is the nextCursor string of the previous page, or the original's object "
    '{"field": "<path>", "value": <string, number, boolean or null>, "direction": "after" or '
    '"before", "id": "<last id>" (optional)}'
)


def check_cursor(value: object) -> object:
    """``data/list``'s ``cursor`` param checked before its union is: a ``KeyCursor`` when it is an
    object, with an error that says which forms a cursor takes (the union's own would name its
    branches, ``cursor.str: Input should be a valid string``).

    Raises:
        InvalidParams: neither a string nor a valid ``{field, value, direction}`` object.
    """
    if value is None or isinstance(value, str | KeyCursor):
        return value
    if not isinstance(value, dict):
        raise InvalidParams(f"cursor: got {json_text(value, 80)}; {_FORMS}", field="cursor")
    try:
        return KeyCursor.model_validate(value)
    except InvalidParams as exc:  # a check of its own (``field``'s path) names the bare key
        if exc.field and not exc.field.startswith("cursor"):
            exc.message = (
                f"cursor.{exc.message}" if exc.message.startswith(exc.field) else exc.message
            )
            exc.field = f"cursor.{exc.field}"
            exc.args = (exc.message,)
        raise
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0]) if error["loc"] else ""
        if error["type"] == "extra_forbidden":
            where, message = "cursor", f"unknown key {json_text(key)}"
        elif key == "value":
            got = json_text(error["input"], 80)
            where, message = "cursor.value", f"must be a string, number, boolean or null, got {got}"
        elif key == "direction":
            got = json_text(error["input"], 80)
            where, message = "cursor.direction", f'must be "after" or "before", got {got}'
        else:
            where, message = f"cursor.{key}" if key else "cursor", pydantic_words(error)
        raise InvalidParams(f"{where}: {message}; {_FORMS}", field=where) from None


class LegacyPosition:
    """A ``KeyCursor`` as a keyset: the order to list in, the position after which to start, and
    the filter that must match at most one row when no ``id`` was given."""

    def __init__(
        self,
        order: tuple[SortKey, ...],
        after: tuple[tuple[int, Any], ...],
        ties: FilterNode | None,
        cursor: KeyCursor,
    ) -> None:
        self.order, self.after, self.ties, self.cursor = order, after, ties, cursor
        #: The value as records hold it (``-0.0`` is stored as ``0.0``), quoted in messages as JSON.
        value = cursor.value
        self.value = 0.0 if isinstance(value, float) and value == 0.0 else value

    def place(
        self, session: Session, collection: str, filter: FilterNode | None
    ) -> tuple[tuple[int, Any], ...]:
        """The keyset position to list after, in ``session``: ``after`` for a collection; on a
        table dbhandles did not create, with the id (or ``value``, paging by ``id``) of the row the
        cursor names as that row holds it, a number for a numeric key (read under ``filter``).

        Raises:
            InvalidParams: several matching rows hold the value and no ``id`` says which was
                last; a number as the ``value`` of ``id`` on a collection (its ids are text).
            Conflict: the id names no row ``filter`` lets the list show (``cursor_row_changed``).
        """
        described = session.table(collection) is not None
        by_id = self.cursor.field == "id"
        if by_id and not isinstance(self.cursor.value, str) and not described:
            got = json_text(self.cursor.value, 80)
            raise InvalidParams(f"cursor.value: ids are strings, got {got}", field="cursor.value")
        holding = self.check_ties(session, collection, filter)
        if not described:
            return self.after
        if by_id:
            return (sort_value(_row_id(session, collection, filter, self.cursor.value, "value")),)
        if self.cursor.id is not None:
            found = _row_id(session, collection, filter, self.cursor.id, "id")
            return (self.after[0], sort_value(found))
        if holding == 1:  # after the one row holding the value, whatever its id's type
            assert self.ties is not None
            row = session.find(collection, Query(filter=and_filters(filter, self.ties), limit=1))
            if row:
                return (self.after[0], sort_value(row[0]["id"]))
        return self.after

    def check_ties(self, session: Session, collection: str, filter: FilterNode | None) -> int:
        """Refuse the page when it could not start at an exact place; the number of matching
        rows holding the value when no ``id`` was given (else 0).

        Raises:
            InvalidParams: several matching rows hold the value and no ``id`` says which was last.
        """
        if self.ties is None:
            return 0
        holding = session.count(collection, and_filters(filter, self.ties))
        if holding > 1:
            raise InvalidParams(
                f"cursor: {holding} records have {self.cursor.field} = {json_text(self.value)}, so a "
                "cursor without the last record's id cannot say where among them the previous page "
                "ended; add the last item's id as cursor.id, or page with nextCursor",
                field="cursor",
            )
        return holding


def _row_id(
    session: Session, collection: str, filter: FilterNode | None, given: object, key: str
) -> Any:
    """The ``id`` of the row of a table dbhandles did not create that ``given`` (text or a
    number, ``documents.id_text``) names, as the row holds it, if ``filter`` lets the list show
    it (read again under it, as ``paging`` reads the row a ``nextCursor`` names).

    Raises:
        Conflict: no such row (``cursor.<key>`` named; ``details.reason`` ``cursor_row_changed``).
    """
    text = id_text(given)
    record = session.get(collection, text) if isinstance(text, str) else None
    if record is not None:
        same = and_filters(filter, Compare(("id",), "eq", record["id"]))
        rows = session.find(collection, Query(filter=same, limit=1))
        if rows:
            return rows[0]["id"]
    raise Conflict(
        f"cursor.{key}: no record of {json_text(collection, 80)} that this list shows has the id "
        f"{json_text(given, 80)} (it was deleted, changed so that it no longer matches, or is no "
        "id of this table), and on a table dbhandles did not create an id is placed by the row it "
        "names (ids are the key's values: numbers for a numeric key); list again without cursor, "
        "or page with nextCursor",
        field=f"cursor.{key}",
        details={"reason": "cursor_row_changed"},
    )


def legacy_position(cursor: KeyCursor, order_by: object) -> LegacyPosition:
    """The keyset of ``cursor`` for a list with this ``orderBy`` (see the module docstring).

    Raises:
        InvalidParams: ``orderBy`` is not ``field`` in the cursor's direction then ``id``, or the
            value cannot be a sort position.
    """
    path = validate_path(cursor.field, "cursor.field")
    direction = "desc" if cursor.direction == "before" else "asc"
    implied = parse_order_by([{"field": cursor.field, "direction": direction}])
    if order_by is not None and parse_order_by(order_by) != implied:
        raise InvalidParams(
            f"cursor: a {{field, value, direction}} cursor pages a list ordered by {cursor.field} "
            f"{direction} then id; give that orderBy (or none), or page with nextCursor",
            field="cursor",
        )
    value = cursor.value
    # The rule of filter values (dbhandles.values): a value no record can hold is no position.
    problem = check_scalar(value, "cursor.value")
    if problem is not None:
        raise InvalidParams(f"cursor.value: {problem}", field="cursor.value")
    first = sort_value(value)
    if path == ("id",):
        # A number is an id on a table dbhandles did not create only (``LegacyPosition.place``).
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise InvalidParams(
                f"cursor.value: ids are strings, got {json_text(value, 80)}", field="cursor.value"
            )
        return LegacyPosition(implied, (first,), None, cursor)
    if cursor.id is not None:
        return LegacyPosition(implied, (first, (rank(cursor.id), cursor.id)), None, cursor)
    ties = Compare(path, "eq", value)
    return LegacyPosition(implied, (first, (3, _AFTER_EVERY_ID)), ties, cursor)
