"""JSONL export, and the round trip export -> import that gives back every record unchanged."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import Service
from dbhandles.cli.jsonl import export_main, import_main
from dbhandles.errors import InvalidParams
from tests.test_import_common import run_cli, seed_file, table_rows

#: Every test here runs with lines parsed in the writer and in the parser process.
pytestmark = pytest.mark.usefixtures("import_parser")


def records_of(db: Path) -> dict[str, tuple[Any, ...]]:
    return {row[0]: (orjson.loads(row[1]), *row[2:]) for row in table_rows(db)}


@pytest.mark.parametrize("name", ["out.jsonl", "out.jsonl.gz"])
def test_export_then_import_round_trips_every_record(
    service: Service, tmp_path: Path, name: str
) -> None:
    seed_file(tmp_path / "in.jsonl", 700)
    first = tmp_path / "first.sqlite"
    _, imported, _ = run_cli(import_main, [f"--input={tmp_path / 'in.jsonl'}", f"--output={first}",
                                           "--quiet"], service)  # fmt: skip
    handle = imported["dbHandle"]
    # Records changed after the import keep their version and timestamps through the round trip.
    some_id = service.execute("data/list", {"dbHandle": handle, "collection": "training_examples",
                                            "limit": 1})["items"][0]["id"]  # fmt: skip
    service.execute("data/update", {"dbHandle": handle, "collection": "training_examples", "id": some_id,
                                    "data": {"used": True, "quality": 0.9}})  # fmt: skip
    service.execute("data/create", {"dbHandle": handle, "collection": "training_examples", "id": "test-001",
                                    "data": {"text": "example", "label": "positive"}})  # fmt: skip

    code, exported, _ = run_cli(export_main, [f"--input={first}", f"--output={tmp_path / name}",
                                              "--page-size=64", "--quiet"], service)  # fmt: skip
    assert code == 0, exported
    assert exported["exported"] == 701
    opener = gzip.open if name.endswith(".gz") else open
    with opener(tmp_path / name, "rb") as f:
        lines = f.read().splitlines()
    assert len(lines) == 701
    assert set(orjson.loads(lines[0])) >= {"id", "createdAt", "updatedAt", "version"}

    second = tmp_path / "second.sqlite"
    _, again, _ = run_cli(import_main, [f"--input={tmp_path / name}", f"--output={second}", "--quiet"],
                          service)  # fmt: skip
    assert (again["imported"], again["failed"]) == (701, 0)
    assert records_of(second) == records_of(first)
    assert records_of(second)[some_id][3] == 2  # version


def test_export_with_a_filter_and_through_a_handle(service: Service, tmp_path: Path) -> None:
    rows = seed_file(tmp_path / "in.jsonl", 300)
    result = service.execute("data/import", {"input": str(tmp_path / "in.jsonl"),
                                             "output": str(tmp_path / "db.sqlite")})  # fmt: skip
    out = tmp_path / "good.jsonl"
    exported = service.execute("data/export", {"dbHandle": result["dbHandle"], "output": str(out),
                                               "filter": {"metadata.qualityScore": {"$gte": 0.8}}})  # fmt: skip
    expected = sum(1 for r in rows if r["metadata"]["qualityScore"] >= 0.8)
    assert exported["exported"] == expected == len(out.read_bytes().splitlines())
    ids = [orjson.loads(line)["id"] for line in out.read_bytes().splitlines()]
    assert ids == sorted(ids)


def test_export_of_a_missing_collection_writes_an_empty_file(
    service: Service, tmp_path: Path
) -> None:
    handle = service.execute("data/open", {"adapter": "memory", "config": {}})["dbHandle"]
    result = service.execute("data/export", {"dbHandle": handle, "collection": "nothing",
                                             "output": str(tmp_path / "e.jsonl")})  # fmt: skip
    assert result["exported"] == 0
    assert (tmp_path / "e.jsonl").read_bytes() == b""


def test_export_leaves_no_partial_file_on_failure(service: Service, tmp_path: Path) -> None:
    with pytest.raises(InvalidParams, match="output: cannot create"):
        service.execute(
            "data/export", {"dbHandle": "default", "output": str(tmp_path / "no" / "x.jsonl")}
        )
    assert not (tmp_path / "no").exists()
    (tmp_path / "out").mkdir()
    with pytest.raises(InvalidParams, match="filter"):
        service.execute("data/export", {"dbHandle": "default", "output": str(tmp_path / "out" / "x.jsonl"),
                                        "filter": {"a": {"$bogus": 1}}})  # fmt: skip
    assert list((tmp_path / "out").iterdir()) == []


def test_export_needs_input_or_handle(service: Service, tmp_path: Path) -> None:
    with pytest.raises(InvalidParams) as info:
        service.execute("data/export", {"output": str(tmp_path / "x.jsonl")})
    assert info.value.field == "input"
    code, envelope, _ = run_cli(export_main, [f"--output={tmp_path / 'x.jsonl'}"], service)
    assert (code, envelope["code"]) == (1, "invalid_params")
