"""The parser process: used, reaped, equivalent to parsing inline, and replaced when it fails."""

from __future__ import annotations

import logging
import sqlite3
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import InvalidParams, Service
from dbhandles.importer import parallel
from tests.test_import_common import table_rows, write_jsonl

STAMP = "2025-01-01T00:00:00.000Z"


def mixed_lines(count: int) -> list[bytes]:
    """Plain records, duplicates, reserved fields, blank and bad lines, spread over many chunks."""
    lines: list[bytes] = []
    for i in range(count):
        kind = i % 7
        if kind == 3:
            lines.append(orjson.dumps({"id": f"r{i}", "createdAt": STAMP, "version": 2, "n": i}))
        elif kind == 5:
            lines.append(b"   " if i % 2 else b"{broken")
        elif kind == 6:
            lines.append(b'{"dup": true, "text": "same"}')
        else:
            lines.append(orjson.dumps({"n": i, "text": "x" * (i % 300), "nested": {"i": i}}))
    return [line + b"\n" for line in lines]


def run_import(
    service: Service, source: Path, out: Path, parser: str, **extra: Any
) -> dict[str, Any]:
    params = {"input": str(source), "output": str(out), "parser": parser, "onError": "skip",
              "batchSize": 997, **extra}  # fmt: skip
    return service.execute("data/import", params)


def test_process_and_inline_store_the_same_rows_and_rejects(
    service: Service, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    write_jsonl(source, [], raw_lines=mixed_lines(20_000))
    results = {}
    for parser in ("inline", "process"):
        out = tmp_path / f"{parser}.sqlite"
        result = run_import(service, source, out, parser, rejects=str(tmp_path / f"{parser}.rej"))
        # Rows without timestamps get the import time: compare everything else.
        rows = sorted(
            (r[0], r[1], r[4], r[2] if r[0].startswith("r") else None) for r in table_rows(out)
        )
        results[parser] = (rows, (tmp_path / f"{parser}.rej").read_bytes())
        assert result["imported"] > 10_000 and result["failed"] > 0
        assert result["skipped"] == 20_000 // 7 - 1  # the duplicate line, stored once
    assert results["inline"] == results["process"]


def test_the_parser_process_is_used_and_reaped(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[parallel._ParserProcess] = []
    original = parallel._ParserProcess.__init__

    def spy(self: parallel._ParserProcess, *args: Any) -> None:
        original(self, *args)
        started.append(self)

    monkeypatch.setattr(parallel._ParserProcess, "__init__", spy)
    source = write_jsonl(tmp_path / "in.jsonl.gz", [{"n": i} for i in range(5000)])
    result = run_import(service, source, tmp_path / "o.sqlite", "process")
    assert result["imported"] == 5000
    assert len(started) == 1
    assert started[0]._proc is None, "the process is reaped when the import ends"


def test_auto_uses_a_process_only_for_big_inputs() -> None:
    assert not parallel.use_process("auto", parallel.PROCESS_THRESHOLD - 1)
    assert parallel.use_process("process", 0)
    assert not parallel.use_process("inline", 1 << 40)


def test_a_parser_that_stops_early_is_replaced_by_inline_parsing(
    service: Service,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(parallel, "BOOT", "import sys; sys.stderr.write('boom'); sys.exit(7)")
    source = write_jsonl(tmp_path / "in.jsonl", [{"n": i} for i in range(3000)])
    with caplog.at_level(logging.WARNING, logger="dbhandles.importer"):
        result = run_import(service, source, tmp_path / "o.sqlite", "process")
    assert result["imported"] == 3000 and len(table_rows(tmp_path / "o.sqlite")) == 3000
    assert "parser process stopped early (exit status 7: boom)" in caplog.text


def test_a_parser_that_cannot_start_is_replaced_by_inline_parsing(
    service: Service,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    source = write_jsonl(tmp_path / "in.jsonl", [{"n": i} for i in range(100)])
    with caplog.at_level(logging.WARNING, logger="dbhandles.importer"):
        result = run_import(service, source, tmp_path / "o.sqlite", "process")
    assert result["imported"] == 100
    assert "cannot start the parser process" in caplog.text


def test_frames_for_other_lines_mean_the_file_changed(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A parser that saw a different file: one line of one byte.
    fake = ("import sys, struct, json; b = json.dumps([1, 1, True, ['x']]).encode(); "
            "sys.stdout.buffer.write(struct.pack('<II', len(b), 0) + b)")  # fmt: skip
    monkeypatch.setattr(parallel, "BOOT", fake)
    source = write_jsonl(tmp_path / "in.jsonl", [{"n": i} for i in range(10)])
    with pytest.raises(InvalidParams, match="the file changed while it was being imported") as info:
        run_import(service, source, tmp_path / "o.sqlite", "process")
    assert info.value.field == "input"
    with closing(sqlite3.connect(tmp_path / "o.sqlite")) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master").fetchall()
    assert ("training_examples",) not in tables, "nothing was written"


def test_a_garbled_frame_is_replaced_by_inline_parsing(
    service: Service,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = "import sys, struct; sys.stdout.buffer.write(struct.pack('<II', 5, 0) + b'[1,2,')"
    monkeypatch.setattr(parallel, "BOOT", fake)
    source = write_jsonl(tmp_path / "in.jsonl", [{"n": i} for i in range(10)])
    with caplog.at_level(logging.WARNING, logger="dbhandles.importer"):
        result = run_import(service, source, tmp_path / "o.sqlite", "process")
    assert result["imported"] == 10
    assert "parser process stopped early" in caplog.text
