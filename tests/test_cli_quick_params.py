"""``jtag`` reads a command line from the generated spec, and checks its params by the quick door.

Both shortcuts must answer exactly what the long way answers: in-process, ``to_params`` through
``fast_params.parse_simple`` gives what pydantic gives (the same params, the same error for bad
ones); a command sent to a server, read from the spec alone (no pydantic, no command model), gets
the same envelope from the server's dispatcher as the same command line run in-process.
Nothing here is timed (benchmarks/cli_start.py measures the start-up).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from dbhandles import Service, Settings
from dbhandles.cli import command_name, main
from dbhandles.cli.jsonl import import_main
from dbhandles.cli.parse import parse_args, to_params
from dbhandles.cli.spec import command_spec, spec_of
from dbhandles.cli.transport import ADMIN_TOKEN_FILE
from dbhandles.commands import COMMANDS, builtin_commands
from dbhandles.commands.fast_params import parse_simple
from dbhandles.errors import InvalidParams
from dbhandles.security import tokens
from dbhandles.service import params_error
from tests.servers import ThreadServer

#: Command lines whose params are all strings of fields the quick door checks.
SIMPLE = [
    ["data/list", "--collection=users"],
    ["data/list", "--collection", "users", "--db-handle=default"],
    ["data/read", "--collection=users", "--id=10"],
    # U+0000 is the handler's to judge (a table dbhandles did not create may hold it in a key)
    ["data/read", "--collection=users", "--id=a\x00b"],
    ["data/read", "--collection=users", "u1"],
    ["data/count", "--collection=users", "--dbHandle=default"],
    ["data/delete", "collection=users", "id=u1"],
    ["data/schema", "--collection=users", "--session-id=7c1f6a52-0d4b-4f4e-9d59-3c1e9f0a2b11"],
    ["data/list-handles"],
    ["data/audit", "--actor=alice", "--operation=read"],
]
#: Command lines the model refuses: each kind of check the quick door runs, and what it never takes.
BAD = [
    ["data/list", f"--collection={'c' * 300}"],
    ["data/list", "--collection="],
    ["data/list", "--collection=users", "--dbHandle=1 bad handle"],
    ["data/list", "--collection=users", "--sessionId=not a session"],
    ["data/list", "--collection=users", "--nope=1"],
    ["data/list", "--collection=users", "--limit=abc"],
    ["data/list", "--collection=users", "--limit=-1"],
    ["data/list", "--collection=users", '--filter={"age": {"$bad": 1}}'],
    ["data/list"],
    ["data/read", "--collection=users"],
    ["data/read", "--collection=users", "--id="],
    ["data/create", "--collection=users", "--data=[1]"],
    ["data/count", "--collection=users", "--dbHandle=default", "--id=1"],
    ["data/list-handles", "--sessionId="],
    ["data/list", "--collection=users", "--dbHandle="],
]


def _id(argv: list[str]) -> str:
    return " ".join(argv)[:60]


def _raw(argv: list[str]) -> tuple[str, dict[str, Any]]:
    name, rest = command_name(argv)
    return name, parse_args(builtin_commands()[name], rest).params


def _pydantic_door(name: str, raw: dict[str, Any]) -> dict[str, Any]:
    """What ``to_params`` gave before the quick door: pydantic's validation and dump."""
    command = builtin_commands()[name]
    try:
        model = command.params.model_validate(raw)
    except ValidationError as exc:
        raise params_error(name, exc) from exc
    dumped: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return dumped


@pytest.mark.parametrize("argv", SIMPLE, ids=_id)
def test_the_quick_door_gives_the_params_pydantic_gives(argv: list[str]) -> None:
    name, raw = _raw(argv)
    command = builtin_commands()[name]
    assert parse_simple(command.params, raw) is not None, "the quick door should take these"
    quick = to_params(command, raw)
    assert quick == _pydantic_door(name, raw)
    assert list(quick) == list(_pydantic_door(name, raw))  # the same order on the wire, too


@pytest.mark.parametrize("argv", BAD, ids=_id)
def test_the_quick_door_refuses_with_pydantics_error(argv: list[str]) -> None:
    name, raw = _raw(argv)
    command = builtin_commands()[name]
    with pytest.raises(InvalidParams) as quick:
        to_params(command, raw)
    with pytest.raises(InvalidParams) as slow:
        _pydantic_door(name, raw)
    assert (quick.value.code, quick.value.message, quick.value.field) == (
        slow.value.code,
        slow.value.message,
        slow.value.field,
    )


@pytest.mark.parametrize("name", sorted(builtin_commands()))
def test_the_generated_spec_reads_a_command_line_as_its_model_does(name: str) -> None:
    command = builtin_commands()[name]
    assert command_spec(name) == spec_of(command), "run python scripts/generate-docs.py"


@pytest.mark.parametrize("argv", SIMPLE + BAD, ids=_id)
def test_the_spec_and_the_model_split_a_command_line_alike(argv: list[str]) -> None:
    name, rest = command_name(argv)
    spec = command_spec(name)
    assert spec is not None
    assert parse_args(spec, rest) == parse_args(builtin_commands()[name], rest)


def test_a_command_registered_at_run_time_is_read_off_its_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not in the generated spec: jtag reads its command line off its params model instead.
    for key in [k for k in os.environ if k.startswith(("JTAG_", "DBHANDLES_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("DBHANDLES_HOME", str(tmp_path / "home"))
    COMMANDS["test/count"] = dataclasses.replace(
        builtin_commands()["data/count"], name="test/count"
    )
    try:
        assert command_spec("test/count") is None
        assert _answer(["test/count", "--collection", "users"])["total"] == 0
        assert _answer(["test/count", "--collection=users", "--nope=1"])["field"] == "nope"
    finally:
        del COMMANDS["test/count"]
    assert _answer(["test/count", "--collection=users"])["code"] == "unknown_command"


def _answer(argv: list[str]) -> dict[str, Any]:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        main(argv)
    body: dict[str, Any] = orjson.loads(out.getvalue())
    for key in ("timestamp", "sessionId"):
        body.pop(key, None)
    return body


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ThreadServer]:
    with (
        Service(settings=Settings(home=tmp_path / "server-home")) as service,
        ThreadServer(service) as running,
    ):
        yield running


@pytest.mark.parametrize("argv", BAD + SIMPLE[:3], ids=_id)
def test_a_command_sent_to_a_server_gets_the_in_process_answer(
    argv: list[str], tmp_path: Path, server: ThreadServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same command line twice: in-process on one home, then to a server on another (JTAG_URL).
    for key in [k for k in os.environ if k.startswith(("JTAG_", "DBHANDLES_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("DBHANDLES_HOME", str(tmp_path / "cli-home"))
    in_process = _answer(argv)
    monkeypatch.setenv("JTAG_URL", server.url)
    assert _answer(argv) == in_process


def test_import_jsonl_sent_to_a_server_is_checked_and_audited_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sibling door: jtag import-jsonl with a server sends its params as read, like jtag data/import.
    argv = [
        f"--input={tmp_path / 'in.jsonl'}",
        f"--output={tmp_path / 'out.sqlite'}",
        "--batch-size=x",
    ]
    for key in [k for k in os.environ if k.startswith(("JTAG_", "DBHANDLES_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("DBHANDLES_HOME", str(tmp_path / "cli-home"))
    answers = []
    with (
        Service(settings=Settings(home=tmp_path / "server-home")) as service,
        ThreadServer(service) as server,
    ):
        for url in (None, server.url):
            if url is not None:
                monkeypatch.setenv("JTAG_URL", url)
            out = io.StringIO()
            assert import_main(argv, stdout=out) == 1
            body = orjson.loads(out.getvalue())
            answers.append((body["code"], body["field"], body["error"]))
        rows = service.execute("data/audit", {})["entries"]
    assert answers[0] == answers[1] == ("invalid_params", "batchSize", answers[0][2])
    assert [(r["command"], r["code"]) for r in rows] == [("data/import", "invalid_params")]


_PROBE = """
import contextlib, io, sys
import orjson
from dbhandles.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    code = main(sys.argv[1:])
built = None
if "dbhandles.commands.listing" in sys.modules:
    built = sys.modules["dbhandles.commands.listing"].ListParams.__pydantic_complete__
print(orjson.dumps({"code": code, "text": out.getvalue(), "modules": sorted(sys.modules),
                    "built": built}).decode())
"""


def _probe(tmp_path: Path, *args: str, **env: str) -> dict[str, Any]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("JTAG_", "DBHANDLES_"))}
    environ |= {"DBHANDLES_HOME": str(tmp_path / "home"), **env}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        check=True,
        timeout=60,
        env=environ,
    )
    result: dict[str, Any] = orjson.loads(done.stdout)
    return result


#: What a command sent to a server never needs: the params models and the database stack.
NOT_SENT = (
    "pydantic",
    "pydantic_core",
    "dbhandles.commands",
    "dbhandles.service",
    "dbhandles.registry",
    "dbhandles.store",
    "dbhandles.adapters",
    "dbhandles.security.tokens",
    "dbhandles.filters",
    "sqlite3",
    "re2",
    "importlib.metadata",
)


def test_a_command_sent_to_a_server_imports_no_models_nor_database(tmp_path: Path) -> None:
    # Port 1 on loopback: nothing listens, so the answer is server_unreachable (no server needed).
    result = _probe(tmp_path, "data/list", "--collection=users", JTAG_URL="http://127.0.0.1:1")
    assert result["code"] == 1
    assert "server_unreachable" in result["text"]
    loaded = sorted(
        m for m in result["modules"] if any(m == n or m.startswith(n + ".") for n in NOT_SENT)
    )
    assert loaded == [], f"a command sent to a server imported {loaded}"


def test_an_in_process_list_builds_no_validator_for_its_params(tmp_path: Path) -> None:
    # The quick door checks --collection=users: pydantic's validator of ListParams is never built.
    result = _probe(tmp_path, "data/list", "--collection=users")
    assert result["code"] == 0, result["text"]
    assert result["built"] is False


def test_the_admin_token_file_is_the_one_serve_writes() -> None:
    assert ADMIN_TOKEN_FILE == tokens.ADMIN_TOKEN_FILE
