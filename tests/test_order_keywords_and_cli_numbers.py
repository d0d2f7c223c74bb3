"""Two kinds found by the #14 outside check (round 7):

- a sort keyword (``random``) in any ``orderBy`` is refused, on every command that takes one —
  ``data/copy``'s ``from.orderBy`` read it as a field and copied in id order in silence;
- a number on the ``jtag`` command line is read by JSON's number grammar (RFC 8259 §6), the one a
  server reads a body by — Python's ``int()`` took fullwidth and Arabic-Indic digits, ``1_0``,
  ``+3`` and surrounding spaces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.cli.parse import parse_args, to_params
from dbhandles.commands import builtin_commands
from dbhandles.errors import DbHandlesError, InvalidParams

ORDER_PARAMS: list[tuple[str, dict[str, Any], str]] = [
    ("data/list", {"collection": "c", "orderBy": "random"}, "orderBy"),
    ("data/list", {"collection": "c", "orderBy": ["name", "-shuffle"]}, "orderBy"),
    ("data/query-open", {"collection": "c", "orderBy": "RAND"}, "orderBy"),
    ("data/export", {"collection": "c", "output": "o.jsonl", "orderBy": "random"}, "orderBy"),
    (
        "data/copy",
        {
            "from": {"dbHandle": "default", "collection": "c", "orderBy": "random"},
            "to": {"dbHandle": "default", "collection": "d"},
        },
        "from.orderBy",
    ),
    (
        "data/copy",
        {
            "from": {"dbHandle": "default", "collection": "c", "orderBy": ["-shuffle"]},
            "to": {"dbHandle": "default", "collection": "d"},
        },
        "from.orderBy",
    ),
]


@pytest.mark.parametrize(("command", "params", "field"), ORDER_PARAMS)
def test_a_sort_keyword_is_refused_on_every_command(
    tmp_path: Path, command: str, params: dict[str, Any], field: str
) -> None:
    with Service(home=tmp_path / "home") as service:
        service.execute("data/create", {"collection": "c", "data": {"name": "x"}})
        with pytest.raises(DbHandlesError) as caught:
            service.execute(command, params)
    assert caught.value.code == "invalid_params"
    assert caught.value.field == field
    assert "is not a sort order" in caught.value.message
    assert not (tmp_path / "home" / "o.jsonl").exists()


def test_a_field_named_random_is_still_sortable_by_the_object_form(tmp_path: Path) -> None:
    with Service(home=tmp_path / "home") as service:
        for value in (2, 1):
            service.execute("data/create", {"collection": "c", "data": {"random": value}})
        page = service.execute("data/list", {"collection": "c", "orderBy": [{"field": "random"}]})
    assert [item["random"] for item in page["items"]] == [1, 2]


def _limit(text: str) -> Any:
    command = builtin_commands()["data/list"]
    raw = parse_args(command, ["--collection=users", f"--limit={text}"]).params
    return to_params(command, raw)["limit"]


@pytest.mark.parametrize("text", ["7", "0", "100", "1e2"])
def test_a_json_number_on_the_command_line_is_a_number(text: str) -> None:
    assert _limit(text) == int(float(text))


@pytest.mark.parametrize(
    "text",
    ["\uff15", "\u0663", "1_0", "+3", " 7 ", "7 ", "inf", "nan", "0x10", "five"],
)
def test_what_json_would_not_read_as_a_number_is_refused(text: str) -> None:
    with pytest.raises(InvalidParams) as caught:
        _limit(text)
    assert caught.value.field == "limit"
