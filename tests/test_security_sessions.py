"""One session id rule at every door, every door audits a refusal alike, and a bad home is a clear error.

Issue 14: the original's callers send ``sessionId`` (a UUID) on every call; an id is 1 to 128 letters,
digits, '_', '.', ':', '@' or '-', starting with a letter or digit (``context.SESSION_ID_PATTERN``),
whether it comes as ``X-Session-Id``, as the ``sessionId`` param (HTTP, WebSocket, in-process), as
``JTAG_SESSION_ID`` or ``--sessionId`` in ``jtag``, or as ``Context.session_id`` in-process. Issue 12:
``jtag`` without a server refuses bad params through the dispatcher, which audits the refusal as it
does one over HTTP. See docs/security.md (controls 10 and 11).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import Context, Service
from dbhandles.cli import main
from dbhandles.context import is_session_id
from dbhandles.errors import InvalidConfig, InvalidParams
from tests.servers import app_client

ADMIN = Context(actor="admin", is_admin=True, session_id="s-admin")
UUID = "7c3e1f0a-2d4b-4c5e-8f9a-0b1c2d3e4f5a"
#: Not session ids: blank, scoped-looking, a line or paragraph separator, a format character (BOM,
#: a bidirectional override), control characters, a space inside, too long, empty.
BAD = [" ", "a/b", "a#b", "s\u2028", "\u2029", "\ufeffs", "s\u202e", "s\x00", "s\x85", "a b",
       "-leading", "x" * 129, ""]  # fmt: skip
GOOD = [UUID, "s1", "s-admin", "thread-1", "a.b:c@d_e", "x" * 128]


def test_the_rule() -> None:
    assert all(is_session_id(v) for v in GOOD)
    assert not any(is_session_id(v) for v in BAD)


@pytest.fixture
def service(tmp_path: Path) -> Any:
    with Service(home=tmp_path / "home") as svc:
        yield svc


def _audit(service: Service, command: str) -> list[dict[str, Any]]:
    entries = service.execute("data/audit", {"limit": 1000}, context=ADMIN)["entries"]
    return [e for e in entries if e["command"] == command]


# -- the in-process doors: Context.session_id and the sessionId param ------------------------------


@pytest.mark.parametrize("bad", BAD)
def test_in_process_a_bad_context_session_is_refused_and_audited(
    service: Service, bad: str
) -> None:
    with pytest.raises(InvalidParams) as caught:
        service.execute("data/list", {"collection": "c"}, context=Context(session_id=bad))
    assert caught.value.field == "sessionId" and "not a valid session id" in caught.value.message
    (row,) = _audit(service, "data/list")
    assert (row["code"], row["handle"], row["collection"]) == ("invalid_params", "default", "c")


@pytest.mark.parametrize("good", [*GOOD, "local/s1", "local/", "local#c1"])
def test_in_process_ids_and_the_servers_scoped_ones_are_accepted(
    service: Service, good: str
) -> None:
    envelope = service.execute("data/list", {"collection": "c"}, context=Context(session_id=good))
    assert envelope["success"]


def test_a_session_scoped_by_another_actor_is_refused(service: Service) -> None:
    """``bob/s1`` is bob's session as the server scopes it: alice's context cannot claim it."""
    alice = Context(actor="alice", is_admin=False, session_id="bob/s1")
    with pytest.raises(InvalidParams):
        service.execute("data/list-handles", {}, context=alice)


@pytest.mark.parametrize("bad", BAD)
def test_in_process_a_bad_session_param_is_refused(service: Service, bad: str) -> None:
    envelope = service.dispatch("data/list", {"collection": "c", "sessionId": bad})
    assert (envelope["code"], envelope["field"]) == ("invalid_params", "sessionId"), envelope


# -- HTTP: the X-Session-Id header and the sessionId param; the WebSocket ---------------------------

#: Bad ids an HTTP header can carry (latin-1 text without line breaks).
BAD_HEADERS = ["a/b", "a#b", "a b", "-x", "é", "x" * 129]


@pytest.mark.parametrize("bad", BAD_HEADERS)
def test_http_a_bad_session_header_is_refused(service: Service, bad: str) -> None:
    with app_client(service) as client:
        response = client.post("/commands/data/list", json={"collection": "c"},
                               headers={"X-Session-Id": bad.encode("latin-1")})  # fmt: skip
    body = response.json()
    assert response.status_code == 400, body
    assert (body["code"], body["field"]) == ("invalid_params", "X-Session-Id"), body


@pytest.mark.parametrize(("sent", "shown"), [("a\u2028b", '"a\\u2028b"'), ("é/x", '"é/x"')])
def test_http_a_non_ascii_session_header_is_shown_as_the_utf8_sent(
    service: Service, sent: str, shown: str
) -> None:
    with app_client(service) as client:
        response = client.post("/commands/data/list", json={"collection": "c"},
                               headers={"X-Session-Id": sent.encode("utf-8")})  # fmt: skip
    body = response.json()
    assert (body["code"], body["field"]) == ("invalid_params", "X-Session-Id"), body
    assert body["error"].startswith(f"X-Session-Id: {shown} is not a valid session id"), body
    assert "\u00e2" not in body["error"] and "Ã" not in body["error"]  # no mojibake


def test_jtag_an_empty_session_environment_variable_means_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, envelope = _jtag(monkeypatch, capsys, tmp_path / "home", "data/list-handles",
                           JTAG_SESSION_ID="")  # fmt: skip
    assert code == 0 and envelope["success"]


def test_http_a_uuid_session_header_is_accepted(service: Service) -> None:
    with app_client(service) as client:
        body = client.post("/commands/data/list", json={"collection": "c", "sessionId": UUID},
                           headers={"X-Session-Id": UUID}).json()  # fmt: skip
    assert body["success"] and body["sessionId"] == UUID


@pytest.mark.parametrize("bad", BAD)
def test_http_and_websocket_a_bad_session_param_is_refused(service: Service, bad: str) -> None:
    params = {"collection": "c", "sessionId": bad}
    with app_client(service) as client:
        body = client.post("/commands/data/list", json=params).json()
        assert (body["code"], body["field"]) == ("invalid_params", "sessionId"), body
        with client.websocket_connect("/ws") as socket:
            assert socket.receive_json()["type"] == "hello"
            socket.send_json({"type": "request", "id": 1, "command": "data/list", "params": params})
            message = socket.receive_json()
            while message.get("type") != "response":
                message = socket.receive_json()
    result = message["result"]
    assert (result["code"], result["field"]) == ("invalid_params", "sessionId"), result
    assert len([r for r in _audit(service, "data/list") if r["code"] == "invalid_params"]) == 2


# -- jtag: JTAG_SESSION_ID and --sessionId; its refusals are audited as over HTTP --------------------


def _jtag(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], home: Path, *argv: str,
    **env: str,
) -> tuple[int, dict[str, Any]]:  # fmt: skip
    """``jtag argv`` in this process, without a server, on ``home``: (exit code, envelope)."""
    for name in ("JTAG_URL", "JTAG_TOKEN", "JTAG_SESSION_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DBHANDLES_HOME", str(home))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    code = main(list(argv))
    envelope = orjson.loads(capsys.readouterr().out)
    assert isinstance(envelope, dict)
    return code, envelope


@pytest.mark.parametrize("bad", [b for b in [*BAD, "\t", "  \n"] if b and "\x00" not in b])
def test_jtag_a_bad_session_environment_variable_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    code, envelope = _jtag(monkeypatch, capsys, tmp_path / "home", "data/list-handles",
                           JTAG_SESSION_ID=bad)  # fmt: skip
    assert code == 1
    assert (envelope["code"], envelope["field"]) == ("invalid_params", "JTAG_SESSION_ID")
    assert "not a valid session id" in envelope["error"]


def test_jtag_a_uuid_session_environment_variable_is_the_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, envelope = _jtag(monkeypatch, capsys, tmp_path / "home", "data/list-handles",
                           JTAG_SESSION_ID=UUID)  # fmt: skip
    assert code == 0 and envelope["sessionId"] == UUID


@pytest.mark.parametrize("bad", ["a/b", "s\u2028", " "])
def test_jtag_a_bad_session_flag_is_refused_and_audited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    home = tmp_path / "home"
    code, envelope = _jtag(monkeypatch, capsys, home, "data/list", "--collection=c",
                           f"--sessionId={bad}")  # fmt: skip
    assert code == 1
    assert (envelope["code"], envelope["field"]) == ("invalid_params", "sessionId")
    with Service(home=home) as service:
        assert [r["code"] for r in _audit(service, "data/list")] == ["invalid_params"]


def _row(entry: dict[str, Any]) -> tuple[Any, ...]:
    keys = ("actor", "handle", "command", "operation", "collection", "recordId", "success", "code")
    return tuple(entry[k] for k in keys)


@pytest.mark.parametrize(
    ("argv", "params"),
    [
        (["data/list", "--collection=c", "--noSuchParam=1"], {"collection": "c", "noSuchParam": 1}),
        (["data/read", "--collection=c", "--dbHandle=default"], {"collection": "c",
                                                                  "dbHandle": "default"}),
        (["data/list", "--collection=c", "--limit=abc"], {"collection": "c", "limit": "abc"}),
        (["data/copy", '--from={"dbHandle": "default", "collection": "c"}',
          '--to={"dbHandle": "nowhere"}', "--batchSize=0"],
         {"from": {"dbHandle": "default", "collection": "c"}, "to": {"dbHandle": "nowhere"},
          "batchSize": 0}),
    ],
)  # fmt: skip
def test_a_jtag_refusal_in_process_is_audited_as_over_http(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    params: dict[str, Any],
) -> None:
    """The same bad params, from ``jtag`` without a server and over HTTP: the same error, and the
    same audit rows (jtag is the local user: its actor is ``local``, as an anonymous request's)."""
    cli_home, http_home = tmp_path / "cli", tmp_path / "http"
    code, cli_envelope = _jtag(monkeypatch, capsys, cli_home, *argv)
    assert code == 1
    with Service(home=http_home) as service, app_client(service) as client:
        http_envelope = client.post(f"/commands/{argv[0]}", json=params).json()
        http_rows = [_row(e) for e in _audit(service, argv[0])]
    with Service(home=cli_home) as service:
        cli_rows = [_row(e) for e in _audit(service, argv[0])]
    for key in ("code", "field", "error"):
        assert cli_envelope.get(key) == http_envelope.get(key), key
    assert cli_rows and cli_rows == http_rows


# -- a home that cannot be one ----------------------------------------------------------------------


@pytest.mark.parametrize("where", ["file", "file/sub"])
def test_a_home_that_is_a_file_is_a_config_error(tmp_path: Path, where: str) -> None:
    (tmp_path / "file").write_text("not a folder")
    home = tmp_path / where
    with pytest.raises(InvalidConfig) as caught:
        Service(home=home)
    assert caught.value.field == "home"
    assert str(home) in caught.value.message and "is not a folder" in caught.value.message


@pytest.mark.skipif(os.geteuid() == 0, reason="root may read and write any folder")
def test_a_home_this_user_may_not_use_is_a_config_error(tmp_path: Path) -> None:
    home = tmp_path / "locked"
    home.mkdir()
    home.chmod(0)
    try:
        for given in (home, home / "sub"):
            with pytest.raises(InvalidConfig) as caught:
                Service(home=given)
            assert str(given) in caught.value.message
    finally:
        home.chmod(0o700)


@pytest.mark.parametrize("command", ["data/list-handles", "import-jsonl"])
def test_jtag_on_a_home_that_is_a_file_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:  # fmt: skip
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "in.jsonl").write_text('{"id": "a"}\n')
    argv = [command]
    if command == "import-jsonl":
        argv += [f"--input={tmp_path / 'in.jsonl'}", f"--output={tmp_path / 'o.sqlite'}",
                 "--progress=none"]  # fmt: skip
    code, envelope = _jtag(monkeypatch, capsys, tmp_path / "file", *argv)
    assert code == 1
    assert (envelope["code"], envelope["field"]) == ("invalid_config", "home")
    assert str(tmp_path / "file") in envelope["error"]


# -- issue 12 (outside tester): the token first, then the session id; jtag's session doors ---------


def _token(service: Service, actor: str) -> dict[str, str]:
    token = service.execute("token/create", {"actor": actor}, context=ADMIN)["token"]
    return {"Authorization": f"Bearer {token}"}


def test_http_a_bad_session_header_is_refused_as_the_tokens_actor_like_the_param(
    service: Service,
) -> None:
    """A valid token with a bad ``X-Session-Id``: refused (400) as the token's actor, with the
    command and its operation, the very row the bad ``sessionId`` param leaves."""
    alice = _token(service, "alice")
    with app_client(service, require_token=True) as client:
        by_header = client.post("/commands/data/list", json={"collection": "c"},
                                headers={**alice, "X-Session-Id": "a/b"})  # fmt: skip
        header_rows = [_row(e) for e in _audit(service, "data/list")]
        by_param = client.post("/commands/data/list", json={"collection": "c", "sessionId": "a/b"},
                               headers=alice)  # fmt: skip
        rows = [_row(e) for e in _audit(service, "data/list")]
    assert by_header.status_code == by_param.status_code == 400
    assert (by_header.json()["field"], by_param.json()["field"]) == ("X-Session-Id", "sessionId")
    assert "sessionId" not in by_header.json()  # the bad id is never echoed back
    assert header_rows == [("alice", "default", "data/list", "read", "c", None, False,
                            "invalid_params")]  # fmt: skip
    assert rows == header_rows * 2


def test_http_a_bad_token_is_401_whatever_the_session_header(service: Service) -> None:
    with app_client(service, require_token=True) as client:
        response = client.post("/commands/data/list", json={"collection": "c"},
                               headers={"Authorization": "Bearer dbh_nope_nope",
                                        "X-Session-Id": "a/b"})  # fmt: skip
    assert response.status_code == 401, response.json()
    rows = _audit(service, "data/list")
    assert [(r["operation"], r["code"]) for r in rows] == [("auth", "unauthorized")]


@pytest.mark.parametrize("bad", ["a/b", "s\u2028", "  \n"])
def test_jtag_a_bad_session_environment_variable_is_audited_as_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    """In-process, a bad ``JTAG_SESSION_ID`` leaves the row a bad ``--sessionId`` leaves; the
    error still names ``JTAG_SESSION_ID``."""
    env_home, flag_home = tmp_path / "env", tmp_path / "flag"
    code, envelope = _jtag(monkeypatch, capsys, env_home, "data/list", "--collection=c",
                           JTAG_SESSION_ID=bad)  # fmt: skip
    assert code == 1 and (envelope["code"], envelope["field"]) == ("invalid_params",
                                                                   "JTAG_SESSION_ID")  # fmt: skip
    _jtag(monkeypatch, capsys, flag_home, "data/list", "--collection=c", "--sessionId=a/b")
    rows = {}
    for home in (env_home, flag_home):
        with Service(home=home) as svc:
            rows[home] = [_row(e) for e in _audit(svc, "data/list")]
    assert rows[env_home] and rows[env_home] == rows[flag_home]
    assert not (env_home / "cli-session").exists()  # a bad one changes nothing


def test_jtag_with_a_server_sends_one_session_and_audits_a_bad_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Against a server: ``--sessionId`` wins over the session file (one id is sent, no
    ``session_mismatch``), and a bad ``JTAG_SESSION_ID`` is refused and audited by the server."""
    from dbhandles import Settings
    from tests.servers import ThreadServer

    home = tmp_path / "home"
    with Service(settings=Settings(home=home)) as svc, ThreadServer(svc) as server:
        code, envelope = _jtag(monkeypatch, capsys, tmp_path / "cli", "data/list",
                               "--collection=c", "--sessionId=s9", JTAG_URL=server.url)  # fmt: skip
        assert code == 0 and envelope["success"], envelope  # not session_mismatch
        code, envelope = _jtag(monkeypatch, capsys, tmp_path / "cli", "data/list",
                               "--collection=c", JTAG_URL=server.url,
                               JTAG_SESSION_ID="bad/1")  # fmt: skip
        assert code == 1 and envelope["field"] == "JTAG_SESSION_ID", envelope
        rows = [(r["operation"], r["code"]) for r in _audit(svc, "data/list")]
    assert rows == [("read", "invalid_params"), ("read", None)]
