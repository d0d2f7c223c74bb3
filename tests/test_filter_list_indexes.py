"""Issue #14, fifth outside round: an element of a list-valued filter operator (``$in``, ``$nin``,
``$all``) that no record can hold is named by its index (``filter.tags.$in[3]``), in the message and
``field``, as ``groupBy[1]`` and ``$or[2]`` are: the rule, checked with hypothesis over lists that
hold one bad element at any place, and on every adapter."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbhandles import Service
from dbhandles.errors import InvalidFilter
from dbhandles.filters import check_collection_values, parse_filter

#: Values no filter may compare, each with a word of its message.
BAD: list[tuple[Any, str]] = [
    ("a\x00b", "U+0000"),
    ("\ud800", "lone surrogate"),
    (float("nan"), "NaN is not a number"),
    (float("inf"), "infinite"),
    (1e400, "infinite"),  # an integer past 64 bits is a filter value (compared by value)
    ([1], "scalar values"),
    ({"k": 1}, "scalar values"),
]
GOOD = st.one_of(st.none(), st.booleans(), st.integers(-(2**62), 2**62),
                 st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF)))  # fmt: skip


def _collection_filter(spec: object) -> None:
    node = parse_filter(spec)
    if node is not None:
        check_collection_values(node)


@given(
    op=st.sampled_from(["$in", "$nin", "$all"]),
    before=st.lists(GOOD, max_size=6),
    after=st.lists(GOOD, max_size=3),
    bad=st.sampled_from(BAD),
)
def test_a_bad_element_of_a_list_operator_is_named_by_its_index(
    op: str, before: list[Any], after: list[Any], bad: tuple[Any, str]
) -> None:
    value, word = bad
    with pytest.raises(InvalidFilter) as caught:
        # U+0000 parses (a table dbhandles did not create may hold it); a collection refuses it
        _collection_filter({"tags": {op: [*before, value, *after]}})
    where = f"filter.tags.{op}[{len(before)}]"
    assert caught.value.field == where
    assert caught.value.message.startswith(f"{where}: ") and word in caught.value.message


@pytest.mark.parametrize("op", ["$in", "$nin", "$all"])
def test_every_adapter_names_the_index(service: Service, db: str, op: str) -> None:
    service.execute("data/create", {"dbHandle": db, "collection": "c", "data": {"tags": ["a"]}})
    for command in ("data/list", "data/count"):
        envelope = service.dispatch(
            command, {"dbHandle": db, "collection": "c", "filter": {"tags": {op: ["a", "b\x00"]}}}
        )
        assert (envelope["code"], envelope["field"]) == ("invalid_filter", f"filter.tags.{op}[1]")
