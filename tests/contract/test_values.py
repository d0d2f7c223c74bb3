"""Contract: exact values (issue 14, part 2). Every value is stored, read back and compared exactly, or
refused naming its field, by the one rule of ``dbhandles.values`` (docs/filters.md "Values"), the
same on every adapter; a refused value has no side effect on the rest of a batch."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbhandles import DbHandlesError, Service
from dbhandles.evaluate import matches, sort_records
from dbhandles.filters import parse_filter, parse_order_by
from dbhandles.values import check_value

#: Values no record may hold, the path the error names, and a word of its message.
REFUSED: list[tuple[dict[str, Any], str, str]] = [
    ({"t": "a\x00b"}, "data.t", "U+0000"),
    ({"nested": {"list": ["ok", "\x00"]}}, "data.nested.list[1]", "U+0000"),
    ({"key\x00": 1}, "data", "U+0000"),
    ({"t": "\ud800"}, "data.t", "lone surrogate"),
    ({"\udfff": 1}, "data", "lone surrogate"),
    ({"n": 2**63}, "data.n", "2**63"),
    ({"n": -(2**63)}, "data.n", "2**63"),
    ({"n": 2**64 + 1}, "data.n", "2**63"),
    ({"n": 1e19}, "data.n", "2**63"),
    ({"n": -1e308}, "data.n", "2**63"),
    ({"n": float("nan")}, "data.n", "NaN"),
    ({"n": [float("inf")]}, "data.n[0]", "infinite"),
]


def _error(service: Service, command: str, params: dict[str, Any]) -> DbHandlesError:
    with pytest.raises(DbHandlesError) as caught:
        service.execute(command, params)
    return caught.value


def _count(service: Service, db: str, collection: str = "v") -> int:
    return int(service.execute("data/list", {"dbHandle": db, "collection": collection,
                                             "limit": 0})["count"])  # fmt: skip


@pytest.mark.parametrize(("data", "field", "word"), REFUSED)
def test_a_value_no_record_can_hold_is_refused_naming_its_field(
    service: Service, db: str, data: dict[str, Any], field: str, word: str
) -> None:
    created = _error(service, "data/create", {"dbHandle": db, "collection": "v", "data": data})
    assert (created.code, created.field) == ("invalid_params", field)
    assert word in created.message and created.message.startswith(field)
    service.execute("data/create", {"dbHandle": db, "collection": "v", "id": "a", "data": {"x": 1}})
    updated = _error(
        service, "data/update", {"dbHandle": db, "collection": "v", "id": "a", "data": data}
    )
    assert (updated.code, updated.field) == ("invalid_params", field)
    record = service.execute("data/read", {"dbHandle": db, "collection": "v", "id": "a"})["data"]
    assert (record["x"], record["version"]) == (1, 1)


def test_a_refused_value_leaves_the_rest_of_a_batch_unwritten(service: Service, db: str) -> None:
    operations = [
        {"op": "create", "collection": "v", "id": "good", "data": {"t": "fine"}},
        {"op": "create", "collection": "v", "id": "bad", "data": {"t": "a\x00"}},
    ]
    error = _error(service, "data/batch", {"dbHandle": db, "operations": operations})
    assert error.code == "invalid_params" and "U+0000" in error.message
    assert _count(service, db) == 0


def test_record_ids_hold_the_same_text_as_values(service: Service, db: str) -> None:
    for bad in ("a\x00", "\ud800"):
        error = _error(service, "data/create",
                       {"dbHandle": db, "collection": "v", "id": bad, "data": {}})  # fmt: skip
        assert error.code == "invalid_params" and error.field == "id"
    assert _count(service, db) == 0


def test_negative_zero_is_stored_as_zero(service: Service, db: str) -> None:
    service.execute("data/create", {"dbHandle": db, "collection": "v", "id": "z",
                                    "data": {"z": -0.0, "list": [-0.0, 1]}})  # fmt: skip
    record = service.execute("data/read", {"dbHandle": db, "collection": "v", "id": "z"})["data"]
    assert orjson.dumps([record["z"], record["list"]]) == b"[0.0,[0.0,1]]"
    for wanted in (0, -0.0, 0.0):
        listed = service.execute(
            "data/list", {"dbHandle": db, "collection": "v", "filter": {"z": wanted}}
        )
        assert [item["id"] for item in listed["items"]] == ["z"]


@pytest.mark.parametrize(
    ("filter_", "word"),
    [
        ({"t": "a\x00"}, "U+0000"),
        ({"t": {"$in": ["a", "\ud800"]}}, "lone surrogate"),
        ({"t": {"$contains": "\x00"}}, "U+0000"),
        ({"t": float("nan")}, "NaN"),
    ],
)
def test_a_filter_value_no_record_can_hold_is_refused(
    service: Service, db: str, filter_: dict[str, Any], word: str
) -> None:
    service.execute("data/create", {"dbHandle": db, "collection": "v", "data": {"t": "a"}})
    error = _error(service, "data/list", {"dbHandle": db, "collection": "v", "filter": filter_})
    assert error.code == "invalid_filter" and word in error.message


def test_the_lowest_64_bit_integer_is_a_filter_value_no_record_holds(
    service: Service, db: str
) -> None:
    """-2**63 binds on every adapter and orders below every number a record can hold."""
    service.execute("data/create", {"dbHandle": db, "collection": "v", "data": {"t": -(2**62)}})
    for condition, found in (({"$eq": -(2**63)}, 0), ({"$lte": -(2**63)}, 0),
                             ({"$gt": -(2**63)}, 1), ({"$nin": [-(2**63)]}, 1)):  # fmt: skip
        listed = service.execute(
            "data/list", {"dbHandle": db, "collection": "v", "filter": {"t": condition}}
        )
        assert len(listed["items"]) == found, condition


def test_a_filter_integer_past_64_bits_compares_by_value(service: Service, db: str) -> None:
    """No record holds an integer outside (-2**63, 2**63) (``data/create`` refuses it), but a
    filter compares one by value, as the oracle and MongoDB do: beyond every stored number (issue
    14; SQLite through a double bound, ``adapters/wide_integers.py``)."""
    for number in (2**63, -(2**63) - 1, 2**64):
        stored = _error(service, "data/create",
                        {"dbHandle": db, "collection": "v", "data": {"t": number}})  # fmt: skip
        assert stored.code == "invalid_params"
    for i, value in enumerate([2**63 - 1, -(2**63) + 1, -9.2e18, 9.2e18, 1.5, "x"]):
        service.execute("data/create", {"dbHandle": db, "collection": "v", "id": f"r{i}",
                                        "data": {"t": value}})  # fmt: skip
    for number in (2**63 - 1, -(2**63) + 1, -9.3e18):
        listed = service.execute(
            "data/list", {"dbHandle": db, "collection": "v", "filter": {"t": {"$gt": number}}}
        )
        want = [f"r{i}" for i, v in enumerate([2**63 - 1, -(2**63) + 1, -9.2e18, 9.2e18, 1.5])
                if v > number]  # fmt: skip
        assert sorted(item["id"] for item in listed["items"]) == want, number
    # A query cursor keeps such a filter exactly (its spec is measured as JSON text).
    opened = service.execute("data/query-open", {"dbHandle": db, "collection": "v",
                                                 "filter": {"t": {"$lt": 2**64}}})  # fmt: skip
    assert opened["totalCount"] == 5
    service.execute("data/query-close", {"queryHandle": opened["queryHandle"]})


#: Integers past 64 bits (and the edges around them) a filter may name.
_WIDE = st.one_of(
    st.sampled_from(
        [
            2**63,
            2**63 + 1,
            -(2**63) - 1,
            2**64,
            2**64 - 1,
            2**64 + 1,
            10**30,
            -(10**30),
            2**1024,
            -(2**1024),
            2**1024 - 1,
            10**400,
        ]
    ),
    st.integers(2**63, 2**70),
    st.integers(-(2**70), -(2**63) - 1),
    st.floats(9.3e18, 1e300).map(lambda f: int(f) + 1),
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    number=_WIDE,
    op=st.sampled_from(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$all"]),
)
def test_generated_wide_integer_filters_match_like_the_reference(
    service: Service, db: str, number: int, op: str
) -> None:
    """Every adapter answers a filter holding an integer past 64 bits as ``dbhandles.evaluate``
    does on the same records (numbers near it on both sides, as floats and ints; arrays)."""
    collection = f"w{next(_SEQUENCE)}"
    values: list[Any] = [2**63 - 1, -(2**63) + 1, 9.2e18, -9.2e18, 0, "x", None, [1, 9.2e18], []]
    expected = []
    for i, value in enumerate(values):
        service.execute("data/create", {"dbHandle": db, "collection": collection,
                                        "id": f"r{i}", "data": {"v": value}})  # fmt: skip
        expected.append({"id": f"r{i}", "v": value})
    operand: Any = [number, 0] if op in ("$in", "$nin") else [number] if op == "$all" else number
    spec = {"v": {op: operand}}
    node = parse_filter(spec)
    want = [r["id"] for r in expected if matches(node, r)]
    got = service.execute("data/list", {"dbHandle": db, "collection": collection,
                                        "filter": spec, "orderBy": "id"})  # fmt: skip
    assert [item["id"] for item in got["items"]] == sorted(want), spec
    counted = service.execute(
        "data/count", {"dbHandle": db, "collection": collection, "filter": spec}
    )
    assert counted["total"] == len(want)


# -- generated values through every adapter ---------------------------------------------------------

_STRINGS = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=6),
    st.sampled_from(
        ["", "a", "a\x01", "a\x7f", "é", "e\u0301", "😀", "\u212a", "\uffff", "\U0010ffff"]
    ),
)
_NUMBERS = st.one_of(
    st.integers(-(2**63) + 1, 2**63 - 1),
    st.sampled_from([0, -1, 2**53, 2**53 + 1, 2**63 - 1, -(2**63) + 1]),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-9.2e18, max_value=9.2e18),
    st.sampled_from([-0.0, 5e-324, 2.2250738585072014e-308, 1e-300, 0.1, 1e16, 9.2e18, -9.2e18]),
)
_SCALARS = st.one_of(st.none(), st.booleans(), _NUMBERS, _STRINGS)
_VALUES = st.one_of(
    _SCALARS,
    st.lists(_SCALARS, max_size=3),
    st.dictionaries(_STRINGS, _SCALARS, max_size=3),
)
_SEQUENCE = itertools.count()


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(values=st.lists(_VALUES, min_size=1, max_size=6))
def test_generated_values_read_back_filter_and_sort_like_the_reference(
    service: Service, db: str, values: list[Any]
) -> None:
    """Stored, read back, filtered by equality and order, and sorted: each adapter gives the
    answer of ``dbhandles.evaluate`` on the values as the rule keeps them."""
    collection = f"g{next(_SEQUENCE)}"
    expected = []
    for i, value in enumerate(values):
        service.execute("data/create", {"dbHandle": db, "collection": collection,
                                        "id": f"r{i}", "data": {"v": value}})  # fmt: skip
        expected.append({"id": f"r{i}", "v": check_value(value, "v")})
    for record in expected:
        read = service.execute(
            "data/read", {"dbHandle": db, "collection": collection, "id": record["id"]}
        )["data"]
        assert _canonical(read["v"]) == _canonical(record["v"])
    probes = [v for v in expected if not isinstance(v["v"], list | dict)][:3]
    for probe in probes:
        specs: list[dict[str, Any]] = [{"v": probe["v"]}]
        if probe["v"] is not None:  # nothing orders against null
            specs += [{"v": {"$gte": probe["v"]}}, {"v": {"$lt": probe["v"]}}]
        for spec in specs:
            node = parse_filter(spec)
            want = [r["id"] for r in expected if matches(node, r)]
            got = service.execute("data/list", {"dbHandle": db, "collection": collection,
                                                "filter": spec, "orderBy": "id"})  # fmt: skip
            assert [item["id"] for item in got["items"]] == want, spec
    keys = parse_order_by(["v", "id"])
    want_order = [r["id"] for r in sort_records(expected, keys)]
    got_order: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"dbHandle": db, "collection": collection, "orderBy": ["v"],
                                  "limit": 2, "skipCount": True}  # fmt: skip
        if cursor is not None:
            params["cursor"] = cursor
        page = service.execute("data/list", params)
        got_order.extend(item["id"] for item in page["items"])
        cursor = page.get("nextCursor")
        if not page["hasMore"]:
            break
    assert got_order == want_order
