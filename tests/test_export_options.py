"""``data/export`` and ``jtag export-jsonl``: projection, reserved fields, limit, order, sample,
split, and no overwrite without ``overwrite``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import FileExists, Service
from dbhandles.adapters.sampling import Sampling, sample_hash, select, split_bounds
from dbhandles.cli.jsonl import export_main

FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}


@pytest.fixture
def db(service: Service, tmp_path: Path) -> str:
    path = str(tmp_path / "source.sqlite")
    handle = service.execute("data/open", {"config": {"path": path, "mode": "create"}})["dbHandle"]
    ops = [{"op": "create", "collection": "training_examples", "id": f"e{i:03d}",
            "data": {"messages": [{"role": "user", "content": f"q{i}"}], "metadata": {"n": i % 4}}}
           for i in range(60)]  # fmt: skip
    service.execute("data/batch", {"dbHandle": handle, "operations": ops})
    return str(handle)


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def export(service: Service, db: str, output: Path, **params: Any) -> dict[str, Any]:
    return service.execute("data/export", {"dbHandle": db, "output": str(output), **params})


def test_fields_without_reserved_make_a_fine_tuning_file(
    service: Service, db: str, tmp_path: Path
) -> None:
    out = tmp_path / "ft.jsonl"
    result = export(service, db, out, fields=["messages"], omitReserved=True, limit=10)
    assert result["exported"] == 10
    assert lines(out) == [{"messages": [{"role": "user", "content": f"q{i}"}]} for i in range(10)]


def test_order_limit_and_projection_with_id(service: Service, db: str, tmp_path: Path) -> None:
    out = tmp_path / "ordered.jsonl"
    export(service, db, out, orderBy=["-metadata.n", "-id"], limit=5, fields="metadata.n")
    assert lines(out) == [{"id": f"e{i:03d}", "metadata": {"n": 3}} for i in (59, 55, 51, 47, 43)]


def test_sample_and_split_match_data_list(service: Service, db: str, tmp_path: Path) -> None:
    ids = [f"e{i:03d}" for i in range(60)]
    out = tmp_path / "sample.jsonl"
    export(service, db, out, sample=9, seed=4, pageSize=2)
    expected = select([{"id": i} for i in ids], Sampling(size=9, seed=4))
    assert [r["id"] for r in lines(out)] == [r["id"] for r in expected]
    listed = service.execute("data/list", {"dbHandle": db, "collection": "training_examples",
                                           "sample": 9, "seed": 4})  # fmt: skip
    assert [r["id"] for r in listed["items"]] == [r["id"] for r in lines(out)]
    out = tmp_path / "test.jsonl"
    export(service, db, out, split={"name": "test", "fractions": FRACTIONS, "seed": 2})
    low, high = split_bounds(FRACTIONS, "test")
    assert [r["id"] for r in lines(out)] == [
        i for i in ids if low <= sample_hash("split", 2, i) < high
    ]


def test_existing_output_is_refused_without_overwrite(
    service: Service, db: str, tmp_path: Path
) -> None:
    out = tmp_path / "exists.jsonl"
    out.write_text("keep me\n")
    with pytest.raises(FileExists):
        export(service, db, out)
    assert out.read_text() == "keep me\n"
    assert export(service, db, out, overwrite=True)["exported"] == 60
    assert len(lines(out)) == 60


def test_export_jsonl_options_and_overwrite_flag(
    service: Service, db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli.jsonl"
    argv = [f"--db-handle={db}", f"--output={out}", "--fields=messages", "--omit-reserved",
            "--limit=3", "--quiet"]  # fmt: skip
    assert export_main(argv, service=service) == 0
    assert [set(r) for r in lines(out)] == [{"messages"}] * 3
    assert export_main(argv, service=service) == 1
    assert "file_exists" in capsys.readouterr().out
    assert export_main([*argv, "--overwrite"], service=service) == 0
