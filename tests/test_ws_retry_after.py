"""Issue 13: every 429 of the public rate carries ``Retry-After``, an upgrade's too. An upgrade
with a made-up token id past the rate, refused by ``websocket_endpoint`` (the early refusal of
``server/connections.py`` let it through: a bucket that held a request again by then, or the
in-process app), got its 429 with no ``Retry-After``; so did an upgrade to a host the server does
not answer to, refused before routing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Settings
from dbhandles.server import public
from dbhandles.service import Service
from tests.servers import app_client
from tests.test_ws_refusal_rate import made_up

BURST = 3
#: The least rate the settings take: the bucket does not refill within a test.
RATE = 0.1


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    """An in-process client whose address used up its burst, and a real token's id."""
    monkeypatch.setattr(public, "REFUSAL_PAUSE_SECONDS", 0.0)
    settings = Settings(home=tmp_path / "h", public_rate=RATE, public_burst=BURST)
    with Service(settings=settings) as service, app_client(service, require_token=True) as client:
        known_id = service.tokens.create("bob")[0].split("_")[1]
        for _ in range(BURST):
            assert client.post("/commands/data/list", json={}).status_code == 401
        yield client, known_id


def _refused(client: Any, path: str, headers: dict[str, str] | None = None) -> Any:
    from starlette.testclient import WebSocketDenialResponse

    with (
        pytest.raises(WebSocketDenialResponse) as refused,
        client.websocket_connect(path, headers=dict(headers or {})),
    ):
        pass
    return refused.value


@pytest.mark.parametrize("kind", ["made-up-id", "wrong-secret", "no-token", "malformed"])
def test_an_upgrade_refused_past_the_rate_says_when_to_retry(
    client: tuple[Any, str], kind: str
) -> None:
    http, known_id = client
    path = {
        "made-up-id": f"/ws?token={made_up()}",
        "wrong-secret": f"/ws?token=dbh_{known_id}_{'w' * 43}",
        "no-token": "/ws",
        "malformed": "/ws?token=garbage",
    }[kind]
    answer = _refused(http, path)
    assert answer.status_code == 429 and answer.json()["code"] == "too_many_requests"
    assert int(answer.headers["retry-after"]) >= 1


def test_an_upgrade_from_another_site_past_the_rate_says_when_to_retry(
    client: tuple[Any, str],
) -> None:
    http, _ = client
    answer = _refused(
        http, "/ws", {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    )
    assert answer.status_code == 429 and int(answer.headers["retry-after"]) >= 1


def test_an_upgrade_to_a_host_not_served_past_the_rate_says_when_to_retry(
    client: tuple[Any, str],
) -> None:
    http, _ = client
    answer = _refused(http, "/ws", {"Host": "evil.example"})
    assert answer.status_code == 429 and int(answer.headers["retry-after"]) >= 1


@pytest.mark.parametrize(
    ("wait", "pause", "retry"),
    [(0.0, 1.0, 1), (1.5, 1.0, 1), (2.01, 1.0, 2), (9.2, 0.0, 10), (10.0, 0.0, 10)],
)
def test_retry_after_is_the_wait_past_the_pause_in_whole_seconds(
    monkeypatch: pytest.MonkeyPatch, wait: float, pause: float, retry: int
) -> None:
    """One rule for every 429 of the rate (HTTP, upgrades, the door): the bucket's wait less the
    pause the refusal was sent after, rounded up, at least 1 s."""
    monkeypatch.setattr(public, "REFUSAL_PAUSE_SECONDS", pause)
    assert public.retry_after(wait) == retry
