"""``jtag`` starts light: help answers from the generated texts without importing the database stack.

Each case runs in a fresh interpreter and looks at ``sys.modules`` afterwards (nothing is timed here;
benchmarks/cli_start.py measures the start-up against sqlite-utils).
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest

from dbhandles.cli import main
from dbhandles.cli.help import command_help, overview
from dbhandles.cli.help_text import COMMAND_NAMES, HELP, OVERVIEW
from dbhandles.commands import BUILTIN_MODULES, builtin_commands

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


#: What an in-process command never needs: the server stack, the remote client, the importer, the
#: background jobs, and the PostgreSQL driver and adapter.
NOT_IN_PROCESS = (
    "dbhandles.server",
    "dbhandles.client",
    "dbhandles.importer",
    "dbhandles.jobs",
    "dbhandles.events.postgres",
    "dbhandles.adapters.postgres",
    "psycopg",
    "psycopg_pool",
    "starlette",
    "uvicorn",
    "httpx",
    "websockets",
    "hypothesis",
)


def _run_cli(*args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        check=True,
        timeout=60,
        env=env,
    )
    result: dict[str, object] = orjson.loads(done.stdout)
    return result


def _clean_env(tmp_path: Path) -> dict[str, str]:
    """This process's environment without ``JTAG_*``/``DBHANDLES_*``, its home under ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JTAG_", "DBHANDLES_"))}
    env["DBHANDLES_HOME"] = str(tmp_path / "home")
    return env


#: A local read of each kind, run in process (no server).
LOCAL_READS = [["data/list", "--collection=users"], ["data/read", "--collection=users", "--id=u1"]]


def _loaded(modules: object, names: Sequence[str]) -> list[str]:
    """The modules of ``modules`` that are one of ``names`` or inside one of them."""
    assert isinstance(modules, list)
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


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


@pytest.mark.parametrize(
    ("args", "modules"),
    [
        # Each command's own module and the modules it builds on (no job command's: the service
        # imports commands.jobs only to describe a job a dead process left behind).
        (["data/list", "--collection=users"], {"listing", "records"}),
        (["data/read", "--collection=users", "--id=u1"], {"records"}),
        (["data/count", "--collection=users"], {"counting", "records"}),
        (["data/list-handles"], {"handles"}),
    ],
)
def test_an_in_process_command_imports_only_what_it_runs(
    tmp_path: Path, args: list[str], modules: set[str]
) -> None:
    # A fresh home and no server named: the command runs in this process (as a first command does).
    env = _clean_env(tmp_path)
    result = _run_cli(*args, env=env)
    assert result["code"] == 0, result["text"]
    assert '"success": true' in str(result["text"])
    loaded = _loaded(result["modules"], NOT_IN_PROCESS)
    assert loaded == [], f"jtag {' '.join(args)} imported {loaded}"
    commands = {m.rsplit(".", 1)[1] for m in _loaded(result["modules"], BUILTIN_MODULES)}
    assert commands == modules, f"jtag {' '.join(args)} imported the command modules {commands}"


def _assert_local_read_skips(tmp_path: Path, args: list[str], names: Sequence[str]) -> None:
    """``jtag *args`` run in process succeeds without importing any of ``names``."""
    result = _run_cli(*args, env=_clean_env(tmp_path))
    assert result["code"] == 0, result["text"]
    loaded = _loaded(result["modules"], names)
    assert loaded == [], f"jtag {' '.join(args)} imported {loaded}"


@pytest.mark.parametrize("args", LOCAL_READS)
def test_an_in_process_read_imports_no_terminal_idna_or_memory_module(
    tmp_path: Path, args: list[str]
) -> None:
    # ``shutil`` only tells a table's width (JSON has none), and the default address is probed with
    # its name as bytes, which ``getaddrinfo`` takes without the ``idna`` codec. (A command that
    # builds a pydantic validator imports ``shutil`` anyway: pydantic looks for its plugins.) Nor
    # the memory adapter: no memory database is opened, so no object can be of its classes.
    _assert_local_read_skips(
        tmp_path, args, ("shutil", "encodings.idna", "stringprep", "dbhandles.adapters.memory")
    )


@pytest.mark.parametrize("args", LOCAL_READS)
def test_an_in_process_read_imports_no_recheck_or_token_module(
    tmp_path: Path, args: list[str]
) -> None:
    # ``commands/recheck.py`` (a pydantic model and the policy's second look) serves only
    # ``data/query-next`` on a restricted handle, copies and imports: ``commands/listing.py``
    # imports it where it is used. ``security/tokens.py`` serves callers with a token: the
    # service makes its ``TokenManager`` on first use. A local read's cold start pays for neither.
    _assert_local_read_skips(
        tmp_path, args, ("dbhandles.commands.recheck", "dbhandles.security.tokens")
    )


_BUILT_PROBE = """
import contextlib, io, sys
import orjson
from dbhandles.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    code = main(sys.argv[1:])
built = []
if "pydantic" in sys.modules:
    from pydantic import BaseModel
    todo = [BaseModel]
    while todo:
        model = todo.pop()
        todo += model.__subclasses__()
        if model.__dict__.get("__pydantic_complete__"):
            built.append(f"{model.__module__}.{model.__qualname__}")
print(orjson.dumps({"code": code, "text": out.getvalue(), "built": sorted(built),
                    "modules": sorted(sys.modules)}).decode())
"""


@pytest.mark.parametrize(
    ("args", "own"),
    [
        (["data/list", "--collection=users"], set()),
        (["data/read", "--collection=users", "--id=u1"], set()),
        # Params of other kinds than text go through the params model (commands/fast_params.py).
        (
            ["data/list", "--collection=users", '--filter={"name": "ada"}', "--limit=5"],
            {"dbhandles.commands.listing.ListParams"},
        ),
        # data/count still validates its result with its model (commands/counting.py).
        (["data/count", "--collection=users"], {"dbhandles.commands.counting.CountResult"}),
    ],
)
def test_an_in_process_read_builds_no_pydantic_validator(
    tmp_path: Path, args: list[str], own: set[str]
) -> None:
    # Building a model's validator (its core schema) is most of what a model costs a cold start:
    # a read on the default database builds none but, at most, its command's own models' (never the
    # default database's config nor the permission presets), and loads no RE2 without a $regex.
    env = _clean_env(tmp_path)
    created = subprocess.run(
        [sys.executable, "-m", "dbhandles.cli", "data/create", "--collection=users",
         '--data={"id": "u1", "name": "ada"}'],
        capture_output=True, env=env, timeout=60,
    )  # fmt: skip
    assert created.returncode == 0, created.stdout + created.stderr
    done = subprocess.run(
        [sys.executable, "-c", _BUILT_PROBE, *args],
        capture_output=True,
        check=True,
        timeout=60,
        env=env,
    )
    result = orjson.loads(done.stdout)
    assert result["code"] == 0, result["text"]
    assert '"ada"' in result["text"] or '"total": 1' in result["text"], result["text"]
    built = set(result["built"])
    assert built <= own, f"jtag {' '.join(args)} built the validators of {sorted(built)}"
    assert _loaded(result["modules"], ("re2",)) == []


def test_a_command_sent_to_a_server_does_not_build_the_service(tmp_path: Path) -> None:
    # Port 1 on loopback: nothing listens, so the answer is server_unreachable (no server needed).
    env = _clean_env(tmp_path)
    env["JTAG_URL"] = "http://127.0.0.1:1"
    result = _run_cli("data/list", "--collection=users", env=env)
    assert result["code"] == 1
    assert "server_unreachable" in str(result["text"])
    heavy = (*NOT_IN_PROCESS, "dbhandles.service", "dbhandles.adapters.sqlite")
    loaded = _loaded(result["modules"], heavy)
    assert loaded == [], f"a command sent to a server imported {loaded}"


@pytest.mark.parametrize("collecting", [True, False])
def test_main_in_a_callers_process_leaves_its_garbage_collector_alone(
    home: Path, monkeypatch: pytest.MonkeyPatch, collecting: bool
) -> None:
    # Only jtag's own process freezes its start-up objects (cli._start_up): frozen ones are never freed.
    monkeypatch.setenv("DBHANDLES_HOME", str(home))
    monkeypatch.delenv("JTAG_URL", raising=False)
    monkeypatch.delenv("JTAG_SESSION_ID", raising=False)
    frozen = gc.get_freeze_count()
    was = gc.isenabled()
    (gc.enable if collecting else gc.disable)()
    try:
        with contextlib.redirect_stdout(io.StringIO()) as out:
            code = main(["data/list", "--collection=users"])
        assert (code, gc.isenabled(), gc.get_freeze_count()) == (0, collecting, frozen)
        assert '"success": true' in out.getvalue()
        with contextlib.redirect_stdout(io.StringIO()):
            # A key given twice: refused while starting, before the command runs.
            code = main(["data/list", "--collection=users", "--collection=logs"])
        assert (code, gc.isenabled(), gc.get_freeze_count()) == (1, collecting, frozen)
    finally:
        (gc.enable if was else gc.disable)()


def test_jtag_as_its_own_process_runs_a_command_in_process(tmp_path: Path) -> None:
    # argv omitted, as the console script and ``python -m dbhandles.cli`` call main(): the start-up
    # objects are frozen, and the command runs and prints its envelope all the same.
    env = _clean_env(tmp_path)
    commands = (
        ["data/create", "--collection=users", '--data={"name": "ada"}'],
        ["data/list", "--collection=users"],
    )
    for argv in commands:
        done = subprocess.run(
            [sys.executable, "-m", "dbhandles.cli", *argv], capture_output=True, env=env, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr
    body = orjson.loads(done.stdout)
    assert [item["name"] for item in body["items"]] == ["ada"]


#: Modules that build validators on purpose: the server (its OpenAPI document) and the help
#: generator (the help and the documents), and what imports them.
_BUILDS_ON_PURPOSE = (
    "dbhandles.server",
    "dbhandles.cli.help",
    "dbhandles.cli.serve",
    "dbhandles.cli.workers",
)

_IMPORT_ALL = """
import importlib, pathlib, sys
import orjson
import dbhandles
skip = tuple(sys.argv[1:])
root = pathlib.Path(dbhandles.__file__).parent
names = []
for path in sorted(root.rglob("*.py")):  # from the files: walking the packages would import them
    parts = path.relative_to(root.parent).with_suffix("").parts
    name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    if name.endswith("__main__") or any(name == s or name.startswith(s + ".") for s in skip):
        continue
    names.append(name)
for name in names:
    importlib.import_module(name)
from pydantic import BaseModel
built, todo = [], [BaseModel]
while todo:
    model = todo.pop()
    todo += model.__subclasses__()
    if model.__dict__.get("__pydantic_complete__") and model.__module__.startswith("dbhandles"):
        built.append(f"{model.__module__}.{model.__qualname__}")
print(orjson.dumps({"imported": len(names), "built": sorted(built)}).decode())
"""


def test_no_module_builds_a_validator_at_import() -> None:
    # The kind of fault behind a slow start: a model instance (or a model that is not deferred)
    # made at import builds its validator in every process that imports the module.
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL, *_BUILDS_ON_PURPOSE],
        capture_output=True,
        check=True,
        timeout=120,
    )
    result = orjson.loads(done.stdout)
    assert result["imported"] > 100
    assert result["built"] == [], f"validators built at import: {result['built']}"
