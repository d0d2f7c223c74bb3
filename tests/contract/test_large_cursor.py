"""Contract: a ``nextCursor`` stays small whatever the sort values hold.

A sort on a long text used to put the whole text in the cursor (26.7 MB for 10,000,000 times "é"),
too large to send back over HTTP. Past 1 KiB of sort values
(``paging.MAX_POSITION_BYTES``) the cursor names the last row by id and
a digest of its values; the next page reads that row again, and a row gone or changed is a clear
``conflict`` (``details.reason`` ``cursor_row_changed``) on every adapter.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.errors import Conflict, InvalidParams
from dbhandles.paging import MAX_POSITION_BYTES

LONG = "é" * 50_000


def _records() -> list[dict[str, Any]]:
    # Ties on the long text are broken by id; short texts sort among them by value.
    return [
        {"id": "a", "content": LONG + "a"},
        {"id": "b", "content": LONG + "b"},
        {"id": "c", "content": LONG + "b"},
        {"id": "d", "content": "short"},
        {"id": "e", "content": LONG},
    ]


@pytest.fixture
def long_db(service: Service, db: str) -> str:
    ops = [{"op": "create", "collection": "m", "data": r} for r in _records()]
    service.execute("data/batch", {"dbHandle": db, "operations": ops})
    return db


def _page(service: Service, db: str, cursor: str | None = None, **extra: Any) -> dict[str, Any]:
    params = {"dbHandle": db, "collection": "m", "orderBy": "-content", "limit": 1,
              "fields": ["id"], **extra}  # fmt: skip
    if cursor is not None:
        params["cursor"] = cursor
    return service.execute("data/list", params)


def test_paging_by_a_long_text_keeps_every_cursor_small(service: Service, long_db: str) -> None:
    seen, cursor = [], None
    while True:
        page = _page(service, long_db, cursor)
        seen.extend(item["id"] for item in page["items"])
        cursor = page["nextCursor"]
        if cursor is None:
            break
        assert len(cursor) < 400
    assert seen == ["b", "c", "a", "e", "d"]


def test_a_short_position_is_still_carried_whole(service: Service, long_db: str) -> None:
    page = service.execute(
        "data/list", {"dbHandle": long_db, "collection": "m", "orderBy": "id", "limit": 1}
    )
    raw = page["nextCursor"]
    token = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    assert token["p"] == [[3, "a"]] and "r" not in token
    assert MAX_POSITION_BYTES == 1024


@pytest.mark.parametrize(
    "change",
    [
        ("data/update", {"id": "b", "data": {"content": LONG + "z"}}),
        ("data/delete", {"id": "b"}),
    ],
)
def test_a_row_changed_or_gone_under_a_long_cursor_is_a_conflict(
    service: Service, long_db: str, change: tuple[str, dict[str, Any]]
) -> None:
    cursor = _page(service, long_db)["nextCursor"]
    command, params = change
    service.execute(command, {"dbHandle": long_db, "collection": "m", **params})
    with pytest.raises(Conflict, match="list again without cursor") as info:
        _page(service, long_db, cursor)
    assert info.value.details == {"reason": "cursor_row_changed"}
    assert info.value.field == "cursor"


def test_a_row_changed_elsewhere_keeps_the_cursor(service: Service, long_db: str) -> None:
    cursor = _page(service, long_db)["nextCursor"]
    service.execute(
        "data/update", {"dbHandle": long_db, "collection": "m", "id": "b", "data": {"x": 1}}
    )
    assert [i["id"] for i in _page(service, long_db, cursor)["items"]] == ["c"]


def test_a_forged_long_cursor_is_refused_cleanly(service: Service, long_db: str) -> None:
    cursor = _page(service, long_db)["nextCursor"]
    token = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))

    def encode(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    # Another row's id with this digest, or a digest that fits no row: the same answer as a row
    # gone, so a cursor is no oracle for ids the caller cannot list.
    for forged in ({**token, "r": "a"}, {**token, "h": "0" * 32}, {**token, "r": "nobody"}):
        with pytest.raises(Conflict):
            _page(service, long_db, encode(forged))
    for malformed in ({**token, "r": None}, {**token, "r": [1]}, {**token, "h": 5},
                      {"o": token["o"], "r": "b"}):  # fmt: skip
        with pytest.raises(InvalidParams, match="cursor"):
            _page(service, long_db, encode(malformed))
    with pytest.raises(InvalidParams, match="different orderBy"):
        _page(service, long_db, cursor, orderBy="content")


def test_a_row_filter_hides_the_row_a_forged_cursor_names(service: Service, long_db: str) -> None:
    """Paging under a filter reads the named row under the same filter: a row outside it is gone."""
    cursor = _page(service, long_db, filter={"id": {"$ne": "e"}})["nextCursor"]
    token = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    forged = {**token, "r": "e"}
    raw = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=")
    with pytest.raises(Conflict):
        _page(service, long_db, raw, filter={"id": {"$ne": "e"}})
