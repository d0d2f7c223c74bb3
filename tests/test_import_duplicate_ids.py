"""Lines of an import whose id is already stored with other fields are reported by line, never lost
in silence (outside report, finding 10), on every adapter and with either parser.

Ids are text (docs/import.md "Ids"): ``5``, ``5.0`` and ``"5"`` are one id, and so are ``-0.0`` and
``0``. Such a line is skipped, as every line whose id is stored, but unlike a re-run's or a repeated
line's its fields are in the database as no record: it is listed in ``errors`` with its line and
id, counted in ``duplicates``, and written to the rejects file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import Service
from dbhandles.value_equality import same_value

pytestmark = pytest.mark.usefixtures("import_parser")

#: The report's file: ids 5, 5.0, "5", -0.0 and 0 under ``meta.n``, then line 1 again.
REPORT_LINES = [
    {"meta": {"n": 5}, "x": 1},
    {"meta": {"n": 5.0}, "x": 2},
    {"meta": {"n": "5"}, "x": 3},
    {"meta": {"n": -0.0}, "x": 6},
    {"meta": {"n": 0}, "x": 7},
    {"meta": {"n": 5}, "x": 1},
]


def write_lines(path: Path, objects: list[dict[str, Any]], *, spaced: bool = False) -> Path:
    """JSONL of ``objects``: compact (the fast path) or with spaces (each line re-serialised)."""
    dump = json.dumps if spaced else (lambda o: orjson.dumps(o).decode())
    path.write_text("".join(dump(o) + "\n" for o in objects))
    return path


def run(service: Service, db: str, source: Path, **params: Any) -> dict[str, Any]:
    result: dict[str, Any] = service.execute(
        "data/import", {"input": str(source), "dbHandle": db, "collection": "c", **params}
    )
    return result


def rejects_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def stored(service: Service, db: str) -> dict[str, Any]:
    items = service.execute("data/list", {"dbHandle": db, "collection": "c", "limit": 500})["items"]
    return {item["id"]: item["x"] for item in items}


@pytest.mark.parametrize("spaced", [False, True], ids=["compact", "spaced"])
def test_ids_that_are_one_text_report_every_line_not_written(
    service: Service, db: str, tmp_path: Path, spaced: bool
) -> None:
    source = write_lines(tmp_path / "in.jsonl", REPORT_LINES, spaced=spaced)
    rejects = tmp_path / "rejects.jsonl"
    result = run(service, db, source, idField="meta.n", onError="skip", rejects=str(rejects))
    assert (result["imported"], result["skipped"], result["failed"]) == (2, 4, 0)
    assert result["duplicates"] == 3
    assert [(e["line"], e["id"]) for e in result["errors"]] == [(2, "5"), (3, "5"), (5, "0")]
    assert "with the fields of line 1 of this input" in result["errors"][0]["reason"]
    assert "with the fields of line 4 of this input" in result["errors"][2]["reason"]
    assert "not written" in result["errors"][0]["reason"]
    entries = rejects_of(rejects)
    assert [(e["line"], json.loads(e["text"])["x"]) for e in entries] == [(2, 2), (3, 3), (5, 7)]
    assert all(set(e) == {"line", "reason", "text"} for e in entries)
    assert stored(service, db) == {"5": 1, "0": 6}


def test_a_rerun_reports_the_same_lines_and_nothing_else(
    service: Service, db: str, tmp_path: Path
) -> None:
    source = write_lines(tmp_path / "in.jsonl", REPORT_LINES)
    run(service, db, source, idField="meta.n")
    again = run(service, db, source, idField="meta.n")
    assert (again["imported"], again["skipped"], again["duplicates"]) == (0, 6, 3)
    assert [e["line"] for e in again["errors"]] == [2, 3, 5]
    assert stored(service, db) == {"5": 1, "0": 6}


def test_repeated_lines_and_equal_values_are_no_collision(
    service: Service, db: str, tmp_path: Path
) -> None:
    """The same record twice (keys in another order, 1 written 1.0) loses nothing: not reported."""
    lines = [
        {"id": "a", "x": 1, "y": {"p": [1, 2], "q": "s"}},
        {"y": {"q": "s", "p": [1.0, 2]}, "x": 1.0, "id": "a"},
        {"id": "a", "x": 1, "y": {"p": [1, 2], "q": "s"}},
    ]
    result = run(service, db, write_lines(tmp_path / "in.jsonl", lines))
    assert (result["imported"], result["skipped"], result["duplicates"]) == (1, 2, 0)
    assert result["errors"] == []


def test_a_collision_with_a_record_stored_before_the_import(
    service: Service, db: str, tmp_path: Path
) -> None:
    service.execute("data/create", {"dbHandle": db, "collection": "c", "id": "7",
                                    "data": {"x": 0}})  # fmt: skip
    rejects = tmp_path / "rejects.jsonl"
    lines = [{"id": 7.0, "x": 1}, {"id": 8, "x": 2}]
    result = run(service, db, write_lines(tmp_path / "in.jsonl", lines), onError="skip",
                 rejects=str(rejects))  # fmt: skip
    assert (result["imported"], result["skipped"], result["duplicates"]) == (1, 1, 1)
    assert result["errors"][0]["line"] == 1 and result["errors"][0]["id"] == "7"
    assert "an earlier import" in result["errors"][0]["reason"]
    assert [e["line"] for e in rejects_of(rejects)] == [1]
    assert stored(service, db) == {"7": 0, "8": 2}


@pytest.mark.parametrize("batch_size", [1, 2, 1000])
def test_collisions_across_batches_and_lines_of_every_kind(
    service: Service, db: str, tmp_path: Path, batch_size: int
) -> None:
    """Collisions in another batch than the line that stored the id, between a blank line, a
    rejected line and a line with reserved keys (the item-by-item path)."""
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"id": 1, "x": 1}\n'
        "\n"
        "not json\n"
        '{"id": "1", "x": 2, "createdAt": "2026-01-01T00:00:00Z"}\n'
        '{"id": 2, "x": 3}\n'
        '{"id": 1.0, "x": 4}\n'
    )
    rejects = tmp_path / "rejects.jsonl"
    result = run(service, db, source, onError="skip", rejects=str(rejects), batchSize=batch_size)
    assert (result["imported"], result["skipped"], result["failed"]) == (2, 2, 1)
    assert result["duplicates"] == 2
    lines = [(e["line"], e.get("id")) for e in result["errors"]]
    assert lines == [(3, None), (4, "1"), (6, "1")]
    assert [e["line"] for e in rejects_of(rejects)] == [3, 4, 6]
    assert stored(service, db) == {"1": 1, "2": 3}


def test_every_collision_is_counted_and_in_the_rejects_file_past_the_ten_shown(
    service: Service, db: str, tmp_path: Path
) -> None:
    lines = [{"id": 1, "x": 0}] + [{"id": float(1), "x": i} for i in range(1, 26)]
    rejects = tmp_path / "rejects.jsonl"
    result = run(service, db, write_lines(tmp_path / "in.jsonl", lines), onError="skip",
                 rejects=str(rejects), batchSize=7)  # fmt: skip
    assert (result["imported"], result["skipped"], result["duplicates"]) == (1, 25, 25)
    assert len(result["errors"]) == 10
    assert [e["line"] for e in rejects_of(rejects)] == list(range(2, 27))


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (1, 1.0, True),
        (True, 1, False),
        (0, False, False),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}, True),
        ([1, 2], [2, 1], False),
        (None, 0, False),
        ("1", 1, False),
        ({"a": [1.5]}, {"a": [1.5]}, True),
        ({"a": 1}, {"a": 1, "b": None}, False),
    ],
)
def test_same_value_is_the_value_rule(a: Any, b: Any, same: bool) -> None:
    assert same_value(a, b) is same
