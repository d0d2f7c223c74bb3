"""What keeps an import fast without changing what it stores: what it loads, how far its parser runs
ahead (issue 17; the speed itself is measured by benchmarks/import_jsonl.py, never here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from dbhandles import Context, Service
from dbhandles.errors import DbHandlesError
from dbhandles.importer import parallel
from dbhandles.importer.reader import ChunkReader
from tests.test_import_common import write_jsonl

_LOCAL_IMPORT = """
import sys
import orjson
from dbhandles import Service
with Service(home=sys.argv[1]) as svc:
    result = svc.execute("data/import", {"input": sys.argv[2], "output": sys.argv[3]})
print(orjson.dumps({"imported": result["imported"], "modules": sorted(sys.modules)}).decode())
"""


def test_a_local_import_loads_no_adapter_it_does_not_write_with(tmp_path: Path) -> None:
    # The input check of an administrator's file with one name decides nothing by adapter, so it
    # does not import every adapter to ask each whether the file is its database (psycopg alone
    # costs ~0.15 s of CPU per import).
    source = write_jsonl(tmp_path / "in.jsonl", [{"n": i} for i in range(10)])
    done = subprocess.run(
        [sys.executable, "-c", _LOCAL_IMPORT, str(tmp_path / "home"), str(source),
         str(tmp_path / "out.sqlite")],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    found = orjson.loads(done.stdout)
    assert found["imported"] == 10
    loaded = [
        m for m in found["modules"] if m.startswith(("psycopg", "dbhandles.adapters.postgres"))
    ]
    assert loaded == []


@pytest.mark.parametrize("context", [Context(), Context(actor="root", trusted_local=False)])
def test_an_administrator_still_never_reads_a_database_by_a_second_name(
    service: Service, tmp_path: Path, context: Context
) -> None:
    # The shortcut above is only for files with one name: a hard link to a database is refused.
    database = tmp_path / "db.sqlite"
    service.execute("data/open", {"adapter": "sqlite", "config": {"path": str(database),
                                                                  "mode": "create"}})  # fmt: skip
    link = tmp_path / "linked.jsonl"
    link.hardlink_to(database)
    params = {"input": str(link), "output": str(tmp_path / "o.sqlite")}
    with pytest.raises(DbHandlesError, match="hard links"):
        service.execute("data/import", params, context=context)
    assert not (tmp_path / "o.sqlite").exists()


@pytest.mark.skipif(sys.platform != "linux", reason="pipe sizes are set on Linux only")
def test_the_parser_process_may_write_a_mebibyte_of_frames_ahead(tmp_path: Path) -> None:
    import fcntl

    if int(Path("/proc/sys/fs/pipe-max-size").read_text()) < parallel.PIPE_BYTES:
        pytest.skip("this system caps pipes below PIPE_BYTES (the pipe keeps its size)")
    source = write_jsonl(tmp_path / "in.jsonl", [{"n": i} for i in range(100)])
    with ChunkReader(source) as reader:
        process = parallel._ParserProcess(reader, None)
        try:
            assert process._proc is not None and process._proc.stdout is not None
            size = fcntl.fcntl(process._proc.stdout.fileno(), fcntl.F_GETPIPE_SZ)
            chunk = process.next(next(iter(reader))[1])
        finally:
            process.close()
    assert size >= parallel.PIPE_BYTES
    assert chunk is not None and chunk.plain and len(chunk.items) == 100
