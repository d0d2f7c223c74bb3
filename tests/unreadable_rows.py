"""The doors the tests of rows not read in full walk, on any adapter: the id doors (read, update,
delete, batch update and delete) a row filter must answer as for a missing id, and the listing
doors (keyset pages, a query cursor) that must leave such rows out."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dbhandles import Service

#: Every id door, by the name ``id_doors`` gives it.
ID_DOORS = ("read", "update", "delete", "batch-update", "batch-delete")


def nest(levels: int, inner: str = "") -> str:
    """JSON text of ``levels`` arrays one inside the other around ``inner``."""
    return "[" * levels + inner + "]" * levels


def ids(items: list[dict[str, Any]]) -> list[str]:
    """The ``id`` of each record of ``items``, in order."""
    return [r["id"] for r in items]


def list_pages(service: Service, db: str, **params: Any) -> list[str]:
    """Every id ``data/list`` of collection ``c`` on ``db`` gives page after page of ``limit`` 2
    (keyset cursors), with the other ``params``."""
    seen: list[str] = []
    cursor: Any = None
    while True:
        extra = {"cursor": cursor} if cursor is not None else {}
        page = service.execute("data/list", {"dbHandle": db, "collection": "c", "limit": 2,
                                             **params, **extra})  # fmt: skip
        seen += ids(page["items"])
        cursor = page.get("nextCursor")
        if not page["hasMore"]:
            return seen


def query_pages(service: Service, query_handle: str) -> list[str]:
    """Every id ``data/query-next`` gives on ``query_handle`` until it has no more."""
    seen: list[str] = []
    while True:
        page = service.execute("data/query-next", {"queryHandle": query_handle})
        seen += ids(page["items"])
        if not page.get("hasMore"):
            return seen


def id_doors(
    db: str, record_id: str, *, given: Any = None, data: dict[str, Any] | None = None
) -> dict[str, tuple[str, dict[str, Any]]]:
    """The command and params of each of ``ID_DOORS`` on record ``record_id`` of collection ``c``.

    Args:
        db: the handle.
        record_id: the id (batch operations always name it as this string).
        given: the id as the single-record doors name it (``record_id`` if ``None``): an integer
            takes ``data/read``'s generic path.
        data: what an update writes (``{"t2": "y"}`` if ``None``).
    """
    named = record_id if given is None else given
    written = {"t2": "y"} if data is None else data
    base = {"dbHandle": db, "collection": "c"}
    return {
        "read": ("data/read", {**base, "id": named}),
        "update": ("data/update", {**base, "id": named, "data": written}),
        "delete": ("data/delete", {**base, "id": named}),
        "batch-update": ("data/batch", {"dbHandle": db, "operations": [
            {"op": "update", "collection": "c", "id": record_id, "data": written}]}),
        "batch-delete": ("data/batch", {"dbHandle": db, "operations": [
            {"op": "delete", "collection": "c", "id": record_id}]}),
    }  # fmt: skip


def answer_without_id(service: Service, name: str, params: dict[str, Any], record_id: str) -> str:
    """The envelope ``name`` answers ``params`` with, as text with the id's own spelling (quoted
    or a bare number) and the timestamp taken out: two ids' answers compare equal when they say
    the same thing."""
    envelope = service.dispatch(name, params)
    envelope.pop("timestamp", None)
    text = repr(envelope).replace(f'"{record_id}"', '"ID"').replace(f"'{record_id}'", "'ID'")
    return text.replace(f"'id': {record_id}", "'id': ID")


def assert_every_door_names(service: Service, db: str, record_id: str, *fragments: str) -> None:
    """``data/read``, ``data/update`` and a ``data/batch`` update (writing ``{"q": 1}``) of record
    ``record_id`` of collection ``c`` on ``db`` (:func:`id_doors`): each answers ``query_failed``
    (an envelope, never a raise) whose ``error`` holds every one of ``fragments``."""
    doors = id_doors(db, record_id, data={"q": 1})
    for door in ("read", "update", "batch-update"):
        name, params = doors[door]
        answer = service.dispatch(name, params)
        assert answer["code"] == "query_failed", (name, answer)
        for fragment in fragments:
            assert fragment in answer["error"], answer


def assert_answers_as_missing(
    service: Service, db: str, door: str, record_ids: Iterable[str]
) -> None:
    """The id door ``door`` (:func:`id_doors`) on ``db`` answers each of ``record_ids`` exactly as
    it answers an id no record has, and that answer is no internal or storage error."""
    missing = answer_without_id(service, *id_doors(db, "nope")[door], "nope")
    assert "internal_error" not in missing and "storage_error" not in missing
    for record_id in record_ids:
        answer = answer_without_id(service, *id_doors(db, record_id)[door], record_id)
        assert answer == missing, (door, record_id)
