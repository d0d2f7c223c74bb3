"""One server per home (``cli/home_claim.py``): a second ``jtag serve`` on a home that a live server
holds is refused with its pid and URL, one or several workers alike; a stale ``server.json`` (its
server is dead) is replaced; ``server.json`` stays the running server's until it stops."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from dbhandles.cli.home_claim import claim_home
from dbhandles.errors import InvalidParams
from tests.servers import ServerProcess, envelope_of, free_port, jtag_env, run_jtag


def _state(home: Path) -> dict[str, object]:
    state: dict[str, object] = orjson.loads((home / "server.json").read_bytes())
    return state


@pytest.mark.parametrize(("first", "second"), [([], []), (["--workers=2"], ["--workers=2"]),
                                               ([], ["--workers=2"])])  # fmt: skip
def test_a_second_server_on_the_same_home_is_refused(
    tmp_path: Path, first: list[str], second: list[str]
) -> None:
    home = tmp_path / "home"
    with ServerProcess(home, None, *first) as server:
        assert server.proc is not None
        before = _state(home)
        assert before["pid"] == server.proc.pid
        proc = run_jtag("serve", f"--port={free_port()}", *second, env=jtag_env(home))
        envelope = envelope_of(proc)
        assert proc.returncode == 1
        assert envelope["code"] == "invalid_params" and envelope["field"] == "home", envelope
        assert f"pid {server.proc.pid} on {server.url}" in envelope["error"], envelope
        # The running server keeps its server.json, and jtag still reaches it.
        assert _state(home) == before
        listed = run_jtag("data/list-handles", env=jtag_env(home))
        assert envelope_of(listed)["success"] is True
        assert server.stop() == 0, server.output
    assert not (home / "server.json").exists()


def test_a_stale_server_json_is_replaced(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = {"url": f"http://127.0.0.1:{free_port()}", "pid": int(dead.stdout), "home": str(home)}
    (home / "server.json").write_bytes(orjson.dumps(stale))
    with ServerProcess(home) as server:
        assert server.proc is not None
        assert _state(home)["pid"] == server.proc.pid and _state(home)["url"] == server.url
        assert server.stop() == 0, server.output
    assert not (home / "server.json").exists()


def test_the_claim_is_held_until_released(tmp_path: Path) -> None:
    home = tmp_path / "home"
    claim = claim_home(home)
    try:
        # flock belongs to the open file: a second claim, even from this process, is refused.
        with pytest.raises(InvalidParams, match="another server runs on the home") as refused:
            claim_home(home)
        assert refused.value.field == "home"
    finally:
        claim.release()
    claim_home(home).release()  # free again
    claim.release()  # idempotent
