"""Helpers shared by the importer and exporter tests (no tests here)."""

from __future__ import annotations

import gzip
import io
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson
from benchmarks._datagen import records

from dbhandles import Service
from dbhandles.importer import command as _command  # registers data/import and data/export

_ = _command

CliMain = Callable[..., int]


def write_jsonl(path: Path, rows: Iterable[Any], *, raw_lines: Sequence[bytes] = ()) -> Path:
    """Write objects as JSON lines (then ``raw_lines`` verbatim); gzip when the name ends in .gz."""
    data = b"".join(orjson.dumps(row) + b"\n" for row in rows) + b"".join(raw_lines)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def seed_file(path: Path, count: int, seed: int = 0) -> list[dict[str, Any]]:
    """A continuum-git shaped JSONL file; returns its records."""
    rows = list(records(count, seed))
    write_jsonl(path, rows)
    return rows


def run_cli(main: CliMain, argv: list[str], service: Service) -> tuple[int, dict[str, Any], str]:
    """Run ``import_main`` / ``export_main`` in-process; return (exit code, printed JSON, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, service=service, stdout=out, stderr=err)
    return code, orjson.loads(out.getvalue()), err.getvalue()


def table_rows(db: Path, table: str = "training_examples") -> list[tuple[Any, ...]]:
    """Every row of a collection table, read with a plain sqlite3 connection."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(
            f'SELECT id, data, created_at, updated_at, version FROM "{table}"'
        ).fetchall()
    finally:
        conn.close()


REPO = Path(__file__).resolve().parent.parent
