"""Error words say what the caller sent: a value is quoted as JSON (``null``, ``true``, ``"k\\u0000"``,
numbers as stored), never as Python writes it (``None``, ``True``, ``'k\\x00'``), and a place is
never an empty path (the record's top level is "the record"). Swept over the value rule
(``values.py``), import reject reasons (``importer/``), the original's cursor
(``commands/legacy_cursor.py``) and ``groupBy``'s shape."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from dbhandles import InvalidParams, Service
from dbhandles.values import check_value, json_text

#: What Python's words look like in a message: a bare None/True/False, or a '...' quoted text.
PYTHON_WORDS = re.compile(r"\b(None|True|False)\b|'[^']*\\x[0-9a-f]{2}[^']*'|NoneType")


def _clean(message: str) -> None:
    assert not PYTHON_WORDS.search(message), message
    assert not message.startswith(":"), message


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "null"), (True, "true"), (False, "false"), (0.0, "0.0"), (3, "3"),
     ("k\x00", '"k\\u0000"'), ("\ud800", '"\\ud800"'), (2**64, "18446744073709551616"),
     (float("nan"), "NaN"), (float("-inf"), "-Infinity"), ([None, "a"], '[null,"a"]'),
     ({"a": True}, '{"a":true}')],
)  # fmt: skip
def test_json_text_quotes_a_value_as_json(value: Any, text: str) -> None:
    assert json_text(value) == text


def test_json_text_cuts_a_long_value() -> None:
    text = json_text("x" * 500, 50)
    assert len(text) == 50 and text.endswith("…") and text.startswith('"xxx')


# -- the value rule ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "where", "message", "field"),
    [({"k\x00": 1}, "", "the record's key \"k\\u0000\": text contains U+0000", None),
     ({"m": {"k\x00": 1}}, "", "m: key \"k\\u0000\": text contains U+0000", "m"),
     ({"k\x00": 1}, "data", "data: key \"k\\u0000\": text contains U+0000", "data"),
     ({1: 1}, "", "the record: object keys must be strings, got 1", None),
     ("a\x00", "", "the record: text contains U+0000", None),
     (object(), "", "the record: object is not a JSON value", None)],
)  # fmt: skip
def test_the_value_rule_names_a_place_and_quotes_keys_as_json(
    value: Any, where: str, message: str, field: str | None
) -> None:
    with pytest.raises(InvalidParams) as caught:
        check_value(value, where)
    assert caught.value.message.startswith(message), caught.value.message
    assert caught.value.field == field
    _clean(caught.value.message)


def _import(service: Service, tmp_path: Path, lines: list[str]) -> dict[str, Any]:
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return service.execute("data/import", {"dbHandle": "default", "input": str(source),
                                           "collection": "c", "onError": "skip"})  # fmt: skip


def test_an_import_reject_names_the_records_key(service: Service, tmp_path: Path) -> None:
    result = _import(service, tmp_path, ['{"id":"u5","t":"ok2","k\\u0000":1}', '{"id":"u6"}'])
    assert (result["imported"], result["failed"]) == (1, 1)
    [error] = result["errors"]
    assert error["line"] == 1
    assert error["reason"].startswith('the record\'s key "k\\u0000": text contains U+0000')
    _clean(error["reason"])


@pytest.mark.parametrize(
    ("line", "says"),
    [('{"id": "a", "version": null, "x": 1, "createdAt": true}', 'must be an RFC 3339'),
     ('{"id": "a", "createdAt": "2026-01-31T09:30:00"}', '"2026-01-31T09:30:00" has no timezone'),
     ('{"id": "a", "version": true}', '"version" is a reserved field'),
     ('{"id": "a", "version": 0}', "got 0"),
     ('{"id": true}', "an id must be a string or a number, got true"),
     ('{"id": [1, null]}', "got [1,null]"),
     ('{"id": ""}', 'got ""')],
)  # fmt: skip
def test_import_reject_reasons_quote_values_as_json(
    service: Service, tmp_path: Path, line: str, says: str
) -> None:
    result = _import(service, tmp_path, [line])
    assert result["failed"] == 1, result
    [error] = result["errors"]
    assert says in error["reason"], error
    _clean(error["reason"])


def test_an_id_field_that_disagrees_is_quoted_as_json(service: Service, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "x", "m": {"k": "y"}}\n', encoding="utf-8")
    result = service.execute("data/import", {"dbHandle": "default", "input": str(source),
                                             "collection": "c", "onError": "skip",
                                             "idField": "m.k"})  # fmt: skip
    [error] = result["errors"]
    assert 'the line\'s "id" ("x") differs from its id field ("y")' in error["reason"], error
    _clean(error["reason"])


# -- the original's cursor -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "stored", "quoted"),
    [(None, None, "null"), (-0.0, 0.0, "0.0"), (0.0, -0.0, "0.0"), (True, True, "true"),
     ("a'b", "a'b", '"a\'b"')],
)  # fmt: skip
def test_a_tie_at_the_cursor_quotes_the_value_as_stored(
    service: Service, value: Any, stored: Any, quoted: str
) -> None:
    ops = [{"op": "create", "collection": "c", "data": {"id": f"r{i}", "n": stored}}
           for i in range(3)]  # fmt: skip
    service.execute("data/batch", {"operations": ops})
    cursor = {"field": "n", "value": value, "direction": "after"}
    with pytest.raises(InvalidParams) as caught:
        service.execute("data/list", {"collection": "c", "cursor": cursor})
    assert caught.value.field == "cursor"
    assert f"3 records have n = {quoted}, so" in caught.value.message, caught.value.message
    _clean(caught.value.message)


@pytest.mark.parametrize(
    ("cursor", "says"),
    [({"field": "n", "value": None, "direction": "up"}, 'must be "after" or "before", got "up"'),
     ({"field": "n", "value": {"a": None}}, 'got {"a":null}'),
     ({"field": "n", "value": 1, "x\x00": 2}, 'unknown key "x\\u0000"'),
     (False, "cursor: got false"), ([None], "cursor: got [null]")],
)  # fmt: skip
def test_a_bad_cursor_quotes_what_was_sent_as_json(
    service: Service, cursor: Any, says: str
) -> None:
    refused = service.dispatch("data/list", {"collection": "c", "cursor": cursor})
    assert refused["code"] == "invalid_params"
    assert says in refused["error"], refused
    _clean(refused["error"])


@pytest.mark.parametrize(
    ("group_by", "field", "says"),
    [(True, "groupBy", "got true"), (["a", None], "groupBy[1]", "got null")],
)  # fmt: skip
def test_group_by_shape_quotes_what_was_sent(
    service: Service, group_by: Any, field: str, says: str
) -> None:
    refused = service.dispatch("data/count", {"collection": "c", "groupBy": group_by})
    assert (refused["code"], refused["field"]) == ("invalid_params", field)
    assert refused["error"].endswith(says), refused
    _clean(refused["error"])
