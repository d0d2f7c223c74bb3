"""Reserved fields on import (issue 14): ``createdAt``/``updatedAt`` must be real RFC 3339 times whose
UTC time falls in the years 0001-9999 (ASCII digits, stored with a 4-digit year), ``version`` an
integer from 1 to 2**31 - 1; anything else is a bad line with its number, the same on every adapter,
and ``onError=skip`` keeps every good line. A line that is not UTF-8 says which byte and where."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import Service
from dbhandles.errors import InvalidParams
from dbhandles.values import MAX_VERSION
from tests.conftest import ADAPTERS, adapter_config

#: Each line, and the record it stores (``None``: rejected) or a word of why it is rejected.
_LINES: list[tuple[dict[str, Any], str | None, str]] = [
    ({"id": "c", "createdAt": "0001-01-01T00:00:00+01:00"}, None, "years 0001 to 9999"),
    ({"id": "d", "updatedAt": "9999-12-31T23:00:00-02:00"}, None, "years 0001 to 9999"),
    ({"id": "m", "createdAt": "2026-13-45T99:99:99.000Z"}, None, "month must be in 1..12"),
    ({"id": "f", "createdAt": "2026-02-30T00:00:00.000Z"}, None, "day is out of range"),
    (
        {
            "id": "a",
            "createdAt": "\u0662\u0660\u0662\u0666-\u0660\u0661-\u0660\u0661T\u0660\u0660:\u0660\u0660:\u0660\u0660.\u0660\u0660\u0660Z",
        },
        None,
        "RFC 3339",
    ),
    ({"id": "w", "updatedAt": "\uff12\uff10\uff12\uff16-01-01T00:00:00.000Z"}, None, "RFC 3339"),
    ({"id": "v", "version": 9223372036854775807, "x": 1}, None, "from 1 to 2147483647"),
    ({"id": "u", "version": 2**31, "x": 1}, None, "from 1 to 2147483647"),
    ({"id": "old", "createdAt": "0999-01-01T00:00:00Z"}, "0999-01-01T00:00:00.000Z", ""),
    ({"id": "low", "createdAt": "0001-01-01T00:00:00-01:00"}, "0001-01-01T01:00:00.000Z", ""),
    ({"id": "top", "version": MAX_VERSION, "x": 1}, "top", ""),
    ({"id": "z", "x": 1}, "z", ""),
]


def _import(service: Service, handle: str, tmp_path: Path) -> dict[str, Any]:
    source = tmp_path / "reserved.jsonl"
    source.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line, _, _ in _LINES))
    result: dict[str, Any] = service.execute(
        "data/import",
        {"dbHandle": handle, "input": str(source), "collection": "items", "onError": "skip"},
    )
    return result


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_bad_reserved_values_are_bad_lines_on_every_adapter(
    service: Service, tmp_path: Path, adapter: str, import_parser: str
) -> None:
    handle = service.execute("data/open", {"adapter": adapter,
                                           "config": adapter_config(adapter, tmp_path)})["dbHandle"]  # fmt: skip
    result = _import(service, handle, tmp_path)
    kept = [line["id"] for line, stored, _ in _LINES if stored is not None]
    assert (result["imported"], result["failed"]) == (len(kept), len(_LINES) - len(kept))
    expected = [(n, why) for n, (_, stored, why) in enumerate(_LINES, 1) if stored is None]
    assert [e["line"] for e in result["errors"]] == [n for n, _ in expected]
    for error, (_, why) in zip(result["errors"], expected, strict=True):
        assert why in error["reason"], error
    read = {
        record_id: service.execute(
            "data/read", {"dbHandle": handle, "collection": "items", "id": record_id}
        )["data"]
        for record_id in kept
    }
    assert read["old"]["createdAt"] == "0999-01-01T00:00:00.000Z"
    assert read["low"]["createdAt"] == "0001-01-01T01:00:00.000Z"
    assert read["top"]["version"] == MAX_VERSION and read["z"]["version"] == 1
    # Text order is time order: the year 0999 sorts before 2026.
    ordered = service.execute("data/list", {"dbHandle": handle, "collection": "items",
                                            "orderBy": ["createdAt"]})["items"]  # fmt: skip
    assert [r["id"] for r in ordered][:2] == ["low", "old"]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_an_update_past_the_largest_version_is_refused_on_every_adapter(
    service: Service, tmp_path: Path, adapter: str, import_parser: str
) -> None:
    handle = service.execute("data/open", {"adapter": adapter,
                                           "config": adapter_config(adapter, tmp_path)})["dbHandle"]  # fmt: skip
    _import(service, handle, tmp_path)
    target = {"dbHandle": handle, "collection": "items", "id": "top"}
    with pytest.raises(InvalidParams, match="the largest a record may have") as caught:
        service.execute("data/update", {**target, "data": {"x": 2}})
    assert caught.value.field == "version"
    with pytest.raises(InvalidParams, match="the largest a record may have"):
        service.execute("data/batch", {"dbHandle": handle, "operations": [
            {"op": "update", "collection": "items", "id": "top", "data": {"x": 3}}]})  # fmt: skip
    assert service.execute("data/read", target)["data"]["x"] == 1  # nothing written
    updated = service.execute(
        "data/update", {**target, "data": {"x": 4}, "incrementVersion": False}
    )
    assert updated["data"]["version"] == MAX_VERSION
    below = service.execute("data/update", {**target, "id": "z", "data": {"x": 5}})
    assert below["data"]["version"] == 2


def test_a_line_that_is_not_utf8_names_the_byte_and_its_column(
    service: Service, tmp_path: Path, import_parser: str
) -> None:
    source = tmp_path / "latin1.jsonl"
    source.write_bytes(b'{"a":"ok"}\n{"a":"caf\xe9"}\n')
    with pytest.raises(InvalidParams) as caught:
        service.execute("data/import", {"input": str(source), "output": str(tmp_path / "o.sqlite")})
    message = caught.value.message
    assert message.startswith("line 2: not valid UTF-8 (byte 0xE9 at column 10)"), message
    assert "surrogates" not in message and "line 1 column 1" not in message
