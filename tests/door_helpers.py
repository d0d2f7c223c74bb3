"""One call through each door of the service, for the tests that compare the doors' answers:
``jtag`` in this process, and the HTTP and WebSocket doors of an in-process app client
(``tests.servers.app_client``) given the params as JSON text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import Service
from dbhandles.cli import main
from dbhandles.values import read_json


def cli_home(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Make ``jtag`` in this process run in-process on ``home``: no ``JTAG_URL``, ``JTAG_TOKEN``
    or ``JTAG_SESSION_ID`` from the environment."""
    for name in ("JTAG_URL", "JTAG_TOKEN", "JTAG_SESSION_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DBHANDLES_HOME", str(home))


def jtag_envelope(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], home: Path, *argv: str,
    **env: str,
) -> dict[str, Any]:  # fmt: skip
    """``jtag argv`` in this process on ``home`` (against ``JTAG_URL`` if ``env`` gives one, with
    the other ``env`` variables set): the envelope it prints."""
    cli_home(monkeypatch, home)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    main(list(argv))
    envelope = orjson.loads(capsys.readouterr().out)
    assert isinstance(envelope, dict)
    return envelope


def http_envelope(client: Any, command: str, text: str) -> Any:
    """The HTTP door's envelope for ``command`` with the params ``text`` (JSON, sent as is)."""
    return client.post(
        f"/commands/{command}", content=text.encode(), headers={"content-type": "application/json"}
    ).json()


def ws_envelope(client: Any, command: str, text: str) -> Any:
    """The WebSocket door's envelope for ``command`` with the params ``text`` (JSON, sent as is):
    the ``result`` of the response to the request, past the ``hello`` and any event."""
    with client.websocket_connect("/ws") as socket:
        socket.receive_json()  # hello
        socket.send_text(
            f'{{"type": "request", "id": 1, "command": "{command}", "params": {text}}}'
        )
        message = socket.receive_json()
        while message["type"] != "response":
            message = socket.receive_json()
        return message["result"]


def door_envelope(door: str, service: Service, client: Any, command: str, text: str) -> Any:
    """The envelope ``door`` answers ``command`` with the params ``text`` (JSON) with:
    ``"in-process"`` (``service.dispatch`` of the text as the service reads it), ``"http"`` or
    ``"ws"`` (``client``, an app client on ``service``).

    Raises:
        ValueError: another door.
    """
    if door == "in-process":
        return service.dispatch(command, read_json(text))
    if door == "http":
        return http_envelope(client, command, text)
    if door == "ws":
        return ws_envelope(client, command, text)
    raise ValueError(f"no such door: {door!r}")
