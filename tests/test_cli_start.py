"""``jtag`` starts light: help answers from the generated texts without importing the database stack.

Each case runs in a fresh interpreter and looks at ``sys.modules`` afterwards (nothing is timed here;
benchmarks/cli_start.py measures the start-up against sqlite-utils).
"""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from dbhandles.cli.help import command_help, overview
from dbhandles.cli.help_text import COMMAND_NAMES, HELP, OVERVIEW
from dbhandles.commands import builtin_commands

#: What help must never load: the drivers, the server stack, and the command models behind them.
HEAVY = (
    "sqlite3",
    "psycopg",
    "starlette",
    "uvicorn",
    "pydantic",
    "dbhandles.service",
    "dbhandles.commands",
    "dbhandles.registry",
    "dbhandles.adapters",
)

_PROBE = """
import contextlib, io, sys
import orjson
from dbhandles.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    code = main(sys.argv[1:])
print(orjson.dumps({"code": code, "text": out.getvalue(),
                    "modules": sorted(sys.modules)}).decode())
"""


def _run_cli(*args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], capture_output=True, check=True, timeout=60
    )
    result: dict[str, object] = orjson.loads(done.stdout)
    return result


@pytest.mark.parametrize(
    "args",
    [
        ["help"],
        ["help", "data/list"],
        ["help", "token", "create"],
        ["help", "serve"],
        ["help", "import-jsonl"],
        ["data/read", "--help"],
    ],
)
def test_help_does_not_import_the_database_stack(args: list[str]) -> None:
    result = _run_cli(*args)
    assert result["code"] == 0
    assert result["text"]
    modules = result["modules"]
    assert isinstance(modules, list)
    loaded = [m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY]
    loaded += [m for m in modules if any(m.startswith(h + ".") for h in HEAVY)]
    assert loaded == [], f"jtag {' '.join(args)} imported {sorted(set(loaded))}"


def test_generated_help_is_the_help_of_the_params_models() -> None:
    commands = builtin_commands()
    assert set(commands) == COMMAND_NAMES
    assert overview() == OVERVIEW
    for name in [*commands, "serve"]:
        assert HELP[name] == command_help(name), f"{name}: run python scripts/generate-docs.py"


def test_help_on_an_unknown_command_is_unknown_command() -> None:
    result = _run_cli("help", "no/such-command")
    assert result["code"] == 1
    assert "unknown_command" in str(result["text"])
