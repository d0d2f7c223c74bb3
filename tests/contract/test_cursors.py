"""Contract: query-open / query-next / query-close keyset cursors on every adapter."""

from __future__ import annotations

import threading

import pytest

from dbhandles import CursorNotFound, Service


@pytest.fixture
def rows(service: Service, db: str) -> str:
    ops = [
        {"op": "create", "collection": "rows", "id": f"r{i:03d}", "data": {"n": i % 7}}
        for i in range(250)
    ]
    service.execute("data/batch", {"dbHandle": db, "operations": ops})
    return db


def test_cursor_pages_through_everything_then_returns_empty_pages(
    service: Service, rows: str
) -> None:
    opened = service.execute(
        "data/query-open",
        {"dbHandle": rows, "collection": "rows", "orderBy": ["n"], "pageSize": 100},
    )
    assert opened["totalCount"] == 250 and opened["pageSize"] == 100
    handle = opened["queryHandle"]
    seen: list[str] = []
    pages = []
    while True:
        page = service.execute("data/query-next", {"queryHandle": handle})
        pages.append((page["pageNumber"], len(page["items"]), page["hasMore"]))
        seen += [i["id"] for i in page["items"]]
        if not page["hasMore"]:
            break
    assert pages == [(0, 100, True), (1, 100, True), (2, 50, False)]
    assert sorted(seen) == sorted(f"r{i:03d}" for i in range(250))
    assert len(set(seen)) == 250
    after_end = service.execute("data/query-next", {"queryHandle": handle})
    assert (
        after_end["success"] is True and after_end["items"] == [] and after_end["hasMore"] is False
    )
    assert service.execute("data/query-close", {"queryHandle": handle})["closed"] is True
    assert service.execute("data/query-close", {"queryHandle": handle})["closed"] is False
    with pytest.raises(CursorNotFound):
        service.execute("data/query-next", {"queryHandle": handle})


def test_cursor_default_order_is_newest_first(service: Service, rows: str) -> None:
    handle = service.execute(
        "data/query-open", {"dbHandle": rows, "collection": "rows", "pageSize": 5}
    )["queryHandle"]
    items = service.execute("data/query-next", {"queryHandle": handle})["items"]
    stamps = [i["createdAt"] for i in items]
    assert stamps == sorted(stamps, reverse=True)


def test_cursor_with_filter_and_projection(service: Service, rows: str) -> None:
    handle = service.execute(
        "data/query-open",
        {
            "dbHandle": rows,
            "collection": "rows",
            "filter": {"n": 3},
            "fields": ["n"],
            "orderBy": ["id"],
        },
    )
    page = service.execute("data/query-next", {"queryHandle": handle["queryHandle"]})
    assert handle["totalCount"] == len(page["items"]) == 36
    assert set(page["items"][0]) == {"id", "n"}


def test_concurrent_next_calls_get_distinct_pages(service: Service, rows: str) -> None:
    handle = service.execute(
        "data/query-open",
        {"dbHandle": rows, "collection": "rows", "orderBy": ["id"], "pageSize": 10},
    )["queryHandle"]
    got: list[tuple[int, list[str]]] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(4):
            page = service.execute("data/query-next", {"queryHandle": handle})
            with lock:
                got.append((page["pageNumber"], [i["id"] for i in page["items"]]))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    served = [p for p in got if p[1]]
    assert sorted(n for n, _ in served) == list(range(25))
    all_ids = [i for _, page in served for i in page]
    assert sorted(all_ids) == sorted(f"r{i:03d}" for i in range(250))


def test_closing_the_handle_closes_its_cursors(service: Service, rows: str) -> None:
    handle = service.execute("data/query-open", {"dbHandle": rows, "collection": "rows"})[
        "queryHandle"
    ]
    service.execute("data/close", {"dbHandle": rows})
    with pytest.raises(CursorNotFound):
        service.execute("data/query-next", {"queryHandle": handle})


def test_unknown_cursor_is_cursor_not_found(service: Service) -> None:
    envelope = service.dispatch("data/query-next", {"queryHandle": "nope"})
    assert envelope["code"] == "cursor_not_found"


def test_idle_cursor_expires(service: Service, rows: str, monkeypatch: pytest.MonkeyPatch) -> None:
    handle = service.execute("data/query-open", {"dbHandle": rows, "collection": "rows"})[
        "queryHandle"
    ]
    import dbhandles.query_cursors as query_cursors

    real = query_cursors.now_ms
    monkeypatch.setattr(query_cursors, "now_ms", lambda: real() + 10 * 60 * 1000)
    with pytest.raises(CursorNotFound, match="expired"):
        service.execute("data/query-next", {"queryHandle": handle})
