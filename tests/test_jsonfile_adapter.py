"""The json adapter: atomic whole-file writes, cross-process visibility, and refusal of foreign files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dbhandles import NotADatabase, Service, StorageError


def open_json(service: Service, path: Path, mode: str = "create") -> str:
    return str(
        service.execute(
            "data/open", {"adapter": "json", "config": {"path": str(path), "mode": mode}}
        )["dbHandle"]
    )


def test_file_format_is_plain_json(service: Service, tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    handle = open_json(service, path)
    service.execute(
        "data/create", {"dbHandle": handle, "collection": "notes", "id": "a", "data": {"t": "x"}}
    )
    doc = json.loads(path.read_text())
    assert doc["format"] == "dbhandles-json"
    assert doc["collections"]["notes"][0]["t"] == "x"


def test_failed_write_leaves_old_file_and_rolls_back(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "db.json"
    handle = open_json(service, path)
    service.execute(
        "data/create", {"dbHandle": handle, "collection": "notes", "id": "a", "data": {}}
    )
    before = path.read_bytes()

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(StorageError, match="No space"):
        service.execute(
            "data/create", {"dbHandle": handle, "collection": "notes", "id": "b", "data": {}}
        )
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert (
        service.execute("data/read", {"dbHandle": handle, "collection": "notes", "id": "b"})[
            "found"
        ]
        is False
    )
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_kill_during_writes_never_leaves_a_torn_file(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    script = textwrap.dedent(
        f"""
        from dbhandles import Service
        with Service({str(tmp_path / "home")!r}) as s:
            h = s.execute("data/open", {{"adapter": "json", "config": {{"path": {str(path)!r}, "mode": "create"}}}})["dbHandle"]
            i = 0
            while True:
                s.execute("data/create", {{"dbHandle": h, "collection": "c", "data": {{"i": i, "pad": "x" * 5000}}}})
                i += 1
        """
    )
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", script])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not path.exists() or path.stat().st_size < 200_000):
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        doc = json.loads(path.read_text())
        assert doc["format"] == "dbhandles-json"


def test_writes_from_another_process_are_seen(service: Service, tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    handle = open_json(service, path)
    service.execute(
        "data/create", {"dbHandle": handle, "collection": "c", "id": "mine", "data": {}}
    )
    script = textwrap.dedent(
        f"""
        from dbhandles import Service
        with Service({str(tmp_path / "other-home")!r}) as s:
            h = s.execute("data/open", {{"adapter": "json", "config": {{"path": {str(path)!r}}}}})["dbHandle"]
            s.execute("data/create", {{"dbHandle": h, "collection": "c", "id": "theirs", "data": {{}}}})
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    listed = service.execute("data/list", {"dbHandle": handle, "collection": "c"})
    assert sorted(i["id"] for i in listed["items"]) == ["mine", "theirs"]


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[1, 2]",
        '{"format": "other"}',
        '{"format": "dbhandles-json", "collections": {"c": [1]}}',
    ],
)
def test_foreign_json_files_are_refused(service: Service, tmp_path: Path, content: str) -> None:
    path = tmp_path / "foreign.json"
    path.write_text(content)
    with pytest.raises(NotADatabase):
        open_json(service, path, mode="readwrite")
    assert path.read_text() == content
