"""Contract: cursor positions no record can hold are refused, the same on every adapter (issue 14,
item 3): the original's ``{field, value, direction}`` cursor and a forged ``nextCursor`` follow the
rule of filter values (``dbhandles.values.check_scalar``): integers strictly between -2**63 and 2**63,
except that a ``nextCursor`` may end on -2**63 (a foreign table's 64-bit column holds it)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from dbhandles import InvalidParams, Service
from dbhandles.filters import parse_order_by
from dbhandles.paging import encode_token


def forge(order: list[str], position: list[list[Any]]) -> str:
    """A ``nextCursor`` as a client could write it (Python's json writes NaN, big integers and lone
    surrogates, which orjson would not)."""
    raw = json.dumps({"o": order, "p": position}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


IMPOSSIBLE = ["s1\x00", 2**64, -(2**63) - 1, 2**63, "\ud800", float("nan"), float("inf")]


@pytest.fixture
def rows(service: Service, db: str) -> str:
    ops = [{"op": "create", "collection": "c", "id": f"r{i}", "data": {"s": f"s{i}", "n": i}}
           for i in range(3)]  # fmt: skip
    service.execute("data/batch", {"dbHandle": db, "operations": ops})
    return db


def _list(service: Service, db: str, **params: Any) -> dict[str, Any]:
    return service.execute("data/list", {"dbHandle": db, "collection": "c", **params})


@pytest.mark.parametrize("value", IMPOSSIBLE, ids=repr)
def test_legacy_cursor_value_follows_the_filter_value_rule(
    service: Service, rows: str, value: Any
) -> None:
    for field in ("s", "id"):
        with pytest.raises(InvalidParams) as caught:
            _list(service, rows, cursor={"field": field, "value": value, "direction": "after"})
        assert caught.value.field == "cursor.value"


def test_legacy_cursor_value_takes_the_lowest_64_bit_integer(service: Service, rows: str) -> None:
    """-2**63 is a filter value (a foreign table's 64-bit column may hold it): every number of a
    collection lies after it."""
    page = _list(service, rows, cursor={"field": "n", "value": -(2**63), "direction": "after"})
    assert [r["id"] for r in page["items"]] == ["r0", "r1", "r2"]


# Integers past 64 bits too: orjson would read 2**64 as a float, the cursor's reader keeps it whole.
@pytest.mark.parametrize("value", IMPOSSIBLE, ids=repr)
def test_forged_next_cursor_positions_are_refused(service: Service, rows: str, value: Any) -> None:
    rank = 3 if isinstance(value, str) else 2
    for position in ([[rank, value], [3, "r0"]], [[3, "s0"], [3, value]]):
        if position[1][1] is not value or isinstance(value, str):
            with pytest.raises(InvalidParams, match="cursor: ") as caught:
                _list(service, rows, orderBy="s", cursor=forge(["s", "id"], position))
            assert caught.value.field == "cursor"


def test_valid_positions_still_page(service: Service, rows: str) -> None:
    page = _list(service, rows, cursor={"field": "s", "value": "s0", "direction": "after"})
    assert [r["id"] for r in page["items"]] == ["r1", "r2"]
    token = encode_token(parse_order_by("s"), ((3, "s1"), (3, "r1")))
    assert [r["id"] for r in _list(service, rows, orderBy="s", cursor=token)["items"]] == ["r2"]
    token = encode_token(parse_order_by("n"), ((2, 2.0**64), (3, "r1")))
    assert _list(service, rows, orderBy="n", cursor=token)["items"] == []
    # A float past ±2**63 orders beyond every stored number, on every adapter; so does -2**63.
    token = forge(["n", "id"], [[2, 2.0**64], [3, "r1"]])
    assert _list(service, rows, orderBy="n", cursor=token)["items"] == []
    token = forge(["n", "id"], [[2, -(2**63)], [3, "r1"]])
    assert len(_list(service, rows, orderBy="n", cursor=token)["items"]) == 3
    token = forge(["-n", "id"], [[2, 2.0**64], [3, "r1"]])
    assert [r["id"] for r in _list(service, rows, orderBy="-n", cursor=token)["items"]] == [
        "r2",
        "r1",
        "r0",
    ]
