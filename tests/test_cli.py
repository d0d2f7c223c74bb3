"""``jtag`` in-process: envelopes on stdout, exit codes, help, table output, where commands run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles.cli import main
from dbhandles.commands import COMMANDS
from dbhandles.commands.fielddocs import document_params


@pytest.fixture(autouse=True)
def cli_env(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DBHANDLES_HOME", str(home))
    monkeypatch.delenv("JTAG_URL", raising=False)
    monkeypatch.delenv("JTAG_SESSION_ID", raising=False)
    return home


def jtag(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out


def envelope(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code, out = jtag(capsys, *argv)
    value = orjson.loads(out)
    assert isinstance(value, dict)
    assert value["success"] is (code == 0), "exit code is 0 exactly when success"
    return code, value


def test_open_create_list_close(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "training.sqlite"
    code, opened = envelope(
        capsys, "data/open", "--adapter=sqlite", f'--config={{"path":"{path}","mode":"create"}}'
    )
    assert code == 0
    handle = opened["dbHandle"]
    code, handles = envelope(capsys, "data/list-handles")
    assert [h["handle"] for h in handles["handles"]] == ["default", handle]
    code, created = envelope(
        capsys, "data/create", f"--dbHandle={handle}", "--collection=training_examples",
        '--data={"text":"example","label":"positive"}', "--id=test-001",
    )  # fmt: skip
    assert (code, created["id"], created["data"]["label"]) == (0, "test-001", "positive")
    code, read = envelope(
        capsys, "data/read", f"--dbHandle={handle}", "--collection=training_examples", "test-001"
    )
    assert read["found"] is True
    code, listed = envelope(capsys, "data/list", "--collection=users")
    assert (code, listed["items"], listed["dbHandle"]) == (0, [], "default")
    code, closed = envelope(capsys, "data/close", f"--dbHandle={handle}")
    assert (code, closed["closed"]) == (0, True)
    code, again = envelope(
        capsys, "data/list", f"--dbHandle={handle}", "--collection=training_examples"
    )
    assert (code, again["code"]) == (1, "handle_not_found")


def test_closing_default_fails_with_exit_code_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, failed = envelope(capsys, "data/close", "--dbHandle=default")
    assert code == 1
    assert failed["code"] == "default_handle_protected"
    assert "default" in failed["error"]


def test_positional_delete(capsys: pytest.CaptureFixture[str]) -> None:
    envelope(capsys, "data/create", "--collection=notes", "--data={}", "--id=n1")
    code, deleted = envelope(capsys, "data/delete", "--collection=notes", "n1")
    assert (code, deleted["deleted"]) == (0, True)


@pytest.mark.parametrize(
    ("argv", "code", "field"),
    [
        (["data/nope"], "unknown_command", "command"),
        (["data/list"], "invalid_params", "collection"),
        (["data/list", "--collection=c", "--limit=lots"], "invalid_params", "limit"),
        (["data/list", "--collection=c", "--bogus=1"], "invalid_params", "bogus"),
        (["data/create", "--collection=c", "--data={oops"], "invalid_params", "data"),
        (["data/list", "--collection=c", "extra"], "invalid_params", "params"),
        (["data/list", "--collection=sqlite_master"], "invalid_params", "collection"),
    ],
)
def test_bad_input_is_an_envelope_and_exit_1(
    capsys: pytest.CaptureFixture[str], argv: list[str], code: str, field: str
) -> None:
    status, failed = envelope(capsys, *argv)
    assert status == 1
    assert (failed["code"], failed.get("field")) == (code, field)
    assert failed["error"]


def test_bad_environment_is_an_envelope(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBHANDLES_MAX_LIMIT", "many")
    status, failed = envelope(capsys, "data/list-handles")
    assert (status, failed["code"]) == (1, "invalid_params")


def test_unreachable_jtag_url_fails_loud(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.servers import free_port

    monkeypatch.setenv("JTAG_URL", f"http://127.0.0.1:{free_port()}")
    status, failed = envelope(capsys, "data/list-handles")
    assert (status, failed["code"]) == (1, "server_unreachable")
    assert "jtag serve" in failed["error"]


def test_session_id_from_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JTAG_SESSION_ID", "s-123")
    _, result = envelope(capsys, "data/list-handles")
    assert result["sessionId"] == "s-123"


# -- help -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [[], ["help"], ["--help"], ["-h"]])
def test_help_lists_every_command(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out = jtag(capsys, *argv)
    assert code == 0
    for name, command in COMMANDS.items():
        assert name in out
        assert command.summary in out
    assert "serve" in out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_for_each_command_shows_params_types_defaults_example(
    capsys: pytest.CaptureFixture[str], name: str
) -> None:
    code, out = jtag(capsys, "help", name)
    assert code == 0
    command = COMMANDS[name]
    document_params()  # the descriptions under each field, read only for help and schemas
    for field_name, info in command.params.model_fields.items():
        assert f"--{info.alias or field_name}" in out
        if info.description:
            assert info.description in out
    assert command.example in out
    code2, out2 = jtag(capsys, name, "--help")
    assert (code2, out2) == (0, out)


def test_help_data_list_details(capsys: pytest.CaptureFixture[str]) -> None:
    _, out = jtag(capsys, "help", "data/list")
    assert "--collection=<string>  (required)" in out
    assert "--limit=<integer>  (optional)" in out
    assert "--skipCount  (optional, default: false)" in out
    assert "Example:" in out


def test_help_for_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = jtag(capsys, "help", "data/nope")
    assert code == 1
    assert orjson.loads(out)["code"] == "unknown_command"


def test_serve_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = jtag(capsys, "serve", "--help")
    assert code == 0
    assert "--port" in out and "--host" in out


def test_serve_bad_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = jtag(capsys, "serve", "--prot=1")
    assert (code, orjson.loads(out)["code"]) == (1, "invalid_params")
    code, out = jtag(capsys, "serve", "--port=http")
    assert (code, orjson.loads(out)["field"]) == (1, "port")


def test_serve_port_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code, out = jtag(capsys, "serve", f"--port={busy.getsockname()[1]}")
    failed = orjson.loads(out)
    assert (code, failed["code"], failed["field"]) == (1, "invalid_params", "port")
    assert "cannot listen" in failed["error"]


# -- table output ---------------------------------------------------------------------------------


def test_table_for_items(capsys: pytest.CaptureFixture[str]) -> None:
    envelope(capsys, "data/create", "--collection=notes", '--data={"text":"hello"}', "--id=n1")
    code, out = jtag(capsys, "data/list", "--collection=notes", "--format=table")
    assert code == 0
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("id "))
    assert "text" in header and "version" in header
    assert any(line.startswith("n1 ") and "hello" in line for line in lines)


def test_table_for_handles(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = jtag(capsys, "data/list-handles", "--format", "table")
    assert code == 0
    assert out.splitlines()[0].split()[:3] == ["handle", "adapter", "where"]
    assert out.splitlines()[2].startswith("default ")


def test_table_for_failure(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = jtag(capsys, "data/close", "--dbHandle=default", "--format=table")
    assert code == 1
    assert out.startswith("error [default_handle_protected]:")


# -- where commands run ---------------------------------------------------------------------------


def test_stale_server_file_is_ignored(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    from dbhandles.cli.transport import write_state
    from tests.servers import free_port

    write_state(home, f"http://127.0.0.1:{free_port()}")  # our own (live) pid, but nothing listens
    code, result = envelope(capsys, "data/list-handles")
    assert code == 0
    assert result["handles"][0]["config"]["path"] == str(home / "default.sqlite")


def test_a_server_for_another_home_is_not_used(
    capsys: pytest.CaptureFixture[str], home: Path, tmp_path: Path
) -> None:
    from dbhandles import Service, Settings
    from dbhandles.cli.transport import find_server, write_state
    from tests.servers import ThreadServer

    with (
        Service(settings=Settings(home=tmp_path / "other")) as other,
        ThreadServer(other) as server,
    ):
        write_state(home, server.url)
        assert find_server(home) is None
        code, result = envelope(capsys, "data/list-handles")
    assert code == 0
    assert result["handles"][0]["config"]["path"] == str(home / "default.sqlite")


def test_a_server_for_this_home_is_used(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    from dbhandles import Service, Settings
    from dbhandles.cli.transport import find_server, write_state
    from tests.servers import ThreadServer

    with Service(settings=Settings(home=home)) as service, ThreadServer(service) as server:
        write_state(home, server.url)
        assert find_server(home) == server.url
        _, opened = envelope(capsys, "data/open", "--adapter=memory", "--config={}")
        # A memory handle lives in the process that opened it: the server's, not this one's.
        assert opened["dbHandle"] in [e.handle for e in service.registry.list_handles()]


@pytest.mark.parametrize("name", ["import-jsonl", "export-jsonl"])
def test_help_for_the_jsonl_commands_is_their_usage(
    capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """``jtag help import-jsonl`` says what ``jtag import-jsonl --help`` says (not unknown_command)."""
    code, out = jtag(capsys, "help", name)
    assert code == 0
    assert out.startswith(f"usage: jtag {name} ")


def test_the_server_probe_connects_by_address_or_name_and_never_raises() -> None:
    """``_listening`` resolves an ASCII name as bytes (no ``idna`` codec) and still connects to an
    address or to ``localhost``; a closed port or a name the ``idna`` codec refuses is ``False``."""
    import socket

    from dbhandles.cli.transport import _listening

    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        assert _listening(f"http://127.0.0.1:{port}")
        assert _listening(f"http://localhost:{port}")
    assert not _listening(f"http://127.0.0.1:{port}")
    assert not _listening(f"http://{'ü' * 64}:{port}")  # a label too long for IDNA: no lookup
