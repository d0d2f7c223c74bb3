"""The byte bounds on an answer (issue 12): a page's values and a count's group keys are measured in
UTF-8 bytes on every adapter that bounds them, PostgreSQL measures them in SQL before the rows leave
the database, and the advice names the page-size parameter of the command that was called.

The bounds are lowered through the module constants (``sqlite_pages.MAX_PAGE_BYTES``,
``group_bytes.MAX_GROUP_BYTES``, read at each call) so the data stays a few kilobytes.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dbhandles import QueryFailed, Service
from dbhandles.adapters import group_bytes, sqlite_pages
from dbhandles.adapters.facets import GroupCounts
from dbhandles.adapters.group_bytes import bound_groups, encoded_size, fetch_groups
from tests.conftest import ADAPTERS, adapter_config

#: The adapters that bound a page's bytes: those reading rows from a database (memory and json
#: serve the records they already hold).
PAGED = [a for a in ADAPTERS if getattr(a, "values", (a,))[0] in ("sqlite", "postgres")]

#: One emoji: one character, four bytes of UTF-8.
FACE = 0x1F600


def _put(service: Service, db: str, records: list[dict[str, Any]]) -> None:
    ops = [{"op": "create", "collection": "c", "data": r} for r in records]
    service.execute("data/batch", {"dbHandle": db, "operations": ops})


def test_encoded_size_counts_utf8_bytes() -> None:
    assert encoded_size("abc") == 3
    assert encoded_size(chr(FACE) * 5) == 20  # four bytes a character
    assert encoded_size("é中") == 5
    assert encoded_size(b"\xff\x00") == 2
    assert encoded_size("\ud800") == 3  # a lone surrogate Python holds: never an exception


class _Rows:
    """A cursor of fixed rows that records its closing (``fetch_groups`` closes on a refusal)."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows, self.closed = rows, False

    def __iter__(self) -> Any:
        return iter(self.rows)

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(("bound", "passes_at"), [(2_000, None), (1_999, 2)])
def test_group_keys_of_four_byte_characters_count_their_bytes(
    monkeypatch: pytest.MonkeyPatch, bound: int, passes_at: int | None
) -> None:
    # Two keys of 250 emoji: 500 characters, 2000 bytes; exactly at the bound they are served,
    # a byte under it the second is refused, by both readers (SQL rows and Python groups).
    monkeypatch.setattr(group_bytes, "MAX_GROUP_BYTES", bound)
    keys = [chr(FACE) * 250, chr(FACE + 1) * 250]
    cursor = _Rows([(3, key, 1) for key in keys])
    counts = GroupCounts(groups=[((key,), 1) for key in keys], total=2, group_count=2)
    if passes_at is None:
        assert len(fetch_groups(cursor, "c", (("s",),))) == 2
        assert bound_groups(counts, "c", (("s",),)) is counts
        return
    with pytest.raises(QueryFailed, match=f"passed at its group {passes_at}"):
        fetch_groups(cursor, "c", (("s",),))
    assert cursor.closed
    with pytest.raises(QueryFailed, match=f"passed at its group {passes_at}"):
        bound_groups(counts, "c", (("s",),))


@pytest.mark.parametrize(("bound", "served"), [(3_000, 3), (2_999, 2)])
def test_a_count_bounds_its_keys_in_utf8_bytes_on_every_adapter(
    service: Service, db: str, monkeypatch: pytest.MonkeyPatch, bound: int, served: int
) -> None:
    # Six keys of 250 four-byte characters (1000 bytes each, 250 characters): counting
    # characters let all six through a 3000-byte bound (1500 characters); bytes stop the fourth,
    # or the third a byte under. The largest limit advised is then served, one more refused.
    monkeypatch.setattr(group_bytes, "MAX_GROUP_BYTES", bound)
    _put(service, db, [{"id": f"r{i}", "s": chr(FACE + i) * 250} for i in range(6)])
    params = {"dbHandle": db, "collection": "c", "groupBy": "s", "limit": 6}
    with pytest.raises(QueryFailed) as caught:
        service.execute("data/count", params)
    message = caught.value.message
    assert f"passed at its group {served + 1}" in message, message
    assert f"ask for at most {served} groups (limit)" in message, message
    answer = service.execute("data/count", {**params, "limit": served})
    assert [g["key"]["s"] for g in answer["groups"]] == [chr(FACE + i) * 250 for i in range(served)]
    assert (answer["total"], answer["groupCount"]) == (6, 6)
    with pytest.raises(QueryFailed, match=f"passed at its group {served + 1}"):
        service.execute("data/count", {**params, "limit": served + 1})


def test_a_count_of_several_paths_bounds_every_key(
    service: Service, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two paths: a group's key holds both strings (2 x 400 bytes); the second group passes 1000.
    monkeypatch.setattr(group_bytes, "MAX_GROUP_BYTES", 1_000)
    _put(service, db, [{"id": f"r{i}", "a": chr(FACE + i) * 100, "b": chr(FACE) * 100}
                       for i in range(3)])  # fmt: skip
    params = {"dbHandle": db, "collection": "c", "groupBy": ["a", "b"], "limit": 3}
    with pytest.raises(QueryFailed, match=r"passed at its group 2.*ask for at most 1 groups"):
        service.execute("data/count", params)
    assert len(service.execute("data/count", {**params, "limit": 1})["groups"]) == 1


@pytest.fixture(params=PAGED)
def paged(service: Service, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A handle on a fresh database of an adapter that bounds its pages, holding collection ``c``:
    six records of 1000 emoji (about 4000 bytes of JSON, 1000 characters), then ``ascii``: six of
    1000 ASCII characters."""
    name = str(request.param)
    opened = service.execute(
        "data/open", {"adapter": name, "config": adapter_config(name, tmp_path)}
    )
    db = str(opened["dbHandle"])
    _put(service, db, [{"id": f"r{i}", "s": chr(FACE + i) * 1000} for i in range(6)])
    ops = [{"op": "create", "collection": "ascii", "data": {"id": f"a{i}", "s": "x" * 1000}}
           for i in range(6)]  # fmt: skip
    service.execute("data/batch", {"dbHandle": db, "operations": ops})
    return db


def test_a_page_of_four_byte_characters_is_bounded_by_its_bytes(
    service: Service, paged: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A 10,000-byte bound holds two of these records (about 8000 bytes) and not three: counted in
    # characters (about 3000), a page of five passed. The advice is the exact largest limit.
    monkeypatch.setattr(sqlite_pages, "MAX_PAGE_BYTES", 10_000)
    base = {"dbHandle": paged, "collection": "c"}
    with pytest.raises(QueryFailed) as caught:
        service.execute("data/list", {**base, "limit": 5})
    message = caught.value.message
    assert '"c"' in message and "passed at its record 3" in message, message
    assert "ask for at most 1 (limit: each page reads one record more" in message, message
    assert "a smaller limit" in message and "pageSize" not in message
    page = service.execute("data/list", {**base, "limit": 1})
    assert [r["id"] for r in page["items"]] == ["r0"] and page["hasMore"]
    with pytest.raises(QueryFailed, match="passed at its record 3"):
        service.execute("data/list", {**base, "limit": 2})
    # Further pages are bounded the same (the bound is on the page read, not the first).
    after = service.execute("data/list", {**base, "limit": 1, "cursor": page["nextCursor"]})
    assert [r["id"] for r in after["items"]] == ["r1"]
    # Short text is not held to a stricter bound: six 1000-byte records fit in 10,000 bytes.
    listed = service.execute("data/list", {"dbHandle": paged, "collection": "ascii", "limit": 5})
    assert len(listed["items"]) == 5


def test_a_query_cursor_is_advised_on_its_page_size(
    service: Service, paged: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_pages, "MAX_PAGE_BYTES", 10_000)
    base = {"dbHandle": paged, "collection": "c"}
    opened = service.execute("data/query-open", {**base, "pageSize": 4})
    with pytest.raises(QueryFailed) as caught:
        service.execute("data/query-next", {"queryHandle": opened["queryHandle"]})
    message = caught.value.message
    found = re.search(r"ask for at most (\d+) \(pageSize: ", message)
    assert found is not None and "a smaller pageSize" in message, message
    assert "(limit" not in message and "smaller limit" not in message, message
    advised = int(found.group(1))
    opened = service.execute("data/query-open", {**base, "pageSize": advised})
    page = service.execute("data/query-next", {"queryHandle": opened["queryHandle"]})
    assert len(page["items"]) == advised and page["hasMore"]
    # A listing afterwards is advised on its own parameter again.
    with pytest.raises(QueryFailed, match=r"at most 1 \(limit: "):
        service.execute("data/list", {**base, "limit": 4})


def test_fields_do_not_lower_the_page_bound_and_say_so(
    service: Service, paged: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_pages, "MAX_PAGE_BYTES", 10_000)
    with pytest.raises(QueryFailed, match="fields do not lower this bound"):
        service.execute("data/list", {"dbHandle": paged, "collection": "c", "limit": 5,
                                      "fields": ["id"]})  # fmt: skip


def test_a_sampled_page_is_bounded_the_same(
    service: Service, paged: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_pages, "MAX_PAGE_BYTES", 10_000)
    base = {"dbHandle": paged, "collection": "c", "sample": 6, "seed": 1}
    with pytest.raises(QueryFailed, match="passed at its record 3"):
        service.execute("data/list", {**base, "limit": 5})
    assert len(service.execute("data/list", {**base, "limit": 1})["items"]) == 1


def test_an_export_and_a_copy_are_advised_on_their_own_page_size(
    service: Service, paged: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A job's pages read no row past their size: two of these records fit, so 2 is advised (and
    # served), on the parameter each command takes.
    monkeypatch.setattr(sqlite_pages, "MAX_PAGE_BYTES", 10_000)
    export = {"dbHandle": paged, "collection": "c", "output": str(tmp_path / "c.jsonl")}
    with pytest.raises(QueryFailed) as caught:
        service.execute("data/export", {**export, "pageSize": 5})
    message = caught.value.message
    assert "ask for at most 2 (pageSize)" in message and "smaller pageSize" in message, message
    assert "limit" not in message, message
    service.execute("data/export", {**export, "pageSize": 2})
    assert len((tmp_path / "c.jsonl").read_text().splitlines()) == 6
    copy = {"from": {"dbHandle": paged, "collection": "c"},
            "to": {"dbHandle": paged, "collection": "got"}}  # fmt: skip
    with pytest.raises(QueryFailed) as caught:
        service.execute("data/copy", {**copy, "batchSize": 5})
    message = caught.value.message
    assert "ask for at most 2 (batchSize)" in message and "smaller batchSize" in message, message
    assert service.execute("data/copy", {**copy, "batchSize": 2})["copied"] == 6


@pytest.mark.parametrize("column", [1, None])
@pytest.mark.parametrize(
    ("rows", "bound", "past"),
    [(6, 600, None), (6, 599, 6), (4, 400, None), (6, 399, 4), (6, 301, 4), (6, 101, 2)],
)
def test_a_page_is_measured_exactly_at_the_bound_whatever_its_mix_of_text(
    monkeypatch: pytest.MonkeyPatch, column: int | None, rows: int, bound: int, past: int | None
) -> None:
    # Rows are estimated (four bytes a non-ASCII character) and measured exactly only near the
    # bound: the refusal still falls on the exact row, ASCII and 2- and 4-byte text mixed, for a
    # dbhandles row (its JSON column) and a view's (every value). Each row holds 100 bytes.
    texts = ["x" * 100, chr(FACE) * 25, "é" * 50, chr(FACE) * 25, "x" * 100, chr(FACE) * 25]
    monkeypatch.setattr(sqlite_pages, "MAX_PAGE_BYTES", bound)
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE TABLE t (id INTEGER, data TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", enumerate(texts))
        cursor = conn.execute("SELECT id, data FROM t WHERE id < ? ORDER BY id", (rows,))
        if past is None:
            assert len(sqlite_pages.fetch_page(cursor, "t", column)) == rows
        else:
            with pytest.raises(QueryFailed, match=rf"passed at its record {past}\)"):
                sqlite_pages.fetch_page(cursor, "t", column)
    finally:
        conn.close()
