"""The seed's "Testing Commands" block, run verbatim with ``./jtag``: in-process and against ``jtag serve``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.servers import REPO, ServerProcess, envelope_of, jtag_env, run_jtag

#: Copied verbatim from the seed (000_c68b71da6b4b4342.txt, "Testing Commands"); only <UUID> is filled in,
#: and the seed's database path is moved into the test's own folder (see ``seed_commands``).
SEED_BLOCK = """\
# Open training database
./jtag data/open --adapter=sqlite --config='{"path":"/tmp/training.sqlite","mode":"create"}'

# List open handles
./jtag data/list-handles

# Create record in training DB (using returned handle)
./jtag data/create --dbHandle="<UUID>" --collection="training_examples" \\
  --data='{"text":"example","label":"positive"}' --id="test-001"

# List from default database (backward compatible)
./jtag data/list --collection="users"

# Close handle
./jtag data/close --dbHandle="<UUID>"
"""
#: The path the seed names. It is the user's own data (the README's tour uses it): tests never touch it.
SEED_PATH = "/tmp/training.sqlite"


def seed_commands(database: Path) -> list[str]:
    """The block's shell commands, continuation lines joined, comments dropped, and the seed's
    ``/tmp/training.sqlite`` replaced by ``database`` (a path in the test's own tmp_path)."""
    assert SEED_BLOCK.count(SEED_PATH) == 1
    joined = SEED_BLOCK.replace("\\\n", " ").replace(SEED_PATH, str(database))
    commands = [
        line.strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")
    ]
    assert not any(SEED_PATH in command for command in commands)
    return commands


def sh(command: str, env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(["bash", "-c", command], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    return proc.returncode, envelope_of(proc)


def run_seed_flow(env: dict[str, str], database: Path) -> dict[str, Any]:
    """Run the block on ``database`` (which must not exist yet); check each step as the issue states
    it. Returns what each step printed."""
    assert not database.exists()
    commands = seed_commands(database)
    assert [c.split()[1] for c in commands] == [
        "data/open", "data/list-handles", "data/create", "data/list", "data/close",
    ]  # fmt: skip
    out: dict[str, Any] = {}
    code, out["open"] = sh(commands[0], env)
    assert code == 0, out["open"]
    handle = out["open"]["dbHandle"]
    assert len(handle) == 36 and out["open"]["config"]["path"] == str(database)

    code, out["handles"] = sh(commands[1], env)
    assert code == 0
    assert handle in [h["handle"] for h in out["handles"]["handles"]]
    assert out["handles"]["handles"][0]["isDefault"] is True

    code, out["create"] = sh(commands[2].replace("<UUID>", handle), env)
    assert code == 0, out["create"]
    assert (out["create"]["dbHandle"], out["create"]["id"]) == (handle, "test-001")

    code, out["list"] = sh(commands[3], env)
    assert code == 0
    assert (out["list"]["dbHandle"], out["list"]["collection"]) == ("default", "users")

    code, out["close"] = sh(commands[4].replace("<UUID>", handle), env)
    assert (code, out["close"]["closed"]) == (0, True)

    code, out["close_default"] = sh('./jtag data/close --dbHandle="default"', env)
    assert code == 1
    assert out["close_default"]["code"] == "default_handle_protected"
    assert (
        "default" in out["close_default"]["error"]
        and "cannot" in out["close_default"]["error"].lower()
    )
    return out


def test_seed_flow_in_process(home: Path, tmp_path: Path) -> None:
    run_seed_flow(jtag_env(home), tmp_path / "training.sqlite")
    assert not (home / "server.json").exists()


@pytest.mark.needs_server
def test_seed_flow_against_jtag_serve(home: Path, tmp_path: Path) -> None:
    """`jtag serve` as a real process on a free port; the CLI finds it through <home>/server.json."""
    with ServerProcess(home) as server:
        state = orjson.loads((home / "server.json").read_bytes())
        assert state["url"] == server.url
        run_seed_flow(jtag_env(home), tmp_path / "training.sqlite")
        # Proof the commands went to the server: a memory handle lives only in the server's process.
        memory = envelope_of(
            run_jtag("data/open", "--adapter=memory", "--config={}", env=jtag_env(home))
        )["dbHandle"]
        listed = envelope_of(run_jtag("data/list-handles", env=jtag_env(home)))
        assert memory in [h["handle"] for h in listed["handles"]]
        status = server.stop()
    assert status == 0, server.output
    assert "dashboard: " + server.url in server.output
    assert not (home / "server.json").exists(), "a clean shutdown removes server.json"


@pytest.mark.needs_server
def test_seed_flow_with_jtag_url(home: Path, tmp_path: Path) -> None:
    """JTAG_URL names the server explicitly (here: a server on another home than the CLI's)."""
    with ServerProcess(home) as server:
        env = jtag_env(tmp_path / "cli-home", JTAG_URL=server.url)
        refused = envelope_of(run_jtag("data/list-handles", env=env))
        assert refused["code"] == "unauthorized", "another home's server needs its token"
        env["JTAG_TOKEN"] = server.token
        out = run_seed_flow(env, tmp_path / "training.sqlite")
        assert out["handles"]["handles"][0]["config"]["path"] == str(home / "default.sqlite")


@pytest.mark.needs_server
def test_list_handles_is_the_same_in_both_modes(home: Path, tmp_path: Path) -> None:
    env = jtag_env(home)
    config = orjson.dumps({"path": str(tmp_path / "both.sqlite"), "mode": "create"}).decode()
    opened = envelope_of(
        run_jtag("data/open", "--adapter=sqlite", f"--config={config}", "--alias=both", env=env)
    )

    def handles() -> list[tuple[Any, ...]]:
        listed = envelope_of(run_jtag("data/list-handles", env=env))["handles"]
        return [
            (h["handle"], h["adapter"], h["config"], h["isDefault"], tuple(h["aliases"]))
            for h in listed
        ]

    local = handles()
    assert opened["dbHandle"] in [h[0] for h in local]
    with ServerProcess(home):
        assert (home / "server.json").exists()
        remote = handles()
        created = envelope_of(
            run_jtag("data/create", "--dbHandle=both", "--collection=c", "--data={}", env=env)
        )
    assert remote == local
    assert handles() == local
    read = envelope_of(
        run_jtag("data/read", "--dbHandle=both", "--collection=c", created["id"], env=env)
    )
    assert read["found"] is True


def test_jtag_script_works_from_any_directory(home: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    proc = run_jtag("data/list-handles", env=jtag_env(home), cwd=elsewhere)
    assert proc.returncode == 0
    assert envelope_of(proc)["handles"][0]["handle"] == "default"
    assert os.access(REPO / "jtag", os.X_OK)


@pytest.mark.needs_server
def test_the_local_cli_uses_the_admin_token(home: Path) -> None:
    """The server requires tokens; the local CLI sends <home>/admin.token by itself, others are refused."""
    from dbhandles import Unauthorized
    from dbhandles.client import Client

    with ServerProcess(home) as server:
        assert f"#token={server.token}" in server.dashboard()
        assert "created the admin token" in server.banner()
        with Client(server.url) as anonymous, pytest.raises(Unauthorized):
            anonymous.execute("data/list-handles")
        with Client(server.url, server.token) as admin:
            assert admin.execute("data/list-handles")["success"] is True
        assert envelope_of(run_jtag("data/list-handles", env=jtag_env(home)))["success"] is True


@pytest.mark.needs_server
def test_allow_anonymous(home: Path) -> None:
    from dbhandles.client import Client

    with ServerProcess(home, None, "--allow-anonymous") as server, Client(server.url) as anonymous:
        assert "warning: --allow-anonymous" in server.banner()
        assert anonymous.execute("data/list-handles")["success"] is True
