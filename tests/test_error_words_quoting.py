"""Issue #14: an error message quotes every value and name the caller sent as JSON text (never as
Python writes it: ``None``, ``'a\\x00'``, ``['x']``), holds no raw control, separator or format
character, names the offending part in ``field`` (``filter.a.$in``), never shows pydantic's own
location names (``list[any]``), and says a limit when that is what was passed."""

from __future__ import annotations

import re
from typing import Any

import pytest

from dbhandles import DbHandlesError, Service
from dbhandles.security.names import UNSHOWABLE
from tests.servers import app_client

#: Python's words in a message: a bare None/True/False, a '...' quoted text, a list repr.
PYTHON_WORDS = re.compile(r"\b(None|True|False)\b|'[^']*\\x[0-9a-f]{2}[^']*'|\['|NoneType|''")


def _refused(service: Service, command: str, params: dict[str, Any]) -> DbHandlesError:
    with pytest.raises(DbHandlesError) as caught:
        service.execute(command, params)
    error = caught.value
    assert not PYTHON_WORDS.search(error.message), error.message
    assert not UNSHOWABLE.search(error.message), ascii(error.message)
    assert error.field is None or not UNSHOWABLE.search(error.field), ascii(error.field)
    for internal in ("list[any]", "function-after", "dict[str,any]"):
        assert internal not in error.message and internal not in (error.field or "")
    return error


def _list(service: Service, **params: Any) -> DbHandlesError:
    return _refused(service, "data/list", {"collection": "c", **params})


@pytest.mark.parametrize(
    ("direction", "got"), [(None, "got null"), ("sideways\x00", 'got "sideways\\u0000"')]
)
def test_a_bad_direction_is_quoted_as_json_and_named(
    service: Service, direction: Any, got: str
) -> None:
    error = _list(service, orderBy=[{"field": "a", "direction": direction}])
    assert got in error.message, error.message
    assert error.field == "orderBy[0].direction"


def test_an_unknown_operator_is_quoted_and_named(service: Service) -> None:
    error = _list(service, filter={"a": {"$bogus\x00": 1}})
    assert 'unknown operator "$bogus\\u0000"' in error.message, error.message
    assert error.field == "filter.a.$bogus\\u0000"


@pytest.mark.parametrize(
    ("params", "field"),
    [({"filter": {"a\x00": 1}}, "filter.a\\u0000"), ({"fields": ["a\x00"]}, "fields[0]"),
     ({"orderBy": ["a\x00"]}, "orderBy[0]"),
     ({"orderBy": [{"field": "a\x00"}]}, "orderBy[0].field")],
)  # fmt: skip
def test_a_bad_field_path_is_quoted_as_json(
    service: Service, params: dict[str, Any], field: str
) -> None:
    error = _list(service, **params)
    assert '"a\\u0000" is not a valid field path' in error.message, error.message
    assert error.field == field


def test_a_bad_group_by_path_is_quoted_as_json(service: Service) -> None:
    error = _refused(service, "data/count", {"collection": "c", "groupBy": ["a\x00"]})
    assert '"a\\u0000" is not a valid field path' in error.message, error.message


def test_a_bad_copy_order_is_quoted_and_named(service: Service) -> None:
    service.execute("data/create", {"collection": "c", "data": {"id": "r"}})
    params = {"from": {"dbHandle": "default", "collection": "c",
                       "orderBy": [{"field": "a", "x": 1}]},
              "to": {"dbHandle": "default", "collection": "d"}}  # fmt: skip
    error = _refused(service, "data/copy", params)
    assert 'unknown keys "x"' in error.message, error.message
    assert error.field is not None and error.field.endswith("orderBy[0]")


@pytest.mark.parametrize("path", ["a.b'c", 'a.b"c'])
def test_one_quoting_style_whatever_the_text_holds(service: Service, path: str) -> None:
    error = _list(service, orderBy=[path])
    quoted = '"a.b\'c"' if "'" in path else '"a.b\\"c"'
    assert error.message.startswith(f"orderBy[0]: {quoted} is not"), error.message


@pytest.mark.parametrize(("key", "escaped"), [("a\u2028b", "a\\u2028b"), ("a\x85b", "a\\u0085b")])
def test_separators_and_controls_are_escaped(service: Service, key: str, escaped: str) -> None:
    error = _list(service, filter={key: 1})
    assert f'"{escaped}"' in error.message, ascii(error.message)


def test_a_nul_in_a_filter_key_reaches_neither_field_nor_message(service: Service) -> None:
    error = _list(service, filter={"a\x00": 1})
    assert "\x00" not in error.message and "\x00" not in (error.field or "")


@pytest.mark.parametrize(
    ("filter", "field"),
    [({"a": {"$in": 1}}, "filter.a.$in"), ({"a": {"$exists": 1}}, "filter.a.$exists"),
     ({"a": {"$not": 1}}, "filter.a.$not"), ({"a": {"$size": -1}}, "filter.a.$size"),
     ({"a": {"$all": 1}}, "filter.a.$all"), ({"$or": 1}, "filter.$or"),
     ({"$xx": 1}, "filter.$xx"), ({"a": {"$zz": 1}}, "filter.a.$zz")],
)  # fmt: skip
def test_an_operator_error_names_its_path(
    service: Service, filter: dict[str, Any], field: str
) -> None:
    error = _list(service, filter=filter)
    assert error.field == field
    assert error.message.startswith(f"{field}: "), error.message


@pytest.mark.parametrize(("name", "what"), [("orderBy", "an array"), ("fields", "an array")])
def test_a_union_error_names_the_wire_field_not_pydantics(
    service: Service, name: str, what: str
) -> None:
    error = _list(service, **{name: -0.0})
    assert error.field == name
    assert error.message.startswith(f"{name}: expects {what}"), error.message
    assert error.message.endswith("got -0.0"), error.message


def test_the_originals_cursor_names_cursor_field(service: Service) -> None:
    error = _list(service, cursor={"field": "a\x00", "value": 1})
    assert error.field == "cursor.field"
    assert error.message.startswith('cursor.field: "a\\u0000"'), error.message


def test_a_path_past_64_parts_names_the_limit(service: Service) -> None:
    error = _refused(service, "data/count", {"collection": "c", "groupBy": ".".join("a" * 65)})
    assert "65 dot-separated parts" in error.message and "at most 64" in error.message


def test_a_long_key_is_cut_not_repeated(service: Service) -> None:
    error = _list(service, filter={"x" * 2000: 1})
    assert len(error.message) < 600, len(error.message)
    assert error.field is not None and len(error.field) < 120


@pytest.mark.parametrize(
    ("command", "params", "says"),
    [("data/list", {"collection": "c\x00"}, '"c\\u0000"'),
     ("data/list", {"dbHandle": "nope'\x00", "collection": "c"}, '"nope\'\\u0000"'),
     ("data/query-next", {"queryHandle": ""}, 'queryHandle: ""'),
     ("data/update", {"collection": "chat", "id": 1.5, "data": {"a": 1}},
      'no record with id "1.5" in "chat"')],
)  # fmt: skip
def test_names_and_ids_are_quoted_as_json(
    service: Service, command: str, params: dict[str, Any], says: str
) -> None:
    service.execute("data/create", {"collection": "chat", "data": {"id": "r"}})
    error = _refused(service, command, params)
    assert says in error.message, error.message


def test_over_http_the_body_holds_the_same_words(service: Service) -> None:
    with app_client(service) as client:
        response = client.post("/commands/data/list", json={"collection": "c",
                                                            "filter": {"a\u0000": 1}})  # fmt: skip
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == "filter.a\\u0000", body
    assert '"a\\u0000" is not a valid field path' in body["error"], body
    assert "\x00" not in response.text and "\\\\x00" not in response.text
