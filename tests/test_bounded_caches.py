"""Every cache that keeps what requests send is bounded in bytes, not in entries (issue 13)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dbhandles import evaluate
from dbhandles.adapters import sqlite_records
from dbhandles.adapters.sqlite import WHERE_CACHE_BYTES, SqliteAdapter
from dbhandles.byte_cache import ByteCache, deep_sizeof
from dbhandles.filters import parse_filter

#: One big ``$in``: 2,000 distinct 1,000-character strings (about 2 MiB with its plan).
_VALUES, _WIDTH = 2_000, 1_000


def _big_in(n: int) -> dict[str, object]:
    return {"k": {"$in": [f"{n:08d}" + "x" * _WIDTH + str(i) for i in range(_VALUES)]}}


def _stored_bytes(cache: ByteCache[object, object]) -> int:
    """What the cache holds, measured again from the entries themselves."""
    return sum(deep_sizeof((key, value)) for key, value in cache._values.items())


@pytest.fixture
def plans() -> Iterator[ByteCache[int, tuple[object, object]]]:
    evaluate._PLANS.clear()
    yield evaluate._PLANS
    evaluate._PLANS.clear()


def test_byte_cache_evicts_oldest_entries_to_stay_under_its_bound() -> None:
    cache: ByteCache[str, str] = ByteCache(1_000)
    for n in range(10):
        cache.put(f"k{n}", "v", 300)
        assert cache.nbytes <= 1_000
    assert list(cache._values) == ["k7", "k8", "k9"]
    cache.put("k9", "w", 100)  # replacing an entry gives back its bytes first
    assert cache.nbytes == 700 and cache.get("k9") == "w"


def test_byte_cache_keeps_an_oversized_entry_only_when_asked_and_then_alone() -> None:
    plain: ByteCache[str, str] = ByteCache(1_000)
    plain.put("small", "v", 10)
    plain.put("big", "v", 5_000)
    assert plain.get("big") is None and plain.nbytes == 10
    alone: ByteCache[str, str] = ByteCache(1_000, keep_oversized=True)
    alone.put("small", "v", 10)
    alone.put("big", "v", 5_000)
    assert list(alone._values) == ["big"] and alone.nbytes == 5_000
    alone.put("small", "v", 10)
    assert list(alone._values) == ["small"] and alone.nbytes == 10


def test_byte_cache_refuses_a_budget_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="max_bytes must be positive"):
        ByteCache(0)


def test_deep_sizeof_counts_nested_values_once() -> None:
    text = "x" * 10_000
    assert deep_sizeof((text, text)) < 2 * deep_sizeof(text)
    assert deep_sizeof([[text]]) > deep_sizeof(text)
    assert deep_sizeof(parse_filter({"k": {"$in": [text]}})) > deep_sizeof(text)


def test_many_big_distinct_in_filters_leave_the_plan_cache_under_its_byte_bound(
    plans: ByteCache[int, tuple[object, object]],
) -> None:
    record = {"id": "r", "k": "absent"}
    for n in range(20):  # about 40 MiB of filters in all: the bound is 16 MiB
        node = parse_filter(_big_in(n))
        assert not evaluate.matches(node, record)
        assert plans.nbytes <= evaluate.PLAN_CACHE_BYTES
        assert _stored_bytes(plans) <= evaluate.PLAN_CACHE_BYTES
    assert 0 < len(plans) < 20


def test_a_plan_still_serves_every_record_of_its_query(
    plans: ByteCache[int, tuple[object, object]],
) -> None:
    node = parse_filter({"k": {"$in": ["a", "b"]}})
    records = [{"id": str(i), "k": "ab"[i % 2] if i % 3 else "c"} for i in range(30)]
    assert [r["id"] for r in records if evaluate.matches(node, r)] == [
        str(i) for i in range(30) if i % 3
    ]
    assert len(plans) == 1  # made once, for the first record


def test_a_wide_or_plan_is_counted_with_its_whole_tree(
    plans: ByteCache[int, tuple[object, object]],
) -> None:
    node = parse_filter({"$or": [{"k": "x" * 100_000 + str(i)} for i in range(10)]})
    assert not evaluate.matches(node, {"id": "r", "k": "y"})
    assert plans.nbytes >= 10 * 100_000


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[SqliteAdapter]:
    config = {"path": str(tmp_path / "where.db"), "mode": "create"}
    adapter = SqliteAdapter(SqliteAdapter.prepare(SqliteAdapter.parse_config(config)))
    yield adapter
    adapter.close()


def test_sqlite_compiled_filters_stay_under_their_byte_bound(sqlite: SqliteAdapter) -> None:
    for n in range(6):  # about 4 MiB each (text key and bound parameters): the bound is 4 MiB
        node = parse_filter(_big_in(n))
        assert sqlite.where(node).params
        assert sqlite._wheres.nbytes <= WHERE_CACHE_BYTES
        assert _stored_bytes(sqlite._wheres) <= WHERE_CACHE_BYTES  # type: ignore[arg-type]
        sqlite_records.exact_where(node)
        assert sqlite_records._EXACT_WHERES.nbytes <= WHERE_CACHE_BYTES
    small = parse_filter({"k": 1})
    assert sqlite.where(small) is sqlite.where(small)  # what a request can reuse is still kept
