"""Issue #15, outside findings round 3 on tables dbhandles did not create: a number spelled with
hundreds of digits and no three-digit exponent is what the reader makes of it to every filter,
sort and keyset position (a string when past a double), and keyset paging over such texts neither
cycles nor skips (docs/foreign-tables.md "Values")."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.evaluate import matches
from dbhandles.filters import parse_filter
from tests.foreign_rows import open_sqlite

#: Past a double with no exponent of three digits: served as the plain strings they are.
LONG_STRINGS = [
    "[17976931348623159" + "0" * 292 + "]",  # 309 digits, no exponent
    "[1" + "0" * 250 + "e99]",  # 251 digits and a two-digit exponent
    '{"a": -1' + "0" * 320 + "}",
    "[1" + "0" * 400 + "e-50]",
]
#: Long digit runs every reader takes as the same finite number (or in a string): JSON.
LONG_JSON = [
    "[1" + "0" * 300 + "]",  # 1e300
    "[0." + "0" * 300 + "1]",
    "[1." + "0" * 400 + "1]",
    '{"a": "' + "9" * 400 + '"}',
    "[1" + "0" * 250 + "e50]",  # 1e300
]
#: Other JSON-ish texts around them (arrays of numbers, strings served as strings, plain text).
OTHERS = [
    "[1e400]", "[-1e400]", '["\\ud800"]', '["a\\u0000b"]', "[" * 300 + "]" * 300,
    "[2]", "[1.5e300]", "[-3]", "[0]", "[1e308]", "[-1e308]", "[1, 2]", "[[1]]", "[]", "{}",
    '{"a": 1}', '{"a": "x"}', "plain", "[x", "{bad", "1" + "0" * 400, "", "a", "[9e99]",
    "[17976931348623157" + "0" * 292 + "]", '["' + "1" * 300 + '"]', "[true]", "[null]",
    '{"b": [1e300]}',
]  # fmt: skip
#: The depth boundary (docs/foreign-tables.md "Values"): the column's value is level 1, a scalar in
#: a container one level below it; items at level 65 make the text a string.
DEEP_STRING, DEEP_ARRAY, DEEP_EMPTY = (
    "[" * 64 + "1" + "]" * 64,
    "[" * 63 + "1" + "]" * 63,
    "[" * 64 + "]" * 64,
)
TEXTS = [*LONG_STRINGS, *LONG_JSON, *OTHERS, DEEP_STRING, DEEP_ARRAY, DEEP_EMPTY]


@pytest.fixture
def long_numbers(service: Service, tmp_path: Path) -> str:
    path = tmp_path / "long.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE f (id INTEGER PRIMARY KEY, t TEXT)")
        conn.executemany("INSERT INTO f (t) VALUES (?)", [(t,) for t in TEXTS])
        # A few equal values, so the id breaks ties inside a page and across pages.
        conn.executemany("INSERT INTO f (t) VALUES (?)", [(t,) for t in TEXTS[:4] + TEXTS[9:12]])
    conn.close()
    return open_sqlite(service, {"path": str(path)})


def _list(service: Service, db: str, **params: Any) -> dict[str, Any]:
    return service.execute("data/list", {"dbHandle": db, "collection": "f", **params})


def test_digit_runs_past_a_double_are_strings_to_filters_and_sorts(
    service: Service, long_numbers: str
) -> None:
    records = _list(service, long_numbers, orderBy="id", limit=500)["items"]
    shown = {r["id"]: r["t"] for r in records}
    for text in LONG_STRINGS:
        assert text in shown.values(), "a number past a double is served as its text"
    assert [1e300] in shown.values() and {"a": "9" * 400} in shown.values()
    assert DEEP_STRING in shown.values() and DEEP_ARRAY not in shown.values()
    assert DEEP_EMPTY not in shown.values()
    specs: list[dict[str, Any]] = [
        {"t": LONG_STRINGS[0]}, {"t": LONG_STRINGS[1]}, {"t": {"$regex": "^\\[1"}},
        {"t": {"$size": 1}}, {"t.0": {"$gt": 1e299}}, {"t.0": {"$exists": True}},
        {"t.a": {"$exists": True}}, {"t.a": {"$lt": 0}}, {"t": {"$gt": "["}}, {"t": {"$lt": "[2"}},
        {"t": DEEP_STRING}, {"t.0.0": {"$exists": True}}, {"t": {"$size": 0}},
    ]  # fmt: skip
    for spec in specs:
        want = [r["id"] for r in records if matches(parse_filter(spec), r)]
        got = _list(service, long_numbers, filter=spec, orderBy="id", limit=500)["items"]
        assert [r["id"] for r in got] == want, spec
        count = service.execute(
            "data/count", {"dbHandle": long_numbers, "collection": "f", "filter": spec}
        )
        assert count["total"] == len(want), spec


@pytest.mark.parametrize("direction", ["asc", "desc"])
@pytest.mark.parametrize("limit", [1, 2, 3])
def test_keyset_pages_over_long_digit_runs_equal_the_listing_and_end(
    service: Service, long_numbers: str, direction: str, limit: int
) -> None:
    order = [{"field": "t", "direction": direction}]
    whole = [r["id"] for r in _list(service, long_numbers, orderBy=order, limit=500)["items"]]
    assert len(whole) == len(TEXTS) + 7
    seen: list[Any] = []
    cursor = None
    for _ in range(3 * len(whole)):  # more pages than rows: a cycle is caught, not run forever
        page = _list(service, long_numbers, orderBy=order, limit=limit,
                     **({"cursor": cursor} if cursor else {}))  # fmt: skip
        seen += [r["id"] for r in page["items"]]
        cursor = page.get("nextCursor")
        if not cursor:
            break
    assert not cursor, f"paging never ended: {seen[:40]}"
    assert seen == whole


#: Text keys and values another tool wrote with a raw U+0000 (not the ``\u0000`` escape), with
#: neighbours that sort right before and after them byte by byte.
NUL_ROWS = [("a", "x"), ("d\x00e", "y\x00z"), ("d", "y"), ("d\x00", "y\x00"), ("e", "y\x00z"),
            ("d\x00\x00", "y\x00\x00"), ("f", "w"), ("\x00", "\x00"), ("g", None)]  # fmt: skip


@pytest.mark.parametrize("field", ["id", "v"])
@pytest.mark.parametrize("direction", ["asc", "desc"])
@pytest.mark.parametrize("limit", [1, 2, 3])
def test_keyset_pages_go_past_text_holding_a_raw_nul(
    service: Service, tmp_path: Path, field: str, direction: str, limit: int
) -> None:
    path = tmp_path / "nul.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE f (id TEXT PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO f VALUES (?, ?)", NUL_ROWS)
    conn.close()
    db = open_sqlite(service, {"path": str(path)})
    order = [{"field": field, "direction": direction}]
    whole = _list(service, db, orderBy=order)["items"]
    assert sorted(r["id"] for r in whole) == sorted(k for k, _ in NUL_ROWS)
    texts = [r[field] for r in whole if isinstance(r[field], str)]
    assert texts == sorted(texts, key=str.encode, reverse=direction == "desc")
    seen: list[Any] = []
    cursor = None
    for _ in range(3 * len(whole)):
        page = _list(service, db, orderBy=order, limit=limit,
                     **({"cursor": cursor} if cursor else {}))  # fmt: skip
        seen += page["items"]
        cursor = page.get("nextCursor")
        if not cursor:
            break
    assert not cursor, "paging never ended"
    assert seen == whole
