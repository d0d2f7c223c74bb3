"""QueryCursors, the one owner of query cursors: expiry (at start, on cursor commands, on a timer, at
close), closing with the handle, and a hammer test that opens, pages, closes, ends sessions and closes
handles from 8 threads at once."""

from __future__ import annotations

import itertools
import random
import threading
import time
from pathlib import Path

import pytest

from dbhandles import CursorNotFound, HandleNotFound, Service, Settings
from dbhandles.context import Context
from dbhandles.filters import parse_order_by
from dbhandles.query_cursors import QueryCursors
from dbhandles.registry import HandleEntry

RECORDS = 20
IDS = {f"r{i:02d}" for i in range(RECORDS)}


def _handle(service: Service, kind: str, path: Path) -> str:
    config = {} if kind == "memory" else {"path": str(path), "mode": "create"}
    handle = str(service.execute("data/open", {"adapter": kind, "config": config})["dbHandle"])
    ops = [
        {"op": "create", "collection": "rows", "id": f"r{i:02d}", "data": {"n": i}}
        for i in range(RECORDS)
    ]
    service.execute("data/batch", {"dbHandle": handle, "operations": ops})
    return handle


def _open(service: Service, handle: str, context: Context | None = None) -> str:
    return str(
        service.execute(
            "data/query-open",
            {"dbHandle": handle, "collection": "rows", "orderBy": ["id"], "pageSize": 3},
            context=context,
        )["queryHandle"]
    )


def _next(service: Service, cursor: str, context: Context | None = None) -> list[str]:
    page = service.execute("data/query-next", {"queryHandle": cursor}, context=context)
    return [item["id"] for item in page["items"]]


# -- closing a handle closes its cursors -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@pytest.mark.parametrize("how", ["data/close", "registry.close"])
def test_closing_a_handle_closes_its_cursors(
    service: Service, tmp_path: Path, kind: str, how: str
) -> None:
    handle = _handle(service, kind, tmp_path / "db.sqlite")
    other = _handle(service, kind, tmp_path / "other.sqlite")
    cursor, kept = _open(service, handle), _open(service, other)
    assert _next(service, cursor) == ["r00", "r01", "r02"]
    if kind == "memory":
        assert {row.cursor_id for row in service.cursors.in_process()} == {cursor, kept}
    else:
        assert service.registry.store.get_cursor(cursor) is not None
    if how == "data/close":
        service.execute("data/close", {"dbHandle": handle})
    else:
        service.registry.close(handle)  # the Python API keeps the docstring's promise too
    assert service.registry.store.get_cursor(cursor) is None
    assert cursor not in {row.cursor_id for row in service.cursors.in_process()}
    with pytest.raises(CursorNotFound):
        _next(service, cursor)
    assert _next(service, kept) == ["r00", "r01", "r02"]  # another handle's cursor is untouched


def test_session_end_and_close_are_idempotent(service: Service, tmp_path: Path) -> None:
    alice = Context(session_id="alice")
    handles = [_handle(service, k, tmp_path / "db.sqlite") for k in ("memory", "sqlite")]
    cursors = [_open(service, h, alice) for h in handles]
    assert service.cursors.close(cursors[0], "bob") is False  # another session's: invisible
    assert service.cursors.close(cursors[0], "alice") is True
    assert service.cursors.close(cursors[0], "alice") is False
    assert service.end_session("alice") == 1
    assert service.end_session("alice") == 0
    assert service.cursors.in_process() == []


# -- closes racing next and open (made deterministic: the close runs inside the call) ----------------


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@pytest.mark.parametrize("closer", ["query-close", "session-end", "handle-close"])
def test_a_cursor_closed_while_its_page_is_read_stays_closed(
    service: Service, tmp_path: Path, kind: str, closer: str
) -> None:
    handle = _handle(service, kind, tmp_path / "db.sqlite")
    cursor = _open(service, handle, Context(session_id="s"))

    def close_meanwhile(entry: HandleEntry) -> None:  # runs after the cursor was read, mid-next
        if closer == "query-close":
            assert service.cursors.close(cursor, "s") is True
        elif closer == "session-end":
            assert service.cursors.end_session("s") == 1
        else:
            service.registry.close(handle)

    with pytest.raises(CursorNotFound):
        service.cursors.next(cursor, "s", authorize=close_meanwhile)
    assert service.cursors.in_process() == []  # the page served meanwhile did not bring it back
    assert service.registry.store.get_cursor(cursor) is None


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_cursor_opened_on_a_handle_closed_meanwhile_is_not_kept(
    service: Service, tmp_path: Path, kind: str
) -> None:
    handle = _handle(service, kind, tmp_path / "db.sqlite")
    entry = service.registry.resolve(handle)
    service.registry.close(handle)  # after query-open resolved it, before the cursor exists
    with pytest.raises(HandleNotFound):
        service.cursors.open(
            entry, "rows", filter=None, order=parse_order_by("id"), fields=None, page_size=3,
            total_count=RECORDS, session_id=None,
        )  # fmt: skip
    assert service.cursors.in_process() == []
    assert service.cursors.expire(now=2**62) == 0  # and no row is left in the store either


# -- expiry --------------------------------------------------------------------------------------


def test_idle_cursors_expire_in_process_and_in_the_store(service: Service, tmp_path: Path) -> None:
    now = [1_000_000_000]
    service.cursors.clock = lambda: now[0]
    ttl = service.cursors.ttl_ms
    memory = _handle(service, "memory", tmp_path)
    sqlite = _handle(service, "sqlite", tmp_path / "db.sqlite")
    idle = [_open(service, memory), _open(service, sqlite)]
    busy = [_open(service, memory), _open(service, sqlite)]
    for _ in range(3):  # a cursor in use stays open: each page restarts its idle time
        now[0] += ttl - 1
        for cursor in busy:
            assert _next(service, cursor)
    assert service.cursors.expire() == 2
    for cursor in idle:
        assert service.registry.store.get_cursor(cursor) is None
        with pytest.raises(CursorNotFound):
            _next(service, cursor)
    assert len(service.cursors.in_process()) == 1

    # Opening a cursor sweeps the idle ones, in this process and in the store.
    now[0] += ttl + 1
    fresh = _open(service, memory)
    assert [row.cursor_id for row in service.cursors.in_process()] == [fresh]
    assert service.registry.store.get_cursor(busy[1]) is None
    with pytest.raises(CursorNotFound, match="no open query"):
        _next(service, busy[0])


def test_an_expired_cursor_is_reported_as_expired(service: Service, tmp_path: Path) -> None:
    now = [1_000_000_000]
    service.cursors.clock = lambda: now[0]
    cursor = _open(service, _handle(service, "memory", tmp_path))
    now[0] += service.cursors.ttl_ms + 1
    with pytest.raises(CursorNotFound, match="expired"):
        _next(service, cursor)
    assert service.cursors.in_process() == []


# -- expiry without a query-open (the in-process CLI and Python API have no server timer) ----------


def test_rows_an_ended_process_left_expire_when_the_next_service_starts(home: Path) -> None:
    with Service(settings=Settings(home=home)) as first:
        first.cursors.clock = lambda: 1_000  # its cursors expire long before the real "now"
        cursor = _open(first, "default")
        assert first.registry.store.get_cursor(cursor) is not None
    with Service(settings=Settings(home=home)) as second:
        assert second.registry.store.get_cursor(cursor) is None


def test_expired_cursors_are_deleted_when_the_service_closes(
    service: Service, tmp_path: Path
) -> None:
    now = [1_000_000_000]
    service.cursors.clock = lambda: now[0]
    cursors = [_open(service, "default"), _open(service, _handle(service, "memory", tmp_path))]
    now[0] += service.cursors.ttl_ms + 1
    service.cursors.stop()  # what Service.close runs first
    assert service.registry.store.get_cursor(cursors[0]) is None
    assert service.cursors.in_process() == []
    service.cursors.stop()  # idempotent


def test_expired_cursors_are_deleted_on_a_timer_without_any_command(home: Path) -> None:
    with Service(settings=Settings(home=home, cursor_ttl_seconds=0.2)) as service:
        durable = _open(service, "default")
        memory = _open(service, _handle(service, "memory", home.parent))
        deadline = time.monotonic() + 10
        while service.registry.store.get_cursor(durable) or service.cursors.in_process():
            assert time.monotonic() < deadline, "idle cursors were never deleted"
            time.sleep(0.02)
        with pytest.raises(CursorNotFound, match="no open query"):  # gone, not merely expired
            _next(service, memory)


def test_every_cursor_command_sweeps_at_most_once_per_interval(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cursor = _open(service, _handle(service, "memory", tmp_path))
    calls: list[bool] = []
    original = QueryCursors.reap

    def counting(self: QueryCursors, *, force: bool = False) -> int:
        calls.append(force)
        return original(self, force=force)

    monkeypatch.setattr(QueryCursors, "reap", counting)
    for command in (lambda: _next(service, cursor),
                    lambda: service.execute("data/query-close", {"queryHandle": "unknown"}),
                    lambda: service.cursors.get(cursor, None)):  # fmt: skip
        before = len(calls)
        command()
        assert len(calls) > before
    assert not any(calls)  # never forced: each asks, and sweeps only if the interval passed
    # Rate-limited: right after a sweep, another finds nothing to do even with expired cursors.
    now = [service.cursors.clock() + service.cursors.ttl_ms + 1]
    service.cursors.clock = lambda: now[0]
    assert original(service.cursors, force=True) == 1
    _open(service, "default")
    now[0] += service.cursors.ttl_ms + 1
    assert original(service.cursors) == 0
    assert original(service.cursors, force=True) == 1


# -- the hammer -------------------------------------------------------------------------------------


THREADS = 8
STEPS = 120
#: Documented outcomes of racing a close: the cursor or its handle is gone.
EXPECTED = (CursorNotFound, HandleNotFound)


def test_hammer_from_threads(service: Service, tmp_path: Path) -> None:
    kinds = ["memory", "sqlite", "memory", "sqlite"]
    paths = itertools.count()
    lock = threading.Lock()

    def fresh(kind: str) -> str:
        with lock:
            path = tmp_path / f"db{next(paths)}.sqlite"
        return _handle(service, kind, path)

    pool = [fresh(kind) for kind in kinds]  # slot -> open handle
    closed_handles: set[str] = set()
    cursors: list[tuple[str, Context]] = []  # every cursor opened, with the session that owns it
    cursor_handle: dict[str, str] = {}
    seen: dict[str, list[str]] = {}  # cursor -> every record id it served
    pages: dict[str, list[int]] = {}  # cursor -> the numbers of the non-empty pages it served
    unexpected: list[BaseException] = []
    shared = Context(session_id="shared")

    def step(rng: random.Random, own: Context) -> None:
        roll = rng.random()
        if roll < 0.25 or not cursors:
            with lock:
                slot = rng.randrange(len(pool))
                handle = pool[slot]
            context = shared if rng.random() < 0.5 else own
            cursor = _open(service, handle, context)
            with lock:
                cursors.append((cursor, context))
                cursor_handle[cursor] = handle
        elif roll < 0.70:
            with lock:
                cursor, context = rng.choice(cursors)
            page = service.execute("data/query-next", {"queryHandle": cursor}, context=context)
            ids = [item["id"] for item in page["items"]]
            with lock:
                seen.setdefault(cursor, []).extend(ids)
                if ids:
                    pages.setdefault(cursor, []).append(page["pageNumber"])
        elif roll < 0.80:
            with lock:
                cursor, context = rng.choice(cursors)
            service.execute("data/query-close", {"queryHandle": cursor}, context=context)
        elif roll < 0.85:
            context = shared if rng.random() < 0.2 else own
            service.execute("session/end", {}, context=context)
        elif roll < 0.90:
            service.cursors.expire()
            assert all(row.handle for row in service.cursors.in_process())
        else:
            with lock:
                slot = rng.randrange(len(pool))
                handle = pool[slot]
            service.execute("data/close", {"dbHandle": handle})
            with lock:
                closed_handles.add(handle)
            replacement = fresh(kinds[slot])
            with lock:
                if pool[slot] == handle:
                    pool[slot] = replacement

    def worker(n: int) -> None:
        rng = random.Random(n)
        own = Context(session_id=f"thread-{n}")
        for _ in range(STEPS):
            try:
                step(rng, own)
            except EXPECTED:
                continue
            except BaseException as exc:
                unexpected.append(exc)
                return

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert unexpected == []
    assert pages, "no page was served at all"

    # Concurrent next calls got distinct pages: no record twice, no page number twice, per cursor.
    for cursor, ids in seen.items():
        assert len(ids) == len(set(ids)), (cursor, ids)
        assert set(ids) <= IDS
    for cursor, numbers in pages.items():
        assert len(numbers) == len(set(numbers)), (cursor, numbers)

    # Closed handles kept no cursor, in this process or in the store.
    assert not {row.handle for row in service.cursors.in_process()} & closed_handles
    for cursor, handle in cursor_handle.items():
        if handle in closed_handles:
            assert service.registry.store.get_cursor(cursor) is None

    # Closing the handles still open leaves no cursor anywhere.
    for handle in pool:
        service.execute("data/close", {"dbHandle": handle})
    assert service.cursors.in_process() == []
    for cursor, context in cursors:
        assert service.registry.store.get_cursor(cursor) is None
        with pytest.raises(CursorNotFound):
            _next(service, cursor, context)


# -- the per-actor limit ---------------------------------------------------------------------------

LIMITED = Context(actor="bob", is_admin=False, session_id=None, trusted_local=False)


def _race_opens(services: list[Service], handles: list[str | None], threads: int) -> list[dict]:
    """``threads`` threads, each opening 6 cursors at once through ``services`` and ``handles``
    in turn (``None``: the default database); every answer."""
    answers: list[dict] = []
    start = threading.Barrier(threads)

    def run(i: int) -> None:
        service, handle = services[i % len(services)], handles[i % len(handles)]
        params: dict = {"collection": "rows"} | ({"dbHandle": handle} if handle else {})
        start.wait()
        for _ in range(6):
            answers.append(service.dispatch("data/query-open", params, context=LIMITED))

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return answers


def test_the_cursor_limit_holds_exactly_under_racing_opens_in_two_services(home: Path) -> None:
    """Two services on one home (as ``jtag serve --workers=2``): the store counts and inserts in
    one write transaction, so racing opens never overshoot."""
    settings = Settings(home=home, max_cursors_per_actor=10)
    with Service(settings=settings) as first, Service(settings=settings) as second:
        first.execute("data/create", {"collection": "rows", "data": {"n": 1}})
        answers = _race_opens([first, second], [None], threads=12)
        opened = [a for a in answers if "queryHandle" in a]
        assert len(opened) == 10
        assert {a["code"] for a in answers if "queryHandle" not in a} == {"too_many_requests"}
        assert first.registry.store.count_cursors("bob", 0) == 10
        # Closing one makes room for exactly one, in either service.
        first.execute(
            "data/query-close", {"queryHandle": opened[0]["queryHandle"]}, context=LIMITED
        )
        again = _race_opens([second, first], [None], threads=4)
        assert sum("queryHandle" in a for a in again) == 1


def test_the_cursor_limit_counts_memory_and_durable_cursors_together(
    home: Path, tmp_path: Path
) -> None:
    with Service(settings=Settings(home=home, max_cursors_per_actor=7)) as service:
        memory = _handle(service, "memory", tmp_path / "unused")
        service.execute("data/create", {"collection": "rows", "data": {"n": 1}})
        answers = _race_opens([service], [memory, None], threads=8)
        assert sum("queryHandle" in a for a in answers) == 7
        in_process = len(service.cursors.in_process())
        assert in_process + service.registry.store.count_cursors("bob", 0) == 7
        # An administrator is not counted, and bob's expired cursors no longer count.
        assert "queryHandle" in service.dispatch("data/query-open", {"collection": "rows"})
        service.cursors.clock = lambda: 2**62
        assert "queryHandle" in service.dispatch(
            "data/query-open", {"collection": "rows"}, context=LIMITED
        )


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_stores_racing_capped_inserts_never_overshoot(kind: str, tmp_path: Path) -> None:
    """The store's count-and-insert (SQLite ``BEGIN IMMEDIATE``; PostgreSQL an advisory lock in the
    transaction), from two stores on one home as two processes would hold them."""
    from dbhandles.store import CursorRow, HandleStore, SqliteHandleStore

    def make() -> HandleStore:
        if kind == "sqlite":
            return SqliteHandleStore(tmp_path / "default.sqlite")
        from dbhandles.adapters.postgres import PostgresAdapter
        from dbhandles.adapters.postgres_config import PostgresConfig
        from dbhandles.store.postgres import PostgresHandleStore
        from tests.pgserver import postgres_config

        config = PostgresAdapter.parse_config(postgres_config(tmp_path))
        assert isinstance(config, PostgresConfig)
        return PostgresHandleStore(config)

    stores = [make(), make()]
    try:
        inserted: list[bool] = []
        start = threading.Barrier(8)

        def run(i: int) -> None:
            start.wait()
            for j in range(5):
                row = CursorRow(f"q{i}-{j}", "h", "c", {"filter": None, "orderBy": []}, None, 0, 0,
                                10, False, None, 10**13, owner="bob")  # fmt: skip
                inserted.append(stores[i % 2].put_cursor(row, room=10, now_ms=1))

        workers = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert inserted.count(True) == 10
        assert stores[1].count_cursors("bob", 1) == 10
        assert stores[0].count_cursors("bob", 10**13 + 1) == 0  # expired rows do not count
        assert stores[0].count_cursors("alice", 1) == 0
    finally:
        for store in stores:
            store.close()
