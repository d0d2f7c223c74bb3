"""JSONL import: the seed's flow, idempotent re-runs, .gz input, id fields, the data/import command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service, Settings
from dbhandles.cli.jsonl import import_main
from dbhandles.events import Event
from dbhandles.importer.ids import content_id
from tests.test_import_common import REPO, run_cli, seed_file, table_rows, write_jsonl

#: Every test here runs with lines parsed in the writer and in the parser process.
pytestmark = pytest.mark.usefixtures("import_parser")

QUALITY = {"metadata.qualityScore": {"$gte": 0.8}}


def list_all(
    service: Service, handle: str, filter: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {
            "dbHandle": handle,
            "collection": "training_examples",
            "limit": 500,
        }
        if filter is not None:
            params["filter"] = filter
        if cursor is not None:
            params["cursor"] = cursor
        page = service.execute("data/list", params)
        items.extend(page["items"])
        cursor = page["nextCursor"]
        if cursor is None:
            return items


def test_seed_flow_import_then_filtered_list_through_the_returned_handle(
    service: Service, tmp_path: Path
) -> None:
    rows = seed_file(tmp_path / "continuum-git.jsonl", 1590)
    output = tmp_path / "prepared" / "continuum-git.sqlite"
    code, summary, _ = run_cli(import_main, [f"--input={tmp_path / 'continuum-git.jsonl'}",
                                             f"--output={output}", "--quiet"], service)  # fmt: skip
    assert code == 0, summary
    assert summary["success"] is True
    assert (summary["imported"], summary["skipped"], summary["failed"]) == (1590, 0, 0)
    assert summary["output"] == str(output.resolve())
    for key in ("seconds", "recordsPerSecond", "dbHandle"):
        assert key in summary
    handle = summary["dbHandle"]
    assert handle in [h["handle"] for h in service.execute("data/list-handles")["handles"]]

    page = service.execute("data/list", {"dbHandle": handle, "collection": "training_examples",
                                         "filter": QUALITY, "limit": 10})  # fmt: skip
    expected = [r for r in rows if r["metadata"]["qualityScore"] >= 0.8]
    assert page["count"] == len(expected) > 0
    assert all(item["metadata"]["qualityScore"] >= 0.8 for item in page["items"])
    stored = {item["id"]: item for item in list_all(service, handle)}
    assert len(stored) == 1590
    item = next(iter(stored.values()))
    assert item["version"] == 1 and item["createdAt"].endswith("Z")
    assert {
        k: v for k, v in item.items() if k not in ("id", "createdAt", "updatedAt", "version")
    } in rows
    # The default database was not touched: handles do not fall back.
    assert service.execute("data/list", {"collection": "training_examples"})["count"] == 0


def test_script_runs_standalone_with_the_seed_usage(tmp_path: Path) -> None:
    seed_file(tmp_path / "in.jsonl", 300)
    output = tmp_path / "out.sqlite"
    env = {**os.environ, "DBHANDLES_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "import-jsonl-to-sqlite.py"),
         f"--input={tmp_path / 'in.jsonl'}", f"--output={output}"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    import orjson

    summary = orjson.loads(proc.stdout)
    assert summary["imported"] == 300
    # The handle is durable: another process (this one) reaches the data through it.
    with Service(settings=Settings(home=tmp_path / "home")) as svc:
        listed = svc.execute("data/list", {"dbHandle": summary["dbHandle"],
                                           "collection": "training_examples", "limit": 0})  # fmt: skip
        assert listed["count"] == 300


def test_rerun_stores_each_record_once_and_reuses_the_handle(
    service: Service, tmp_path: Path
) -> None:
    seed_file(tmp_path / "in.jsonl", 500)
    argv = [f"--input={tmp_path / 'in.jsonl'}", f"--output={tmp_path / 'out.sqlite'}", "--quiet",
            "--batch-size=64"]  # fmt: skip
    _, first, _ = run_cli(import_main, argv, service)
    _, second, _ = run_cli(import_main, argv, service)
    assert (first["imported"], first["skipped"]) == (500, 0)
    assert (second["imported"], second["skipped"]) == (0, 500)
    assert second["dbHandle"] == first["dbHandle"]
    assert len(table_rows(tmp_path / "out.sqlite")) == 500


def test_duplicate_lines_are_stored_once(service: Service, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [{"a": 1, "b": [1, 2]}, {"b": [1, 2], "a": 1}, {"a": 2}],
                raw_lines=[b'{ "a" : 2 }\n'])  # fmt: skip
    _, summary, _ = run_cli(import_main, [f"--input={tmp_path / 'in.jsonl'}",
                                          f"--output={tmp_path / 'o.sqlite'}", "--quiet"], service)  # fmt: skip
    assert (summary["imported"], summary["skipped"]) == (2, 2)
    ids = sorted(row[0] for row in table_rows(tmp_path / "o.sqlite"))
    assert ids == sorted([content_id({"a": 1, "b": [1, 2]}), content_id({"a": 2})])


def test_gz_input_gives_the_same_records_as_plain(service: Service, tmp_path: Path) -> None:
    rows = seed_file(tmp_path / "plain.jsonl", 400)
    write_jsonl(tmp_path / "packed.jsonl.gz", rows)
    _, plain, _ = run_cli(import_main, [f"--input={tmp_path / 'plain.jsonl'}",
                                        f"--output={tmp_path / 'a.sqlite'}", "--quiet"], service)  # fmt: skip
    _, packed, _ = run_cli(import_main, [f"--input={tmp_path / 'packed.jsonl.gz'}",
                                         f"--output={tmp_path / 'b.sqlite'}", "--quiet"], service)  # fmt: skip
    assert plain["imported"] == packed["imported"] == 400
    a = {(r[0], r[1]) for r in table_rows(tmp_path / "a.sqlite")}
    b = {(r[0], r[1]) for r in table_rows(tmp_path / "b.sqlite")}
    assert a == b


def test_id_field_takes_ids_from_a_dotted_path(service: Service, tmp_path: Path) -> None:
    rows = seed_file(tmp_path / "in.jsonl", 50)
    _, summary, _ = run_cli(import_main, [f"--input={tmp_path / 'in.jsonl'}", "--quiet",
                                          f"--output={tmp_path / 'o.sqlite'}",
                                          "--id-field=metadata.git.hash"], service)  # fmt: skip
    assert summary["imported"] == 50
    stored = {r[0] for r in table_rows(tmp_path / "o.sqlite")}
    assert stored == {r["metadata"]["git"]["hash"] for r in rows}


def test_integer_id_field_becomes_a_string_id(service: Service, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [{"n": 7, "x": "a"}, {"n": 8, "x": "b"}])
    _, summary, _ = run_cli(import_main, [f"--input={tmp_path / 'in.jsonl'}", "--quiet",
                                          f"--output={tmp_path / 'o.sqlite'}", "--id-field=n"], service)  # fmt: skip
    assert summary["imported"] == 2
    assert sorted(r[0] for r in table_rows(tmp_path / "o.sqlite")) == ["7", "8"]


def test_a_line_id_is_the_record_id(service: Service, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [{"id": "test-001", "text": "example", "label": "positive"}])
    _, summary, _ = run_cli(import_main, [f"--input={tmp_path / 'in.jsonl'}", "--quiet",
                                          f"--output={tmp_path / 'o.sqlite'}"], service)  # fmt: skip
    read = service.execute("data/read", {"dbHandle": summary["dbHandle"], "collection": "training_examples",
                                         "id": "test-001"})  # fmt: skip
    assert read["found"] is True
    assert read["data"]["text"] == "example" and read["data"]["version"] == 1


def test_data_import_command_publishes_progress_and_done(service: Service, tmp_path: Path) -> None:
    seed_file(tmp_path / "in.jsonl", 300)
    events: list[Event] = []
    with service.events.subscribe("import:*", events.append):
        result = service.execute("data/import", {"input": str(tmp_path / "in.jsonl"),
                                                 "output": str(tmp_path / "o.sqlite"), "batchSize": 100})  # fmt: skip
    assert result["success"] is True and result["imported"] == 300
    names = [e.name for e in events]
    assert names[0] == "import:progress" and names[-1] == "import:done"
    progress = events[0].payload
    for key in ("dbHandle", "imported", "skipped", "failed", "bytesRead", "totalBytes"):
        assert key in progress
    assert events[-1].payload["dbHandle"] == result["dbHandle"]
    assert events[-1].payload["imported"] == 300


def test_data_import_into_an_open_handle_of_any_adapter(
    service: Service, db: str, adapter_name: str, tmp_path: Path
) -> None:
    rows = seed_file(tmp_path / "in.jsonl", 120)
    result = service.execute("data/import", {"input": str(tmp_path / "in.jsonl"), "dbHandle": db,
                                             "batchSize": 50})  # fmt: skip
    assert (result["imported"], result["dbHandle"]) == (120, db)
    listed = service.execute("data/list", {"dbHandle": db, "collection": "training_examples",
                                           "filter": QUALITY, "limit": 0})  # fmt: skip
    assert listed["count"] == sum(1 for r in rows if r["metadata"]["qualityScore"] >= 0.8)
    again = service.execute("data/import", {"input": str(tmp_path / "in.jsonl"), "dbHandle": db})
    assert (again["imported"], again["skipped"]) == (0, 120)


def test_rerun_after_the_output_was_deleted_imports_into_a_new_file(
    service: Service, tmp_path: Path
) -> None:
    """The first run's handle points at a file that is gone: the re-run must not reuse it (nor its
    connection to the deleted file), but create the file again."""
    source = write_jsonl(tmp_path / "in.jsonl", [{"n": i} for i in range(50)])
    out = tmp_path / "out.sqlite"
    first = service.execute("data/import", {"input": str(source), "output": str(out)})
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{out}{suffix}").unlink(missing_ok=True)
    second = service.execute("data/import", {"input": str(source), "output": str(out)})
    assert (second["imported"], second["skipped"]) == (50, 0)
    assert second["dbHandle"] != first["dbHandle"]
    assert len(table_rows(out)) == 50
