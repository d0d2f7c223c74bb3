"""PostgreSQL as the default database: two services (as two processes would) share handles and events."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dbhandles import Event, InvalidConfig, Service, Settings
from dbhandles.events.postgres import MAX_NOTIFY_BYTES
from tests.pgserver import require_postgres, schema_for

pytestmark = pytest.mark.postgres


@pytest.fixture
def default_url(tmp_path: Path) -> str:
    if "default_url" not in Settings.__dataclass_fields__:
        pytest.fail(
            "Settings.default_url is missing: apply the PostgreSQL-default wiring (pgdefault.py)"
        )
    return f"{require_postgres().url}&schema={schema_for(tmp_path)}"


@pytest.fixture
def pair(tmp_path: Path, default_url: str) -> Iterator[tuple[Service, Service]]:
    first = Service(settings=Settings(home=tmp_path / "a", default_url=default_url))
    second = Service(settings=Settings(home=tmp_path / "b", default_url=default_url))
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_settings_read_the_default_url_and_never_show_it(tmp_path: Path, default_url: str) -> None:
    settings = Settings.from_env(
        {"DBHANDLES_DEFAULT_URL": "postgresql://u:pw@h/db", "DBHANDLES_HOME": "/x"}
    )
    assert settings.default_url == "postgresql://u:pw@h/db"
    assert "pw" not in repr(settings)
    with pytest.raises(InvalidConfig, match="DBHANDLES_DEFAULT_URL"):
        Service(settings=Settings(home=tmp_path, default_url="mysql://u:pw@h/db"))


def test_the_default_handle_lives_on_postgres(pair: tuple[Service, Service]) -> None:
    a, b = pair
    default = a.execute("data/list-handles")["handles"][0]
    assert default["handle"] == "default" and default["adapter"] == "postgres"
    a.execute("data/create", {"collection": "notes", "id": "n", "data": {"t": 1}})
    assert b.execute("data/read", {"collection": "notes", "id": "n"})["data"]["t"] == 1


def test_handles_aliases_and_cursors_are_shared(
    pair: tuple[Service, Service], tmp_path: Path
) -> None:
    a, b = pair
    path = str(tmp_path / "shared.sqlite")  # one host here, so both may use the file
    handle = a.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": path, "mode": "create"}, "alias": "s"}
    )
    ops = [{"op": "create", "collection": "rows", "id": f"r{i:02d}", "data": {}} for i in range(10)]
    b.execute("data/batch", {"dbHandle": "s", "operations": ops})
    cursor = a.execute("data/query-open", {"dbHandle": handle["dbHandle"], "collection": "rows",
                                           "orderBy": ["id"], "pageSize": 3})["queryHandle"]  # fmt: skip
    pages = [(a, b)[i % 2].execute("data/query-next", {"queryHandle": cursor}) for i in range(5)]
    assert [p["pageNumber"] for p in pages[:4]] == [0, 1, 2, 3]
    assert [i["id"] for p in pages for i in p["items"]] == [f"r{i:02d}" for i in range(10)]
    b.execute("data/close", {"dbHandle": "s"})
    assert not a.registry.is_open(handle["dbHandle"])


def test_events_cross_between_services_once_each(pair: tuple[Service, Service]) -> None:
    a, b = pair
    seen_a: list[Event] = []
    seen_b: list[Event] = []
    a.events.subscribe("data:*", seen_a.append)
    b.events.subscribe("data:*", seen_b.append)
    a.execute("data/create", {"collection": "notes", "id": "small", "data": {"t": "x"}})
    big = "y" * (MAX_NOTIFY_BYTES * 2)
    b.execute("data/create", {"collection": "notes", "id": "big", "data": {"t": big}})
    _wait(lambda: len(seen_a) == 2 and len(seen_b) == 2)
    time.sleep(0.3)  # nothing echoes back
    assert [e.payload["id"] for e in seen_a] == ["small", "big"]
    assert sorted(e.payload["id"] for e in seen_b) == ["big", "small"]
    assert next(e for e in seen_a if e.payload["id"] == "big").payload["record"]["t"] == big


def test_events_from_many_threads_all_arrive(pair: tuple[Service, Service]) -> None:
    a, b = pair
    seen: list[str] = []
    lock = threading.Lock()

    def collect(event: Event) -> None:
        with lock:
            seen.append(event.payload["id"])

    b.events.subscribe("data:load:created", collect)

    def write(start: int) -> None:
        for i in range(start, start + 20):
            a.execute("data/create", {"collection": "load", "id": f"i{i:03d}", "data": {}})

    threads = [threading.Thread(target=write, args=(n * 20,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _wait(lambda: len(seen) == 80)
    assert sorted(seen) == [f"i{i:03d}" for i in range(80)]


def test_without_psycopg_the_default_url_says_which_extra(tmp_path: Path, default_url: str) -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from dbhandles import Service, Settings, DriverMissing\n"
        "try:\n"
        f"    Service(settings=Settings(home={str(tmp_path)!r}, default_url={default_url!r}))\n"
        "except DriverMissing as exc:\n"
        "    print('driver_missing', exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.stdout.startswith("driver_missing"), out.stderr
    assert "pip install 'dbhandles[postgres]'" in out.stdout
