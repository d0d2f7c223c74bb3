"""The original system's call shapes (``context``, ``sessionId``, ``backend``, ``collection`` on
cursors, ``data/open`` without ``adapter``) work unchanged through HTTP and ``jtag``
(docs/compatibility.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import Service
from dbhandles.cli import main
from tests.servers import app_client

#: What the original's dispatcher adds to every call (JTAGContext and the caller's session).
CONTEXT = {"uuid": "0b9d1a56-4b7e-4f0e-9f55-5d8f3c2f7f11", "environment": "server", "config": {}}
SESSION = "7c3e1f0a-2d4b-4c5e-8f9a-0b1c2d3e4f5a"


def shaped(**params: Any) -> dict[str, Any]:
    """Params as the original sends them."""
    return {**params, "context": CONTEXT, "sessionId": SESSION, "backend": "server"}


@pytest.fixture
def client(service: Service) -> Iterator[Any]:
    with app_client(service) as test_client:
        yield test_client


def post(client: Any, name: str, params: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = client.post(f"/commands/{name}", json=params, headers=headers)
    body: dict[str, Any] = response.json()
    assert "Traceback" not in response.text
    return body


def test_original_call_shapes_over_http(client: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "training.sqlite")
    opened = post(client, "data/open", shaped(config={"path": path, "mode": "create"}))
    assert opened["success"] and opened["adapter"] == "sqlite"
    handle = opened["dbHandle"]
    for i in range(12):
        created = post(client, "data/create", shaped(
            dbHandle=handle, collection="training_examples", data={"text": f"t{i}", "i": i}))  # fmt: skip
        assert created["success"], created
    listed = post(client, "data/list", shaped(dbHandle=handle, collection="training_examples",
                                              limit=5, orderBy=[{"field": "i", "direction": "asc"}]))  # fmt: skip
    assert listed["success"] and [r["i"] for r in listed["items"]] == [0, 1, 2, 3, 4]
    # The cursor lives in the session the params name (no X-Session-Id header, as the original).
    cursor = post(client, "data/query-open", shaped(dbHandle=handle, collection="training_examples",
                                                    pageSize=5))  # fmt: skip
    assert cursor["success"] and cursor["totalCount"] == 12
    seen = []
    while True:
        page = post(client, "data/query-next", shaped(
            queryHandle=cursor["queryHandle"], collection="training_examples", dbHandle=handle))  # fmt: skip
        assert page["success"], page
        seen += [r["i"] for r in page["items"]]
        if not page["hasMore"]:
            break
    assert sorted(seen) == list(range(12))
    # Another session cannot see it; the wrong collection is refused by name.
    other = post(client, "data/query-next", {**shaped(queryHandle=cursor["queryHandle"]),
                                             "sessionId": "someone-else"})  # fmt: skip
    assert other["code"] == "cursor_not_found"
    wrong = post(client, "data/query-next", shaped(queryHandle=cursor["queryHandle"],
                                                   collection="users"))  # fmt: skip
    assert wrong["code"] == "invalid_params" and wrong["field"] == "collection"
    closed = post(client, "data/query-close", shaped(queryHandle=cursor["queryHandle"],
                                                     collection="training_examples"))  # fmt: skip
    assert closed["success"] and closed["closed"] is True
    assert post(client, "data/list-handles", shaped())["success"]
    assert post(client, "data/close", shaped(dbHandle=handle))["success"]


def test_session_and_backend_are_checked(client: Any) -> None:
    matching = post(client, "data/list", shaped(collection="users"), **{"X-Session-Id": SESSION})
    assert matching["success"]
    refused = post(client, "data/list", shaped(collection="users"), **{"X-Session-Id": "mine"})
    assert refused["code"] == "session_mismatch" and refused["field"] == "sessionId"
    browser = post(client, "data/list", {**shaped(collection="users"), "backend": "browser"})
    assert browser["code"] == "invalid_params" and browser["field"] == "backend"


def test_original_call_shapes_through_jtag(
    capsys: pytest.CaptureFixture[str], home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBHANDLES_HOME", str(home))
    monkeypatch.delenv("JTAG_URL", raising=False)
    monkeypatch.setenv("JTAG_SESSION_ID", SESSION)  # the caller's session, as its CLI keeps one
    shape = [
        f"--context={orjson.dumps(CONTEXT).decode()}",
        f"--sessionId={SESSION}",
        "--backend=server",
    ]

    def jtag(*argv: str) -> dict[str, Any]:
        code = main([*argv, *shape])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        value: dict[str, Any] = orjson.loads(out or err)
        assert value["success"] is (code == 0)
        return value

    path = str(tmp_path / "cli.sqlite")
    opened = jtag(
        "data/open", f"--config={orjson.dumps({'path': path, 'mode': 'create'}).decode()}"
    )
    handle = opened["dbHandle"]
    assert jtag("data/create", f"--dbHandle={handle}", "--collection=notes",
                '--data={"text": "hello"}')["success"]  # fmt: skip
    cursor = jtag("data/query-open", f"--dbHandle={handle}", "--collection=notes")
    page = jtag("data/query-next", f"--queryHandle={cursor['queryHandle']}", "--collection=notes",
                f"--dbHandle={handle}")  # fmt: skip
    assert [r["text"] for r in page["items"]] == ["hello"]
    assert jtag("data/query-close", f"--queryHandle={cursor['queryHandle']}",
                "--collection=notes")["success"]  # fmt: skip
    counted = jtag("data/count", f"--dbHandle={handle}", "--collection=notes", "--groupBy=text")
    assert counted["groups"] == [{"key": {"text": "hello"}, "count": 1}]
    monkeypatch.setenv("JTAG_SESSION_ID", "another")
    refused = jtag("data/list", f"--dbHandle={handle}", "--collection=notes")
    assert refused["code"] == "session_mismatch"
