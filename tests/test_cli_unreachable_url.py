"""Issue 12: ``jtag`` pointed by ``JTAG_URL`` at a server that is not there (with a token or
without) answers ``server_unreachable`` and writes nothing: no session file, no home folder.
Every entry point is tried: a command, ``--new-session``, ``import-jsonl`` and ``export-jsonl``."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from dbhandles.cli import main
from dbhandles.cli.jsonl import export_main, import_main


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections (bound, never listening: nobody else takes it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


RUNS = {
    "command": lambda: main(["data/list-handles"]),
    "open": lambda: main(["data/open", '--config={"path":"a.sqlite","mode":"create"}']),
    "new session": lambda: main(["data/list-handles", "--new-session"]),
    "import-jsonl": lambda: import_main(["--input=in.jsonl", "--output=out.sqlite"]),
    "export-jsonl": lambda: export_main(["--input=out.sqlite", "--output=out.jsonl"]),
}


@pytest.mark.parametrize("token", [True, False], ids=["token", "no token"])
@pytest.mark.parametrize("run", sorted(RUNS))
def test_an_unreachable_server_is_told_and_nothing_is_written(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    closed_port: int,
    run: str,
    token: bool,
) -> None:
    home = tmp_path / "home"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DBHANDLES_HOME", str(home))
    monkeypatch.setenv("JTAG_URL", f"http://127.0.0.1:{closed_port}")
    monkeypatch.delenv("JTAG_SESSION_ID", raising=False)
    if token:
        monkeypatch.setenv("JTAG_TOKEN", "dbh_" + "x" * 40)
    else:
        monkeypatch.delenv("JTAG_TOKEN", raising=False)
    before = sorted(os.listdir(tmp_path))
    assert RUNS[run]() == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    envelope = orjson.loads(out)
    assert envelope["success"] is False and envelope["code"] == "server_unreachable", envelope
    assert f"127.0.0.1:{closed_port}" in envelope["error"]
    assert not home.exists()
    assert sorted(os.listdir(tmp_path)) == before


def test_a_stored_session_is_kept_as_it_was(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    closed_port: int,
) -> None:
    """A home that has a session already: ``--new-session`` against no server replaces nothing."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "cli-session").write_text("0f8fad5b-d9cb-469f-a165-70867728950e\n")
    monkeypatch.setenv("DBHANDLES_HOME", str(home))
    monkeypatch.setenv("JTAG_URL", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setenv("JTAG_TOKEN", "dbh_" + "x" * 40)
    monkeypatch.delenv("JTAG_SESSION_ID", raising=False)
    assert main(["data/list-handles", "--new-session"]) == 1
    assert orjson.loads(capsys.readouterr().out)["code"] == "server_unreachable"
    assert sorted(os.listdir(home)) == ["cli-session"]
    assert (home / "cli-session").read_text() == "0f8fad5b-d9cb-469f-a165-70867728950e\n"
