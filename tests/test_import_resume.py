"""Killed half-way (SIGKILL), then run again: every record stored once, the database intact."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from dbhandles.importer.ids import content_id
from tests.test_import_common import REPO, seed_file

SCRIPT = REPO / "scripts" / "import-jsonl-to-sqlite.py"
RECORDS = 50_000


def stored(db: Path, mode: str = "ro") -> int:
    """Rows committed so far, read by a separate connection (0 before the table exists).

    While the import runs, ``ro`` stays out of its way. After a kill, the file may have a hot journal
    (the batch in flight), which only a connection that can write rolls back: use ``rw`` then.
    """
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode={mode}", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM training_examples").fetchone()[0])
    except sqlite3.OperationalError:  # the table is not created yet
        return 0
    finally:
        conn.close()


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux ``/proc``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid ...: comm may hold spaces, so split after its closing paren.
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.parametrize("parser", ["inline", "process"])
def test_sigkill_mid_import_then_rerun_ends_with_every_record_once(
    tmp_path: Path, parser: str
) -> None:
    rows = seed_file(tmp_path / "in.jsonl", RECORDS)
    out = tmp_path / "prepared.sqlite"
    env = {**os.environ, "DBHANDLES_HOME": str(tmp_path / "home")}
    argv = [sys.executable, str(SCRIPT), f"--input={tmp_path / 'in.jsonl'}", f"--output={out}",
            "--batch-size=200", "--quiet", f"--parser={parser}"]  # fmt: skip

    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    helpers: list[int] = []
    try:
        # Kill as soon as a few batches are committed: well before the end of 250 batches.
        while stored(out) < 600 and proc.poll() is None:
            time.sleep(0.005)
        helpers = children(proc.pid)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the import ended before it could be killed"
    assert len(helpers) == (1 if parser == "process" else 0)
    # The parser process notices the writer is gone (its pipe breaks) and exits on its own.
    deadline = time.monotonic() + 10
    while not all(gone(pid) for pid in helpers) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert all(gone(pid) for pid in helpers), "the parser process outlived the killed import"
    at_kill = stored(out, mode="rw")
    assert 600 <= at_kill < RECORDS
    assert at_kill % 200 == 0, "a batch is committed whole or not at all"

    rerun = subprocess.run(argv, env=env, capture_output=True, timeout=240, check=False)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    summary = orjson.loads(rerun.stdout)
    assert summary["imported"] + summary["skipped"] == RECORDS
    assert summary["skipped"] >= at_kill

    conn = sqlite3.connect(f"file:{out}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        count, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT id) FROM training_examples"
        ).fetchone()
        ids = {row[0] for row in conn.execute("SELECT id FROM training_examples")}
    finally:
        conn.close()
    expected = {content_id(r) for r in rows}
    assert count == distinct == len(expected)
    assert ids == expected


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="needs SIGINT")
def test_ctrl_c_says_what_was_kept_and_the_rerun_finishes(tmp_path: Path) -> None:
    seed_file(tmp_path / "in.jsonl", RECORDS)
    out = tmp_path / "prepared.sqlite"
    env = {**os.environ, "DBHANDLES_HOME": str(tmp_path / "home")}
    argv = [sys.executable, str(SCRIPT), f"--input={tmp_path / 'in.jsonl'}", f"--output={out}",
            "--batch-size=200", "--quiet", "--parser=process"]  # fmt: skip
    # A session of its own, so Ctrl-C can go to the whole group as a terminal sends it.
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    try:
        while stored(out) < 600 and proc.poll() is None:
            time.sleep(0.005)
        helpers = children(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stdout + stderr
    assert b"Traceback" not in stderr
    summary = orjson.loads(stdout)
    assert summary["code"] == "interrupted"
    assert "data/import interrupted: the database holds exactly the" in summary["error"]
    assert summary["imported"] == stored(out, mode="rw") >= 600
    assert all(gone(pid) for pid in helpers)

    rerun = subprocess.run(argv, env=env, capture_output=True, timeout=240, check=False)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert stored(out, mode="rw") == RECORDS
