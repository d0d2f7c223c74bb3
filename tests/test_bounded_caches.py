"""Every cache that keeps what requests send is bounded in bytes, not in entries (issue 13)."""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Context, Service, Settings, evaluate, filters, regex, registry
from dbhandles import service as service_module
from dbhandles.adapters import sqlite_records
from dbhandles.adapters.sqlite import WHERE_CACHE_BYTES, SqliteAdapter
from dbhandles.adapters.sqlite_foreign import ForeignReader
from dbhandles.byte_cache import ByteCache, deep_sizeof
from dbhandles.events import bus
from dbhandles.filters import parse_filter
from dbhandles.server.addresses import address_key

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


# -- every other cache of what requests send: each a stream of big distinct keys, each under its
# own byte bound (as its own accounting counts it: ``nbytes``, and again from its entries) -------


def _within(cache: ByteCache[Any, Any], n: int = 0) -> None:
    """``cache`` under its bound by its count, and every 100th key (``n``) measured again."""
    assert cache.nbytes <= cache.max_bytes
    if n % 100 == 0:
        assert _stored_bytes(cache) <= cache.max_bytes


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[ByteCache[Any, Any], int], None]]:
    """Lower a cache's bound for one test (emptied before and after), so a few slow keys pass it."""

    def lower(cache: ByteCache[Any, Any], max_bytes: int) -> None:
        cache.clear()
        monkeypatch.setattr(cache, "max_bytes", max_bytes)

    yield lower
    for cache in _LOWERED:
        cache.clear()


_LOWERED: list[ByteCache[Any, Any]] = []


def _long_path(n: int) -> str:
    """A valid dotted path of some 4,000 characters, distinct for each ``n``."""
    return ".".join([f"p{n}" + "a" * 240] + [f"b{i}" + "c" * 60 for i in range(60)])


def test_field_paths_stay_under_their_byte_bound() -> None:
    filters._PATHS.clear()
    for n in range(600):  # some 5 MiB of paths kept: the bound is 1 MiB
        assert len(filters.validate_path(_long_path(n), indexes=n % 2 == 0)) == 61
        _within(filters._PATHS, n)
    assert 0 < len(filters._PATHS) < 600
    filters._PATHS.clear()


def test_collection_names_stay_under_their_byte_bound() -> None:
    filters._ACCEPTED.clear()
    for n in range(8_000):  # 255-character names: some 4 MiB in all
        name = f"{n:06d}" + "n" * 249
        assert filters.validate_collection(name) == name
        _within(filters._ACCEPTED, n)
    assert 0 < len(filters._ACCEPTED) < 8_000
    filters._ACCEPTED.clear()


def test_handle_names_stay_under_their_byte_bound() -> None:
    registry._CHECKED.clear()
    for n in range(8_000):
        registry._checked_name(f"h{n:06d}" + "x" * 57)  # the longest names a handle may have
        _within(registry._CHECKED, n)
    assert 0 < len(registry._CHECKED) < 8_000
    registry._CHECKED.clear()


def test_accepted_sessions_stay_under_their_byte_bound() -> None:
    service_module._ACCEPTED_SESSIONS.clear()
    for n in range(6_000):
        session = f"s{n:06d}" + "z" * 121  # 128 characters, the longest
        service_module.check_session(Context(actor="a" * 60 + str(n), session_id=session))
        _within(service_module._ACCEPTED_SESSIONS, n)
    assert 0 < len(service_module._ACCEPTED_SESSIONS) < 6_000
    service_module._ACCEPTED_SESSIONS.clear()


def _long_regex(n: int) -> str:
    return f"^{n:06d}" + "(?:ab|cd)" * 110  # about 1,000 characters, the longest a filter takes


@pytest.mark.parametrize("memo", ["pattern_problem", "_compiled"])
def test_regex_caches_stay_under_their_byte_bound(
    memo: str, small: Callable[[ByteCache[Any, Any], int], None]
) -> None:
    cache = getattr(regex, memo).cache
    _LOWERED.append(cache)
    small(cache, 200_000)  # the same code as the 16 MiB bound, reached with fewer patterns
    for n in range(400):
        assert regex.search(_long_regex(n), "no match here") is False
        _within(cache, n)
    assert 0 < len(cache) < 400


def test_character_class_members_stay_under_their_byte_bound(
    small: Callable[[ByteCache[Any, Any], int], None],
) -> None:
    cache = regex.set_members.cache
    _LOWERED.append(cache)
    small(cache, 4_000)
    for char_class in ["[\\pL]", "[\\pN]", "(?i)[\\x{e9}]", "[\\p{Greek}]", "[\\pP]"]:
        assert regex.set_members(char_class)
        _within(cache)
    assert len(cache) < 5


def test_postgres_translations_stay_under_their_byte_bound(
    small: Callable[[ByteCache[Any, Any], int], None],
) -> None:
    from dbhandles.adapters.postgres_regex import translate_regex

    _LOWERED.append(translate_regex.cache)
    small(translate_regex.cache, 30_000)
    for n in range(60):
        assert translate_regex(_long_regex(n))
        _within(translate_regex.cache, n % 10)
    assert 0 < len(translate_regex.cache) < 60


def test_subscription_patterns_stay_under_their_byte_bound(
    small: Callable[[ByteCache[Any, Any], int], None],
) -> None:
    _LOWERED.append(bus._compile.cache)
    small(bus._compile.cache, 50_000)
    for n in range(60):
        assert not bus.matcher(f"data:{n:06d}" + "c" * 2_000 + ":*")("data:c:created")
        _within(bus._compile.cache, n % 10)
    assert 0 < len(bus._compile.cache) < 60


def test_peer_addresses_stay_under_their_byte_bound(
    small: Callable[[ByteCache[Any, Any], int], None],
) -> None:
    _LOWERED.append(address_key.cache)
    small(address_key.cache, 50_000)
    for n in range(3_000):  # a peer rotating through IPv6 networks
        assert address_key(f"2001:db8:{n:x}::1").endswith("/64")
        _within(address_key.cache, n)
    assert 0 < len(address_key.cache) < 3_000


def test_foreign_table_filters_stay_under_their_byte_bound(
    tmp_path: Path, small: Callable[[ByteCache[Any, Any], int], None]
) -> None:
    path = tmp_path / "plain.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE plain (id INTEGER PRIMARY KEY, k TEXT)")
    conn.close()
    # Readers of earlier tests may still be alive (the garbage collector has not run): only this
    # test's are looked at, or a reader of a test that listed 40 filters would fail the last check.
    gc.collect()
    earlier = [o for o in gc.get_objects() if isinstance(o, ForeignReader)]  # held: ids stay theirs
    with Service(settings=Settings(home=tmp_path / "home")) as svc:
        db = svc.execute("data/open", {"adapter": "sqlite", "config": {"path": str(path)}})
        readers: list[ForeignReader] = []
        for n in range(40):  # each filter some 200 KiB: 8 MiB in all, the bound 1 MiB a reader
            where = {"k": {"$in": [f"{n:04d}" + "v" * 1_000 + str(i) for i in range(200)]}}
            listed = svc.execute(
                "data/list", {"dbHandle": db["dbHandle"], "collection": "plain", "filter": where}
            )
            assert listed["items"] == []
            readers = readers or [
                o
                for o in gc.get_objects()
                if isinstance(o, ForeignReader) and all(o is not e for e in earlier)
            ]
            for reader in readers:
                _within(reader._wheres)
                _within(reader._pages)
        assert readers and all(len(r._wheres) < 40 for r in readers)
