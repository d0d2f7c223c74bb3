"""Issue 13 (round 9 outside findings 4, 5): every number setting of the settings table, whatever
its text, is refused at ``jtag serve`` naming the variable and what it allows, never a traceback; its
largest allowed value is one every use takes (``DBHANDLES_QUERY_TIMEOUT_MS=2**53`` was taken, and every
SQLite write then failed with ``OverflowError``); a default page size is one a caller may ask for."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.sync.client import connect as ws_connect

from dbhandles.cli.serve import serve_main
from dbhandles.service import Service
from dbhandles.settings import Settings
from dbhandles.settings_checks import BOUNDS, MAX_NUMBER, MAX_QUERY_TIMEOUT_MS, MAX_SECONDS
from tests.server_helpers import connect, serving, wait_for

NUMBERS = [f for f in fields(Settings) if f.type in ("int", "float")]
#: Text no number setting takes: a word, past every float, past every bound, negative.
BAD = ["abc", "1e999", "99999999999999999999999", "-1"]
#: Default page sizes: taken as ``DBHANDLES_MAX_LIMIT`` past it.
PAGES = ("default_limit", "query_page_size")


def env_of(name: str) -> str:
    return next(f.metadata["env"] for f in fields(Settings) if f.name == name)


def largest(name: str) -> int | float:
    """The largest value setting ``name`` allows, as its type holds it."""
    field = next(f for f in NUMBERS if f.name == name)
    top = min(BOUNDS[name].maximum, MAX_NUMBER)
    return int(top) if field.type == "int" else float(top)


def refused_at_start(
    variable: str, raw: str, home: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> str:  # fmt: skip
    """``jtag serve`` with ``variable=raw``: exit status 1, the error envelope naming the variable
    and the value, no traceback; its message."""
    monkeypatch.setenv("DBHANDLES_HOME", str(home))
    monkeypatch.setenv(variable, raw)
    assert serve_main(["--port", "0"]) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    answer = json.loads(out)
    assert answer["code"] == "invalid_params", answer
    assert answer["error"].startswith(f"configuration: {variable}: {json.dumps(raw)} "), answer
    return str(answer["error"])


def test_the_settings_table_has_every_number_setting() -> None:
    assert {f.name for f in NUMBERS} == set(BOUNDS)
    assert len(NUMBERS) >= 32


@pytest.mark.parametrize("raw", BAD)
@pytest.mark.parametrize("name", [f.name for f in NUMBERS])
def test_jtag_serve_refuses_a_bad_number_naming_the_variable_and_what_it_allows(
    name: str, raw: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """``DBHANDLES_QUERY_TIMEOUT_MS=abc`` answered "invalid literal for int() with base 10: 'abc'"
    (no variable named); a huge value was taken, then answered 500s."""
    error = refused_at_start(env_of(name), raw, tmp_path, monkeypatch, capsys)
    assert " is not allowed: a " in error and "number" in error


@pytest.mark.parametrize("name", [f.name for f in NUMBERS])
def test_zero_is_taken_where_it_means_something_else_refused_at_start(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    if BOUNDS[name].zero is not None:
        assert getattr(Settings.from_env({env_of(name): "0"}), name) == 0
    else:
        error = refused_at_start(env_of(name), "0", tmp_path, monkeypatch, capsys)
        assert "at least" in error or "more than" in error


@pytest.mark.parametrize("name", [f.name for f in NUMBERS])
def test_one_past_the_largest_value_is_refused_naming_the_bound(name: str) -> None:
    top = largest(name)
    raw = str(top + 1) if isinstance(top, int) else f"{top * 1.5:.1f}"
    with pytest.raises(ValueError, match=" is not allowed: ") as caught:
        Settings.from_env({env_of(name): raw})
    assert str(caught.value).startswith(f"{env_of(name)}: ")
    shown = str(top) if isinstance(top, int) or not top.is_integer() else str(int(top))
    assert f"at most {shown}" in str(caught.value)
    pages = {"DBHANDLES_MAX_LIMIT": str(top)} if name in PAGES else {}
    assert getattr(Settings.from_env({env_of(name): str(top), **pages}), name) == top


def test_durations_and_the_query_budget_have_bounds_every_use_takes() -> None:
    seconds = [f.name for f in NUMBERS if f.name.endswith("_seconds")]
    assert seconds and all(BOUNDS[name].maximum == MAX_SECONDS for name in seconds)
    assert BOUNDS["query_timeout_ms"].maximum == MAX_QUERY_TIMEOUT_MS == 2**31 - 1


def test_every_use_takes_every_number_setting_at_its_largest_value(home: Path) -> None:
    """One server with every number setting at its largest value: commands (a SQLite write waits
    for its lock within the query budget; a cursor's expiry; a count; a job; a memory database), a
    WebSocket, and a head and a body still arriving (their deadlines armed) all work."""
    settings = {f.name: largest(f.name) for f in NUMBERS}
    with serving(home, **settings) as (service, served):
        bob, _ = service.tokens.create("bob")
        late_head = connect(served.port)
        late_head.sendall(b"GET /health HTTP/1.1\r\n")
        late_body = connect(served.port)
        late_body.sendall(b"POST /commands/data/list HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"Content-Length: 100\r\n\r\n{")  # fmt: skip
        headers = {"Authorization": f"Bearer {bob}"}
        with httpx.Client(base_url=served.url, headers=headers, timeout=20) as client:

            def run(name: str, params: dict[str, object]) -> dict[str, object]:
                answer = client.post(f"/commands/{name}", json=params)
                assert answer.status_code == 200, (name, answer.text)
                return dict(answer.json())

            assert client.get("/health").status_code == 200
            url = f"ws://127.0.0.1:{served.port}/ws?token={bob}"
            with ws_connect(url, open_timeout=10) as sock:
                assert orjson.loads(sock.recv(timeout=10))["type"] == "hello"
                sock.send(
                    orjson.dumps({"type": "subscribe", "id": 1, "pattern": "data:*"}).decode()
                )
                assert orjson.loads(sock.recv(timeout=10))["type"] == "subscribed"
                run("data/create", {"collection": "c", "data": {"a": 1}})
                assert orjson.loads(sock.recv(timeout=10))["type"] == "event"
            run("data/list", {"collection": "c"})
            run("data/count", {"collection": "c", "groupBy": "a"})
            cursor = run("data/query-open", {"collection": "c"})
            run("data/query-next", {"queryHandle": cursor["queryHandle"]})
            job = run("data/job-start", {"command": "data/export", "params": {
                "dbHandle": "default", "collection": "c", "output": "out.jsonl"}})  # fmt: skip

            def finished() -> bool:
                status = run("data/job-status", {"jobId": job["jobId"]})
                return status["status"] not in ("queued", "running")

            wait_for(finished, "the export job")
            status = run("data/job-status", {"jobId": job["jobId"]})
            assert status["status"] == "done", status.get("error")
            memory = run("data/open", {"adapter": "memory"})
            run("data/create", {"dbHandle": memory["dbHandle"], "collection": "m", "data": {}})
        late_head.close()
        late_body.close()


@pytest.mark.parametrize("name", PAGES)
def test_a_default_page_is_never_past_the_largest_page_a_caller_may_ask_for(
    name: str, home: Path
) -> None:
    """``DBHANDLES_DEFAULT_LIMIT=2**53`` was taken, and every data/count without a limit was
    refused ("limit: at most 500 groups"). A default past ``DBHANDLES_MAX_LIMIT`` is taken as it
    (setting only ``DBHANDLES_MAX_LIMIT=7`` is a server that starts, its default pages 7)."""
    assert getattr(Settings.from_env({env_of(name): str(MAX_NUMBER)}), name) == 500
    assert getattr(Settings.from_env({"DBHANDLES_MAX_LIMIT": "7"}), name) == 7
    with Service(settings=Settings(home=home, **{name: MAX_NUMBER})) as service:
        for i in range(3):
            service.execute("data/create", {"collection": "c", "data": {"a": i}})
        counted = service.execute("data/count", {"collection": "c", "groupBy": "a"})
        assert counted["groupCount"] == 3
        assert len(service.execute("data/list", {"collection": "c"})["items"]) == 3
        cursor = service.execute("data/query-open", {"collection": "c"})
        assert cursor["pageSize"] == (500 if name == "query_page_size" else 100)
