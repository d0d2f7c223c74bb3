"""The reports of an ``onError: skip`` import are in line order across both kinds of line not
written (issue #15, findings 4 and 5; docs/import.md "Duplicate ids" and "Bad lines").

A bad line is known when its chunk is parsed, a collision (an id stored with other fields) only
when its insert skipped it; ``errors`` still holds the first ten entries by line of both kinds, and
the rejects file is in line order within each batch. A collision's reason names the line that
stored the id whenever that line is in the same batch, also in an earlier 1 MiB chunk of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service

pytestmark = pytest.mark.usefixtures("import_parser")


def run(service: Service, db: str, source: Path, **params: Any) -> dict[str, Any]:
    result: dict[str, Any] = service.execute(
        "data/import",
        {"input": str(source), "dbHandle": db, "collection": "c", "onError": "skip", **params},
    )
    return result


def rejects_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_tester_file(path: Path) -> Path:
    """Lines 1-15: ids d0..d14 (v 1); 16-30: the same ids (v 2, collisions); 31-45: not JSON."""
    first = [json.dumps({"id": f"d{i}", "v": 1}) for i in range(15)]
    again = [json.dumps({"id": f"d{i}", "v": 2}) for i in range(15)]
    bad = [f"not json {i}" for i in range(15)]
    path.write_text("\n".join(first + again + bad) + "\n")
    return path


def test_errors_are_the_first_ten_by_line_of_both_kinds(
    service: Service, db: str, tmp_path: Path
) -> None:
    rejects = tmp_path / "rejects.jsonl"
    result = run(service, db, write_tester_file(tmp_path / "in.jsonl"), rejects=str(rejects))
    assert (result["imported"], result["duplicates"], result["failed"]) == (15, 15, 15)
    assert [e["line"] for e in result["errors"]] == list(range(16, 26))
    assert all(e["id"] == f"d{e['line'] - 16}" for e in result["errors"])
    assert [e["line"] for e in rejects_of(rejects)] == list(range(16, 46))


def test_errors_are_in_line_order_without_a_rejects_file(
    service: Service, db: str, tmp_path: Path
) -> None:
    result = run(service, db, write_tester_file(tmp_path / "in.jsonl"))
    assert [e["line"] for e in result["errors"]] == list(range(16, 26))
    assert result["failed"] == 15


@pytest.mark.parametrize("batch_size", [4, 7, 100])
def test_interleaved_bad_lines_and_collisions_stay_in_line_order(
    service: Service, db: str, tmp_path: Path, batch_size: int
) -> None:
    """Bad lines before, between and after collisions, in one batch or over several."""
    lines: list[str] = []
    for i in range(12):
        lines.append(json.dumps({"id": f"k{i}", "v": 1}))
        lines.append(json.dumps({"id": f"k{i}", "v": 2}))  # a collision
        lines.append("{broken")
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n")
    rejects = tmp_path / "rejects.jsonl"
    result = run(service, db, source, rejects=str(rejects), batchSize=batch_size)
    assert (result["imported"], result["duplicates"], result["failed"]) == (12, 12, 12)
    reported = [n for n in range(1, 37) if n % 3 != 1]
    assert [e["line"] for e in result["errors"]] == reported[:10]
    assert [e["line"] for e in rejects_of(rejects)] == reported


def test_a_collision_names_the_line_of_an_earlier_chunk_of_its_batch(
    service: Service, db: str, tmp_path: Path
) -> None:
    """A 1.5 MB line between the line that stored an id and its collision puts them in two chunks."""
    big = json.dumps({"id": "big", "text": "x" * 1_500_000})
    source = tmp_path / "in.jsonl"
    source.write_text(
        json.dumps({"id": "a", "v": 1}) + "\n" + big + "\n" + json.dumps({"id": "a", "v": 2}) + "\n"
        "not json\n"
    )
    rejects = tmp_path / "rejects.jsonl"
    result = run(service, db, source, rejects=str(rejects))
    assert (result["imported"], result["duplicates"], result["failed"]) == (2, 1, 1)
    assert [e["line"] for e in result["errors"]] == [3, 4]
    assert "with the fields of line 1 of this input" in result["errors"][0]["reason"]
    assert [e["line"] for e in rejects_of(rejects)] == [3, 4]


def test_a_collision_with_a_line_that_was_itself_a_collision_names_the_writer(
    service: Service, db: str, tmp_path: Path
) -> None:
    """Line 3 collides with line 1 (two chunks away); line 5 with line 1 too, never line 3."""
    big = json.dumps({"id": "big", "text": "y" * 1_500_000})
    rows = [{"id": "a", "v": 1}, None, {"id": "a", "v": 2}, None, {"id": "a", "v": 3}]
    source = tmp_path / "in.jsonl"
    source.write_text("".join((json.dumps(r) if r else big) + "\n" for r in rows))
    result = run(service, db, source)
    assert [e["line"] for e in result["errors"]] == [3, 5]
    assert all("with the fields of line 1 of this input" in e["reason"] for e in result["errors"])


def test_a_collision_in_a_later_batch_says_so(service: Service, db: str, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "a", "v": 1}\n{"id": "b", "v": 1}\n{"id": "a", "v": 2}\n')
    result = run(service, db, source, batchSize=2)
    assert [e["line"] for e in result["errors"]] == [3]
    assert (
        "by an earlier batch of this import or an earlier import" in result["errors"][0]["reason"]
    )


def test_the_ids_kept_to_name_a_storing_line_are_bounded(
    service: Service, db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the batch's first ``WRITERS_KEPT`` records a storing line in an earlier chunk is not
    named (memory stays bounded); within them it is."""
    from dbhandles.importer import run as import_run

    monkeypatch.setattr(import_run, "WRITERS_KEPT", 2)
    big = json.dumps({"id": "big", "text": "z" * 1_500_000})
    rows = [{"id": "a", "v": 1}, None, {"id": "b", "v": 1}, None, {"id": "a", "v": 2}]
    rows += [{"id": "b", "v": 2}]
    source = tmp_path / "in.jsonl"
    source.write_text("".join((json.dumps(r) if r else big) + "\n" for r in rows))
    result = run(service, db, source)
    assert [e["line"] for e in result["errors"]] == [5, 6]
    assert "with the fields of line 1 of this input" in result["errors"][0]["reason"]
    assert (
        "by an earlier batch of this import or an earlier import" in result["errors"][1]["reason"]
    )
