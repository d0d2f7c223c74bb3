"""``./jtag import-jsonl`` and ``./jtag export-jsonl`` as a user types them, in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def jtag(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DBHANDLES_HOME": str(home)}
    env.pop("JTAG_URL", None)
    return subprocess.run(
        [str(REPO / "jtag"), *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.mark.parametrize("parser", ["auto", "process"])
def test_import_then_list_then_export_round_trip(tmp_path: Path, parser: str) -> None:
    source = tmp_path / "in.jsonl"
    lines = [
        {"messages": [{"role": "user", "content": f"q{i}"}], "metadata": {"qualityScore": i / 10}}
        for i in range(10)
    ]
    source.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    db = tmp_path / "out.sqlite"
    done = jtag(tmp_path / "home", "import-jsonl", f"--input={source}", f"--output={db}", "--quiet",
                f"--parser={parser}")  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["imported"] == 10 and summary["failed"] == 0
    listed = jtag(
        tmp_path / "home", "data/list", f"--dbHandle={summary['dbHandle']}", "--collection=training_examples",
        '--filter={"metadata.qualityScore":{"$gte":0.8}}',
    )  # fmt: skip
    assert listed.returncode == 0, listed.stdout
    assert json.loads(listed.stdout)["count"] == 2
    out = tmp_path / "back.jsonl"
    exported = jtag(
        tmp_path / "home", "export-jsonl", f"--input={db}", f"--output={out}", "--quiet"
    )
    assert exported.returncode == 0, exported.stdout + exported.stderr
    assert len(out.read_text().splitlines()) == 10


def test_bad_input_is_an_envelope_and_exit_1(tmp_path: Path) -> None:
    missing = jtag(
        tmp_path / "home",
        "import-jsonl",
        f"--input={tmp_path / 'nope.jsonl'}",
        f"--output={tmp_path / 'o.sqlite'}",
    )
    assert missing.returncode == 1
    envelope = json.loads(missing.stdout)
    assert envelope["success"] is False and envelope["code"]
    assert "Traceback" not in missing.stdout + missing.stderr
