"""Issue #14: every door spells a place in a record the same way, and no two places alike.

One function spells a path (``values.member_path``/``item_path``): a plain key after a dot, any other
key (empty, dotted, spaced, bracketed, quoted) as its JSON string in brackets, an item as ``[i]``.
``data/create``, ``data/batch``, ``data/update``, the request body's NaN check and the importer's
rejects all name the same bad value by it: ``data.a[""]["b.c"]`` in a command, ``a[""]["b.c"]`` for
a line of an import (the line is the record). Before, ``{"": 1e400}`` was ``data.`` in a command and
``the record`` in an import, and ``{"x.y": ...}`` read as the path ``x`` -> ``y``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbhandles import InvalidParams, Service
from dbhandles.values import item_path, member_path, read_json
from dbhandles.wire import encode_params

BIG = 2**70
Step = str | int


def _spell(steps: list[Step], root: str = "") -> str:
    where = root
    for step in steps:
        where = item_path(where, step) if isinstance(step, int) else member_path(where, step)
    return where


def _nest(steps: list[Step], leaf: Any) -> Any:
    value = leaf
    for step in reversed(steps):
        value = [0] * step + [value] if isinstance(step, int) else {step: value}
    return value


@pytest.mark.parametrize(
    ("steps", "spelled"),
    [(["a"], "a"), (["a", "b"], "a.b"), (["a.b"], '["a.b"]'), ([""], '[""]'),
     (["a", "", "b.c"], 'a[""]["b.c"]'), (["a", 1, ""], 'a[1][""]'), (["a", "0"], "a.0"),
     (["a[0]"], '["a[0]"]'), (["first name"], '["first name"]'), (['q"'], '["q\\""]'),
     (["a:b"], '["a:b"]'), (["t\u2028"], '["t\\u2028"]'), (["größe"], "größe")],
)  # fmt: skip
def test_a_path_is_spelled_with_brackets_where_a_key_is_no_plain_name(
    steps: list[Step], spelled: str
) -> None:
    assert _spell(steps) == spelled
    assert _spell(steps, "data") == ("data" + ("" if spelled.startswith("[") else ".") + spelled)


_KEYS = st.text(alphabet=st.sampled_from(['a', 'b', '.', '"', '[', ']', '0', ' ', '\\', ':', '\u2028']), max_size=3)  # fmt: skip
_STEPS = st.lists(st.one_of(_KEYS, st.integers(0, 3)), min_size=1, max_size=4)


@given(first=_STEPS, second=_STEPS)
def test_two_places_never_share_a_spelling(first: list[Step], second: list[Step]) -> None:
    if first != second:
        assert _spell(first) != _spell(second)
        assert _spell(first, "data") != _spell(second, "data")


RECORDS = [
    [""],
    ["x.y"],
    ["a", "", "b.c"],
    ["a", 1, ""],
    ["a", "first name", 0],
    ["m", "[0]"],
]


@pytest.mark.parametrize("steps", RECORDS, ids=lambda s: json.dumps(s))
@pytest.mark.parametrize("bad", [BIG, "nul\x00"], ids=["number", "text"])
def test_every_write_door_names_the_same_path(
    service: Service, tmp_path: Path, steps: list[Step], bad: Any
) -> None:
    record = _nest(steps, bad)
    in_command, in_line = _spell(steps, "data"), _spell(steps)
    handle = service.execute("data/open", {"adapter": "memory", "config": {}})["dbHandle"]
    service.execute("data/create", {"dbHandle": handle, "collection": "c", "data": {"id": "u"}})
    doors: list[tuple[str, dict[str, Any], str]] = [
        ("data/create", {"collection": "c", "data": record}, ""),
        ("data/batch", {"operations": [{"op": "create", "collection": "c", "data": record}]},
         "operations[0] (create): "),
        ("data/batch", {"operations": [{"op": "update", "collection": "c", "id": "u",
                                        "data": record}]}, "operations[0] (update): "),
        ("data/update", {"collection": "c", "id": "u", "data": record}, ""),
    ]  # fmt: skip
    for command, params, prefix in doors:
        with pytest.raises(InvalidParams) as caught:
            service.execute(command, {"dbHandle": handle, **params})
        # A batch's field starts at the operation that holds the value (operations[0].data...).
        place = "operations[0]." if command == "data/batch" else ""
        assert caught.value.field == place + in_command, command
        assert caught.value.message.startswith(f"{prefix}{in_command}: "), caught.value.message
    source, rejects = tmp_path / "in.jsonl", tmp_path / "rejects.jsonl"
    source.write_bytes(json.dumps(record).encode() + b"\n")
    result = service.execute(
        "data/import",
        {"dbHandle": handle, "collection": "i", "input": str(source), "onError": "skip",
         "rejects": str(rejects)},
    )  # fmt: skip
    [error] = result["errors"]
    [rejected] = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    assert rejected["reason"] == error["reason"]
    assert error["reason"].startswith(f"{in_line}: "), error["reason"]


@pytest.mark.parametrize("steps", RECORDS, ids=lambda s: json.dumps(s))
def test_a_request_body_names_a_nan_by_the_same_path(service: Service, steps: list[Step]) -> None:
    """The body carries the literal ``NaN``; the server reads it and the value rule names it."""
    body = encode_params({"collection": "c", "data": _nest(steps, float("nan"))})
    refused = service.dispatch("data/create", read_json(body))
    assert (refused["code"], refused["field"]) == ("invalid_params", _spell(steps, "data"))
