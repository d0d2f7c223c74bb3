"""PostgreSQL connections the server closed (a restart, a failover, ``idle_session_timeout``, an
administrator's ``pg_terminate_backend``) are replaced before use: no command fails for it, on handles,
on the shared default database or in the event bridge (issue 16, part 2)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from dbhandles import Event, Service, Settings
from dbhandles.adapters.postgres_errors import translate_error
from dbhandles.events.postgres import RESUMED
from tests.pgserver import postgres_config, require_postgres, schema_for

pytestmark = pytest.mark.postgres


def _terminate_everyone_else() -> int:
    """End every other client backend of the test server, as an administrator would."""
    with psycopg.connect(require_postgres().url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
        ).fetchall()
    return len(rows)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    url = f"{require_postgres().url}&schema={schema_for(tmp_path)}_d"
    with Service(settings=Settings(home=tmp_path / "home", default_url=url)) as svc:
        yield svc


def _every_kind(service: Service, handle: str, n: int) -> None:
    """One command of every kind that touches a database, through ``handle``."""
    base = {"dbHandle": handle, "collection": "c"}
    service.execute("data/create", {**base, "id": f"r{n}", "data": {"n": n}})
    assert service.execute("data/read", {**base, "id": f"r{n}"})["found"]
    service.execute("data/update", {**base, "id": f"r{n}", "data": {"n": -n}})
    assert service.execute("data/list", {**base, "filter": {"n": -n}})["count"] == 1
    cursor = service.execute("data/query-open", base)["queryHandle"]
    service.execute("data/query-next", {"queryHandle": cursor})
    service.execute("data/query-close", {"queryHandle": cursor})
    service.execute("data/batch", {"dbHandle": handle, "operations": [
        {"op": "create", "collection": "c", "id": f"b{n}", "data": {}},
        {"op": "delete", "collection": "c", "id": f"b{n}"},
    ]})  # fmt: skip
    service.execute("data/schema", {"dbHandle": handle})
    service.execute("data/delete", {**base, "id": f"r{n}"})
    service.execute("data/list-handles")


def test_every_command_succeeds_after_the_server_ends_every_connection(
    service: Service, tmp_path: Path
) -> None:
    handle = service.execute(
        "data/open", {"adapter": "postgres", "config": postgres_config(tmp_path, poolSize=4)}
    )["dbHandle"]
    for target in (handle, "default"):
        _every_kind(service, target, 0)  # pools warm, several connections each
    for round_ in range(1, 21):
        assert _terminate_everyone_else() > 0
        for target in (handle, "default"):
            _every_kind(service, target, round_)
    service.audit.flush()
    rows = service.execute("data/audit", {"limit": 10_000})["entries"]
    assert not [r for r in rows if r["code"] is not None], "a command failed"


def test_the_event_bridge_resumes_and_says_events_may_be_missed(service: Service) -> None:
    seen: list[Event] = []
    got = threading.Event()

    def remember(event: Event) -> None:
        seen.append(event)
        got.set()

    with service.events.subscribe(RESUMED, remember):
        _terminate_everyone_else()
        assert got.wait(20), "the listener did not come back"
    assert seen[0].payload["mayHaveMissed"] is True
    # Sending works again too, without a failed publish: a write's event goes out.
    service.execute("data/create", {"collection": "c", "data": {}})


def test_a_lost_connection_is_not_called_unreachable() -> None:
    lost = psycopg.OperationalError(
        "server closed the connection unexpectedly\n\tThis probably means the server terminated"
    )
    refused = psycopg.OperationalError(
        'connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused'
    )
    assert "was lost" in translate_error(lost, where="db").message
    assert "cannot reach" in translate_error(refused, where="db").message


def test_an_unreachable_server_is_reported_quickly(tmp_path: Path) -> None:
    with Service(home=tmp_path / "home") as service:
        started = time.monotonic()
        envelope = service.dispatch(
            "data/open",
            {"adapter": "postgres", "config": {"url": "postgresql://u@127.0.0.1:1/db",
                                               "connectTimeout": 2}},
        )  # fmt: skip
        assert time.monotonic() - started < 30  # a bound, not a speed check
    assert envelope["code"] == "storage_error" and "cannot reach" in envelope["error"]
