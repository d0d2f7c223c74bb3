"""Error messages that say what to send (issue 14, items 5 and 7): groupBy's shape, the original's
cursor forms, the session a call runs in, and how to replace an export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dbhandles import Context, Service
from dbhandles.errors import DbHandlesError


def _error(service: Service, name: str, params: dict[str, Any], **kw: Any) -> DbHandlesError:
    with pytest.raises(DbHandlesError) as caught:
        service.execute(name, params, **kw)
    return caught.value


@pytest.mark.parametrize(
    ("group_by", "got"),
    [([], "a list of 0"), (["a", "b", "c", "d", "e"], "a list of 5"), (3, "got 3")],
)  # fmt: skip
def test_group_by_shape(service: Service, group_by: Any, got: str) -> None:
    error = _error(service, "data/count", {"collection": "c", "groupBy": group_by})
    assert (error.code, error.field) == ("invalid_params", "groupBy")
    assert error.message.startswith("groupBy: 1 to 4 field paths") and error.message.endswith(got)


def test_group_by_element_of_another_type_is_named_by_its_index(service: Service) -> None:
    error = _error(service, "data/count", {"collection": "c", "groupBy": ["a", None]})
    assert (error.code, error.field) == ("invalid_params", "groupBy[1]")
    assert error.message == "groupBy[1]: a field path is a string, got null"


@pytest.mark.parametrize(
    ("cursor", "field", "says"),
    [({"field": "a", "value": 1, "direction": "up"}, "cursor.direction",
      '"after" or "before", got "up"'),
     ({"field": "a", "value": [1]}, "cursor.value",
      "string, number, boolean or null, got [1]"),
     ({"field": "a", "value": 1, "x": 2}, "cursor", 'unknown key "x"'),
     (5, "cursor", "got 5"), ([], "cursor", "got []")],
)  # fmt: skip
def test_legacy_cursor_says_its_forms(service: Service, cursor: Any, field: str, says: str) -> None:
    error = _error(service, "data/list", {"collection": "c", "cursor": cursor})
    assert (error.code, error.field) == ("invalid_params", field)
    assert says in error.message and "nextCursor string" in error.message
    assert "cursor.str" not in error.message


def test_session_mismatch_speaks_to_jtag_users_too(service: Service) -> None:
    error = _error(service, "data/list", {"collection": "c", "sessionId": "other"},
                   context=Context(session_id="mine"))  # fmt: skip
    assert error.code == "session_mismatch"
    assert "JTAG_SESSION_ID" in error.message and "X-Session-Id" in error.message


def test_export_over_a_file_names_both_spellings(service: Service, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("")
    error = _error(service, "data/export", {"dbHandle": "default", "output": str(out)})
    assert error.code == "file_exists"
    assert "overwrite: true" in error.message and "--overwrite" in error.message
