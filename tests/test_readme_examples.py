"""README.md's examples, run as a reader runs them: every runnable block in order, twice in a row, on one
home, without an error.

The README names the user's own paths (``/tmp/training.sqlite``, ``/tmp/dbh``, ``~/.dbhandles``): the
test moves every one of them into its own ``tmp_path`` before running anything, so it never touches them.
A ``data/open`` prints a new handle on every run: the README's literal handle id in later commands is
replaced by the one the run actually got. A command the README shows failing on purpose ends with
``; echo "exit $?"`` and its output ends with that exit status: it must fail exactly like that.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tests.servers import REPO

README = REPO / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
DOCUMENTED_FAILURE = '; echo "exit $?"'

#: Blocks that cannot run here, each found by a text only it contains, and why. Every other block runs.
SKIPPED = {
    "make serve": "the make targets: a long-running server, and the whole test suite itself",
    "./jtag serve": "needs a running `jtag serve` (and curl) on port 7878",
    "--input=continuum-git.jsonl": "imports continuum-git.jsonl, a file the README does not create",
    "--dbHandle=<dbHandle>": "queries the handle printed by that import",
}


@dataclass
class Block:
    lang: str
    text: str
    line: int  # where the block starts in README.md

    def skip_reason(self) -> str | None:
        reasons = [reason for key, reason in SKIPPED.items() if key in self.text]
        assert len(reasons) <= 1, f"README.md:{self.line} matches several SKIPPED entries"
        return reasons[0] if reasons else None


@dataclass
class Step:
    """One ``$ ./jtag ...`` line of a console block (continuations joined) and what the README shows
    it printing."""

    command: str
    output: str
    line: int

    @property
    def documented_exit(self) -> int:
        if not self.command.endswith(DOCUMENTED_FAILURE):
            return 0
        last = self.output.rstrip().splitlines()[-1]
        match = re.fullmatch(r"exit (\d+)", last)
        assert match, f"README.md:{self.line}: the output should end with the exit status"
        return int(match.group(1))

    @property
    def documented_envelope(self) -> dict[str, Any] | None:
        text = self.output
        if self.command.endswith(DOCUMENTED_FAILURE):
            text = text.rstrip().rsplit("\n", 1)[0]
        if not text.lstrip().startswith("{"):
            return None  # e.g. --format=table
        value = orjson.loads(text)
        assert isinstance(value, dict)
        return value


def readme_blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    return [
        Block(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1)
        for m in FENCE.finditer(text)
    ]


def console_steps(block: Block) -> list[Step]:
    steps: list[Step] = []
    lines = block.text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.startswith("$ "):
            assert steps, f"README.md:{block.line}: output before the first command"
            steps[-1].output += line + "\n"
            continue
        command, start = line[2:], block.line + i
        while command.endswith("\\"):
            command = command[:-1].rstrip() + " " + lines[i].strip()
            i += 1
        assert command.startswith("./jtag "), f"README.md:{start}: not a ./jtag command"
        steps.append(Step(command, "", start))
    return steps


def runnable_blocks() -> list[Block]:
    """The blocks to run, in README order; every block is either runnable or in SKIPPED."""
    blocks = readme_blocks()
    for key in SKIPPED:
        assert sum(key in b.text for b in blocks) == 1, f"SKIPPED[{key!r}] matches no single block"
    runnable = [b for b in blocks if b.skip_reason() is None]
    for block in runnable:
        assert block.lang in ("console", "python"), (
            f"README.md:{block.line}: a ```{block.lang} block: run it here or add it to SKIPPED"
        )
    return runnable


class Reader:
    """Runs the README's examples on one home, with the README's paths moved into ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.user_home = root / "user"
        self.home = self.user_home / ".dbhandles"
        self.tmp = root / "root-tmp"  # stands for /tmp
        self.user_home.mkdir(parents=True)
        self.tmp.mkdir()
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("JTAG_", "DBHANDLES_")) and k != "HOME"
        }
        self.env.update(HOME=str(self.user_home), DBHANDLES_HOME=str(self.home))
        self.handles: dict[str, str] = {}  # the README's handle id -> the one this run got

    def rewrite(self, text: str) -> str:
        text = re.sub(r"(?<![\w./-])/tmp/", f"{self.tmp}/", text)
        text = text.replace("~/.dbhandles", str(self.home))
        for readme_handle, handle in self.handles.items():
            text = text.replace(readme_handle, handle)
        assert "/tmp/" not in text.replace(str(self.root), ""), text
        return text

    def run(self, argv: list[str], where: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(argv, cwd=REPO, env=self.env, capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip
        assert "Traceback" not in proc.stdout + proc.stderr, f"{where}:\n{proc.stderr}"
        assert not (self.home / "server.json").exists(), "no server may be running"
        return proc

    def console(self, block: Block) -> None:
        for step in console_steps(block):
            where = f"README.md:{step.line} `{step.command}`"
            proc = self.run(["bash", "-c", self.rewrite(step.command)], where)
            documented = step.documented_envelope
            printed = proc.stdout
            if step.command.endswith(DOCUMENTED_FAILURE):
                assert proc.returncode == 0, f"{where}: {proc.stderr}"  # the echo's own status
                printed, _, status = printed.rstrip().rpartition("\n")
                assert status == f"exit {step.documented_exit}", f"{where}: {proc.stdout}"
            else:
                assert proc.returncode == 0, f"{where}:\n{proc.stdout}{proc.stderr}"
            if documented is None:
                assert '"success": false' not in printed, f"{where}: {printed}"
                continue
            envelope = orjson.loads(printed)
            if step.documented_exit:
                assert envelope["success"] is False, f"{where}: {envelope}"
                assert envelope["code"] == documented["code"], f"{where}: {envelope}"
            else:
                assert envelope["success"] is True, f"{where}: {envelope}"
            if step.command.split()[1] == "data/open":
                self.handles[documented["dbHandle"]] = envelope["dbHandle"]

    def python(self, block: Block) -> None:
        where = f"README.md:{block.line} (python)"
        proc = self.run([sys.executable, "-c", self.rewrite(block.text)], where)
        assert proc.returncode == 0, f"{where}:\n{proc.stdout}{proc.stderr}"
        if "except HandleNotFound" in block.text:
            assert "handle_not_found" in proc.stdout, f"{where}: {proc.stdout}"


def test_every_block_is_run_or_skipped_for_a_reason() -> None:
    runnable = runnable_blocks()
    assert [b.lang for b in runnable] == ["console", "python"]
    tour = console_steps(runnable[0])
    assert [s.command.split()[1] for s in tour] == [
        "data/open", "data/list-handles", "data/create", "data/list", "data/delete", "data/close",
        "data/close",
    ]  # fmt: skip
    # The seed's commands stay recognisable: its path, collection and id.
    assert '"path":"/tmp/training.sqlite"' in tour[0].command
    assert '--collection="training_examples"' in tour[2].command
    assert '--id="test-001"' in tour[2].command
    assert [s.documented_exit for s in tour] == [0, 0, 0, 0, 0, 0, 1]


def test_readme_examples_run_in_order_twice(tmp_path: Path) -> None:
    blocks = runnable_blocks()
    reader = Reader(tmp_path)
    for _ in range(2):
        for block in blocks:
            if block.lang == "console":
                reader.console(block)
            else:
                reader.python(block)
    # The README's paths went to the test's folder, not to the user's.
    assert (reader.tmp / "training.sqlite").is_file()
    assert (reader.tmp / "dbh").is_dir()
    assert (reader.home / "default.sqlite").is_file()
