"""Issue 6 through ``jtag``: token commands, ``--token``, the CLI's session, read-only handles and the
audit log, in-process and against a real ``jtag serve``."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles.cli import main
from dbhandles.cli.help_text import COMMAND_NAMES
from dbhandles.cli.session import SESSION_FILE
from tests.servers import ServerProcess, envelope_of, jtag_env, run_jtag

WRITES: list[list[str]] = [
    ["data/create", "--collection=notes", '--data={"text":"new"}'],
    ["data/update", "--collection=notes", "--id=n1", '--data={"text":"changed"}'],
    ["data/delete", "--collection=notes", "n1"],
    ["data/truncate", "--collection=notes"],
    ["data/clear"],
    ["data/batch", '--operations=[{"op":"create","collection":"notes","data":{}}]'],
]
READ_ONLY = [
    pytest.param("preset", "permission_denied", id="preset-READ_ONLY"),
    pytest.param("mode", "read_only", id="mode-readonly"),
]


@pytest.fixture(autouse=True)
def cli_env(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DBHANDLES_HOME", str(home))
    for name in ("JTAG_URL", "JTAG_SESSION_ID", "JTAG_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return home


def jtag(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out


def envelope(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out = jtag(capsys, *argv)
    value = orjson.loads(out)
    assert isinstance(value, dict)
    assert value["success"] is (code == 0), "exit code is 0 exactly when success"
    return value


def read_only_args(path: Path, how: str) -> list[str]:
    mode = "readonly" if how == "mode" else "readwrite"
    args = ["data/open", "--adapter=sqlite", f'--config={{"path":"{path}","mode":"{mode}"}}']
    return [*args, "--preset=READ_ONLY"] if how == "preset" else args


def seed_notes(capsys: pytest.CaptureFixture[str], path: Path) -> None:
    config = f'--config={{"path":"{path}","mode":"create"}}'
    handle = envelope(capsys, "data/open", "--adapter=sqlite", config)["dbHandle"]
    for i in (1, 2):
        envelope(capsys, "data/create", f"--dbHandle={handle}", "--collection=notes", f"--id=n{i}",
                 f'--data={{"text":"note {i}"}}')  # fmt: skip


# -- token commands -------------------------------------------------------------------------------


def test_token_commands_as_two_words(capsys: pytest.CaptureFixture[str]) -> None:
    created = envelope(capsys, "token", "create", "--actor=helper-ai", "--expires=30d")
    assert created["token"].startswith("dbh_") and created["expiresAt"]
    admin = envelope(capsys, "token/create", "--actor=ops", "--admin")
    assert admin["isAdmin"] is True
    listed = envelope(capsys, "token", "list")["tokens"]
    assert {t["actor"] for t in listed} == {"helper-ai", "ops"}
    assert created["token"] not in orjson.dumps(listed).decode()
    revoked = envelope(capsys, "token", "revoke", created["tokenId"])
    assert (revoked["revoked"], revoked["actor"]) == (True, "helper-ai")
    code, table = jtag(capsys, "token", "list", "--format=table")
    assert code == 0
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["tokenId", "actor", "isAdmin"]
    assert any(line.startswith(created["tokenId"]) and "helper-ai" in line for line in lines)


def test_token_create_table_shows_the_token_once(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = jtag(capsys, "token", "create", "--actor=alice", "--format=table")
    assert code == 0
    assert "dbh_" in out and "only its hash is kept" in out


def test_help_shows_the_token_commands(capsys: pytest.CaptureFixture[str]) -> None:
    _, overview = jtag(capsys, "help")
    assert "jtag token create --actor=NAME [--expires=30d] [--admin]" in overview
    assert "jtag token revoke <tokenId>" in overview
    _, two_words = jtag(capsys, "help", "token", "create")
    _, one_word = jtag(capsys, "help", "token/create")
    _, flag = jtag(capsys, "token", "create", "--help")
    assert two_words == one_word == flag
    assert "--actor" in two_words


@pytest.mark.parametrize("argv", [["token"], ["token", "nope"]])
def test_a_group_without_a_verb_lists_its_verbs(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    failed = envelope(capsys, *argv)
    assert failed["code"] == "unknown_command"
    assert "jtag token create" in failed["error"] and "jtag token revoke" in failed["error"]


@pytest.mark.parametrize(
    ("argv", "field"),
    [(["--token"], "token"), (["--token="], "token"), (["--new-session=maybe"], "new-session")],
)
def test_bad_cli_flags(capsys: pytest.CaptureFixture[str], argv: list[str], field: str) -> None:
    failed = envelope(capsys, "data/list-handles", *argv)
    assert (failed["code"], failed["field"]) == ("invalid_params", field)


def test_in_process_the_cli_is_the_local_administrator(capsys: pytest.CaptureFixture[str]) -> None:
    # Without a token no server is needed: the files are the user's.
    assert envelope(capsys, "data/list-handles")["success"] is True
    entries = envelope(capsys, "data/audit")["entries"]
    assert entries[0]["actor"] == "local"
    assert envelope(capsys, "token/list")["success"] is True


@pytest.mark.parametrize("name", sorted(COMMAND_NAMES))
@pytest.mark.parametrize("how", ["flag", "environment"])
def test_a_command_given_a_token_never_runs_in_process(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    home: Path,
    name: str,
    how: str,
) -> None:
    # Issue 12 round 23 (4): in-process it would run as the local administrator, with more
    # rights than the token's actor; refused as import-jsonl/export-jsonl are, and nothing ran.
    if how == "environment":
        monkeypatch.setenv("JTAG_TOKEN", "dbh_whatever")
    argv = ["--token=dbh_whatever"] if how == "flag" else []
    failed = envelope(capsys, name, *argv)
    assert failed["code"] == "server_unreachable", failed
    assert failed["error"].startswith(f"{name}: the token names an actor of a server")
    assert "nothing ran" in failed["error"]
    monkeypatch.delenv("JTAG_TOKEN", raising=False)
    assert envelope(capsys, "data/audit")["entries"] == []  # no call reached the service


# -- the CLI's session ----------------------------------------------------------------------------


def test_session_is_kept_between_runs(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    first = envelope(capsys, "data/list-handles")["sessionId"]
    path = home / SESSION_FILE
    assert path.read_text().strip() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert envelope(capsys, "data/list-handles")["sessionId"] == first


def test_a_cursor_works_across_runs_until_a_new_session(capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(3):
        envelope(capsys, "data/create", "--collection=c", f"--id=r{i}", "--data={}")
    opened = envelope(capsys, "data/query-open", "--collection=c", "--pageSize=2")
    cursor = opened["queryHandle"]
    page = envelope(capsys, "data/query-next", f"--queryHandle={cursor}")
    assert (page["sessionId"], len(page["items"])) == (opened["sessionId"], 2)
    fresh = envelope(capsys, "data/list-handles", "--new-session")["sessionId"]
    assert fresh != opened["sessionId"]
    gone = envelope(capsys, "data/query-next", f"--queryHandle={cursor}")
    assert gone["code"] == "cursor_not_found"


def test_session_from_the_environment_wins(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    stored = envelope(capsys, "data/list-handles")["sessionId"]
    monkeypatch.setenv("JTAG_SESSION_ID", "pinned-1")
    assert envelope(capsys, "data/list-handles")["sessionId"] == "pinned-1"
    assert (home / SESSION_FILE).read_text().strip() == stored


# -- read-only handles and the audit log, in-process ----------------------------------------------


@pytest.mark.parametrize(("how", "code"), READ_ONLY)
def test_read_only_handle_in_process(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, how: str, code: str
) -> None:
    path = tmp_path / "dataset.sqlite"
    seed_notes(capsys, path)
    handle = envelope(capsys, *read_only_args(path, how))["dbHandle"]
    for argv in WRITES:
        status, out = jtag(capsys, *argv, f"--dbHandle={handle}")
        assert (status, orjson.loads(out)["code"]) == (1, code), argv
    listed = envelope(capsys, "data/list", f"--dbHandle={handle}", "--collection=notes")
    assert [(i["id"], i["text"]) for i in listed["items"]] == [("n1", "note 1"), ("n2", "note 2")]


def test_audit_table_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    envelope(capsys, "data/create", "--collection=c", "--id=a1", "--data={}")
    envelope(capsys, "data/close", "--dbHandle=default")
    code, out = jtag(capsys, "data/audit", "--format=table")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:6] == ["timestamp", "actor", "command", "operation", "success", "code"]
    assert any("data/close" in line and " no " in line and "default_handle_protected" in line
               for line in lines)  # fmt: skip
    assert any("data/create" in line and " yes " in line and "a1" in line for line in lines)


# -- against a real server ------------------------------------------------------------------------


class Cli:
    """``./jtag`` processes on the home of a running server."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.env = {k: v for k, v in jtag_env(server.home).items() if k != "JTAG_TOKEN"}

    def __call__(self, *argv: str, **env: str) -> tuple[int, dict[str, Any]]:
        proc = run_jtag(*argv, env={**self.env, **env})
        value = envelope_of(proc)
        assert value["success"] is (proc.returncode == 0)
        return proc.returncode, value

    def text(self, *argv: str, **env: str) -> tuple[int, str]:
        proc = run_jtag(*argv, env={**self.env, **env})
        return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with ServerProcess(tmp_path_factory.mktemp("cli-server") / "home") as server:
        yield Cli(server)


@pytest.mark.needs_server
def test_cli_against_a_server_uses_the_local_admin_token(cli: Cli) -> None:
    code, handle = cli("data/open", "--adapter=memory")  # lives in the server: proves it went there
    assert code == 0
    code, listed = cli("data/list-handles")
    assert handle["dbHandle"] in [h["handle"] for h in listed["handles"]]
    code, created = cli("token", "create", "--actor=bob", "--expires=1d")
    assert (code, created["actor"]) == (0, "bob")
    code, audit = cli("data/audit", "--limit=5")
    assert {e["actor"] for e in audit["entries"]} == {"admin"}, "the server's admin, not in-process"


@pytest.mark.needs_server
def test_cli_tokens_against_a_server(cli: Cli) -> None:
    _, created = cli("token", "create", "--actor=carol")
    carol = created["token"]
    wrong = "dbh_0123456789ab_" + "w" * 43
    assert cli("data/list-handles", JTAG_TOKEN=carol)[0] == 0
    for argv, env in (([f"--token={carol}"], {}), ([], {"JTAG_TOKEN": carol})):
        code, refused = cli("data/audit", *argv, **env)
        assert (code, refused["code"]) == (1, "forbidden")
    for argv, env in (([f"--token={wrong}"], {}), ([], {"JTAG_TOKEN": wrong})):
        code, out = cli.text("data/list-handles", *argv, **env)
        assert (code, orjson.loads(out)["code"]) == (1, "unauthorized")
        assert wrong not in out
    # --token wins over JTAG_TOKEN.
    assert cli("data/list-handles", f"--token={carol}", JTAG_TOKEN=wrong)[0] == 0
    code, refused = cli("token", "create", "--actor=mallory", "--admin", JTAG_TOKEN=carol)
    assert (code, refused["code"]) == (1, "forbidden")
    code, table = cli.text("data/audit", "--actor=carol", "--format=table")
    assert code == 0
    lines = table.splitlines()
    assert lines[0].split()[:6] == ["timestamp", "actor", "command", "operation", "success", "code"]
    assert any("token/create" in line and " no " in line and "forbidden" in line for line in lines)
    assert any("data/list-handles" in line and " yes " in line for line in lines)
    code, revoked = cli("token", "revoke", created["tokenId"])
    assert (code, revoked["revoked"]) == (0, True)
    assert cli("data/list-handles", JTAG_TOKEN=carol)[1]["code"] == "unauthorized"


@pytest.mark.needs_server
def test_cli_cursor_across_runs_against_a_server(cli: Cli) -> None:
    for i in range(3):
        cli("data/create", "--collection=pages", f"--id=p{i}", "--data={}")
    _, opened = cli("data/query-open", "--collection=pages", "--pageSize=2")
    session = (cli.server.home / SESSION_FILE).read_text().strip()
    assert opened["sessionId"] == session
    code, page = cli("data/query-next", f"--queryHandle={opened['queryHandle']}")
    assert (code, len(page["items"]), page["sessionId"]) == (0, 2, session)
    assert cli("data/list-handles", "--new-session")[1]["sessionId"] != session
    code, gone = cli("data/query-next", f"--queryHandle={opened['queryHandle']}")
    assert (code, gone["code"]) == (1, "cursor_not_found")
    # --new-session ended the old session on the server: its cursor is closed, not just hidden.
    code, closed = cli(
        "data/query-next", f"--queryHandle={opened['queryHandle']}", JTAG_SESSION_ID=session
    )
    assert (code, closed["code"]) == (1, "cursor_not_found")


@pytest.mark.needs_server
@pytest.mark.parametrize(("how", "code"), READ_ONLY)
def test_cli_read_only_handle_against_a_server(
    cli: Cli, tmp_path: Path, how: str, code: str
) -> None:
    path = tmp_path / "dataset.sqlite"
    _, writable = cli(
        "data/open", "--adapter=sqlite", f'--config={{"path":"{path}","mode":"create"}}'
    )
    for i in (1, 2):
        cli("data/create", f"--dbHandle={writable['dbHandle']}", "--collection=notes", f"--id=n{i}",
            f'--data={{"text":"note {i}"}}')  # fmt: skip
    _, opened = cli(*read_only_args(path, how))
    for argv in WRITES:
        status, refused = cli(*argv, f"--dbHandle={opened['dbHandle']}")
        assert (status, refused["code"]) == (1, code), argv
    _, listed = cli("data/list", f"--dbHandle={opened['dbHandle']}", "--collection=notes")
    assert [(i["id"], i["text"]) for i in listed["items"]] == [("n1", "note 1"), ("n2", "note 2")]
    assert os.path.exists(path)


# -- issue 12, round 24 (6): an empty token, a refused run's session file, a token in error words --


@pytest.mark.parametrize("value", ["", "  "])
@pytest.mark.parametrize("name", ["data/list-handles", "data/audit", "token/list"])
def test_an_empty_jtag_token_is_refused_like_an_empty_flag(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, value: str, name: str
) -> None:
    # An empty JTAG_TOKEN is a token given, never the local administrator's run in-process.
    monkeypatch.setenv("JTAG_TOKEN", value)
    failed = envelope(capsys, name)
    assert (failed["code"], failed["field"]) == ("invalid_params", "JTAG_TOKEN"), failed
    monkeypatch.delenv("JTAG_TOKEN")
    assert envelope(capsys, "data/audit")["entries"] == []  # no call reached the service


@pytest.mark.parametrize("name", ["import-jsonl", "export-jsonl"])
def test_an_empty_jtag_token_is_refused_by_the_jsonl_commands(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    monkeypatch.setenv("JTAG_TOKEN", "")
    path = tmp_path / "in.jsonl"
    path.write_text('{"a": 1}\n')
    failed = envelope(capsys, name, "--collection=notes", f"--input={path}"
                      if name == "import-jsonl" else f"--output={tmp_path / 'out.jsonl'}")  # fmt: skip
    assert (failed["code"], failed.get("field")) == ("invalid_params", "JTAG_TOKEN"), failed
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_a_command_refused_for_its_token_writes_no_session_file(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, home: Path, how: str
) -> None:
    if how == "environment":
        monkeypatch.setenv("JTAG_TOKEN", "dbh_whatever")
    before = sorted(p.name for p in home.iterdir()) if home.exists() else []
    failed = envelope(
        capsys, "data/list-handles", *(["--token=dbh_whatever"] if how == "flag" else [])
    )
    assert failed["code"] == "server_unreachable"
    assert not (home / SESSION_FILE).exists()
    assert (sorted(p.name for p in home.iterdir()) if home.exists() else []) == before


SECRET = "dbh_4b093f934bd6_ShAaXi_618nip-a3S6FJrE98oZ0xEzJGyQBl6_zsVwA"


@pytest.mark.parametrize(
    "argv",
    [
        ["help", f"--token={SECRET}"],
        ["serve", f"--token={SECRET}"],
        [f"--token={SECRET}"],
        [SECRET],
        ["data/list-handles", f"--nope={SECRET}"],
        ["import-jsonl", f"--token={SECRET}", "--nope=1"],
    ],
    ids=["help", "serve", "bare-flag", "bare-token", "unknown-key", "import-jsonl"],
)
def test_a_token_is_never_echoed_in_an_error(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, out = jtag(capsys, *argv)
    assert code != 0
    assert "ShAaXi_618nip" not in out, out
    assert "dbh_4b093f934bd6_***" in out or "dbh_" not in out


def test_a_new_token_is_still_shown_once(capsys: pytest.CaptureFixture[str]) -> None:
    created = envelope(capsys, "token/create", "--actor=alice")
    assert "***" not in created["token"] and len(created["token"]) > 40
