"""Outside checks of issues #12/#14, item 5: numbers JSON can write but no reader could hold, the
version bound of ``expectedVersion``, RFC 3339 timestamps in imports and the bytes an aborted import
read."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbhandles.errors import InvalidParams
from dbhandles.importer.ids import BadLine
from dbhandles.importer.rows import timestamp
from dbhandles.service import Service
from dbhandles.settings import Settings
from dbhandles.values import check_value, read_json

HUGE = "9" * 400


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"a": ' + HUGE + "}", "data.a"),
        ('{"a": [-' + "1" * 5000 + "]}", "data.a[0]"),
        ('{"a": {"b": 1e400}}', "data.a.b"),
    ],
)
def test_numbers_no_reader_can_hold_get_the_value_rule_naming_the_field(
    text: str, field: str
) -> None:
    for form in (text, text.encode()):
        with pytest.raises(InvalidParams) as caught:
            check_value(read_json(form), "data")
        assert caught.value.field == field


@pytest.mark.parametrize(
    "text", ['{"a": NaN, "b": ' + HUGE + ",}", '{"a": "\\ud800", "b": ' + HUGE + "}", "[" + HUGE]
)
def test_what_orjson_refuses_stays_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"surrogate|expected|infinity"):
        read_json(text)


def test_a_huge_integer_in_a_request_is_invalid_params_naming_the_field(tmp_path: Path) -> None:
    with Service(settings=Settings(home=tmp_path / "home")) as service:
        refused = service.dispatch(
            "data/create", read_json('{"collection": "c", "data": {"n": ' + HUGE + "}}")
        )
    assert refused["code"] == "invalid_params"
    assert refused["field"] == "data.n"


@pytest.mark.parametrize("version", [-1, 2**31, 2**64])
def test_expected_version_outside_the_version_bound_is_invalid_params(
    tmp_path: Path, version: int
) -> None:
    with Service(settings=Settings(home=tmp_path / "home")) as service:
        service.execute("data/create", {"collection": "c", "id": "a", "data": {"x": 1}})
        update = {"collection": "c", "id": "a", "data": {"x": 2}, "expectedVersion": version}
        refused = service.dispatch("data/update", update)
        assert (refused["code"], refused["field"]) == ("invalid_params", "expectedVersion")
        op = {"op": "update", "collection": "c", "id": "a", "data": {}, "expectedVersion": version}
        refused = service.dispatch("data/batch", {"operations": [op]})
        assert refused["code"] == "invalid_params"
        assert service.execute("data/read", {"collection": "c", "id": "a"})["data"]["x"] == 1


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00.000Z"),
        ("2026-01-01t00:00:00z", "2026-01-01T00:00:00.000Z"),
        ("2026-01-01 00:00:00Z", "2026-01-01T00:00:00.000Z"),
        ("2026-01-01T01:30:00.123456789+01:30", "2026-01-01T00:00:00.123Z"),
        ("2025-12-31T23:00:00.5-01:00", "2026-01-01T00:00:00.500Z"),
    ],
)
def test_rfc3339_timestamps_are_kept(given: str, stored: str) -> None:
    assert timestamp(given, "createdAt") == stored


@pytest.mark.parametrize(
    "given",
    [
        "2026-01-01T00:00:00+01:00:30",
        "2026-01-01T00:00:00.Z",
        "2026-W01-1T00:00:00Z",
        "2026-001T00:00:00Z",
        "20260101T000000Z",
        "2026-01-01T00:00Z",
        "2026-01-01",
        "2026-01-01T00:00:00+0100",
        "2026-01-01T00:00:00",
        "2026-01-01T24:00:00Z",
    ],
)
def test_other_iso8601_forms_are_refused(given: str) -> None:
    with pytest.raises(BadLine) as caught:
        timestamp(given, "createdAt")
    assert "createdAt" in caught.value.reason


def test_an_aborted_import_reports_the_bytes_it_read(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "a"}\n{"id": "b", "createdAt": "2026-W01-1T00:00:00Z"}\n')
    with Service(settings=Settings(home=tmp_path / "home")) as service:
        refused = service.dispatch(
            "data/import",
            {"dbHandle": "default", "input": str(source), "collection": "c", "onError": "abort"},
        )
    assert refused["code"] == "invalid_params"
    assert "line 2" in refused["error"]
    assert refused["bytesRead"] == source.stat().st_size


def test_an_import_line_with_a_huge_integer_names_the_field(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "a", "n": ' + HUGE + "}\n")
    with Service(settings=Settings(home=tmp_path / "home")) as service:
        refused = service.dispatch(
            "data/import", {"dbHandle": "default", "input": str(source), "collection": "c"}
        )
    assert "line 1: n: numbers must lie strictly between" in refused["error"]
