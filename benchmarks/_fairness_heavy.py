"""Issue 13's CPU-heavy loads for ``benchmarks/fairness.py``: a 1,300-value ``$in`` over a
300,000-record memory handle (``big-in``), 10 MB pages of 200 x 50 KB records (``heavy-pages``), and
a flood of small authenticated ``data/list`` on 400 connections (``authenticated-flood``).

Each is a load of one actor (``noisy``, not an admin) driven by ``wrk`` while ``measure`` takes the
reader's window; each returns ``measure``'s result with what the load got done (its requests and
their p50, in ms) in the row's note.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from _wrk import lua_script, wrk

__all__ = ["load_authenticated_flood", "load_big_in", "load_heavy_pages"]

#: Records of the memory handle of ``big-in``, and values of its ``$in`` (as the tester's: 65 KB).
RECORDS, IN_VALUES = 300_000, 1_300


def _tag(i: int) -> str:
    return f"tag-{i:07d}-" + "x" * 34  # 46: 1,300 make a 64 KB filter (cursors: 65,536)


def _run(server: Any, loaders: list[tuple[str, Path, int]], seconds: float,
         measure: Callable[[], dict[str, float]]) -> tuple[dict[str, float], list[dict[str, float]]]:  # fmt: skip
    """``measure`` while each ``(url, script, connections)`` runs with ``wrk`` a second longer."""
    done: list[dict[str, float]] = [{} for _ in loaders]
    threads = [
        threading.Thread(target=lambda i=i, u=u, s=s, c=c: done[i].update(wrk(u, s, seconds + 1, c)),
                         daemon=True)
        for i, (u, s, c) in enumerate(loaders)
    ]  # fmt: skip
    for thread in threads:
        thread.start()
    result = measure()
    for thread in threads:
        thread.join(seconds + 120)
    return result, done


def _said(name: str, r: dict[str, float]) -> str:
    return f"{name} {r.get('requests', 0):.0f} done (p50 {r.get('p50', 0):.0f} ms)"


def load_big_in(server: Any, work: Path, noisy: str, seconds: float,
                measure: Callable[[], dict[str, float]]) -> dict[str, Any]:  # fmt: skip
    """``data/list`` and ``data/query-open`` (one connection each) with a 65 KB ``$in`` of 1,300
    values on a memory handle of 300,000 records."""
    handle = server.call(noisy, "data/open", {"adapter": "memory", "config": {}})["dbHandle"]
    for start in range(0, RECORDS, 10_000):
        ops = [{"op": "create", "collection": "c", "data": {"tag": _tag(i), "n": i}}
               for i in range(start, start + 10_000)]  # fmt: skip
        server.call(noisy, "data/batch", {"dbHandle": handle, "operations": ops,
                                          "suppressEvents": True}, timeout=300)  # fmt: skip
    wanted = {"tag": {"$in": [_tag(i * (RECORDS // IN_VALUES)) for i in range(IN_VALUES)]}}
    body = {"dbHandle": handle, "collection": "c", "filter": wanted}
    lister = lua_script(work, "big-in-list", noisy, orjson.dumps(body))
    # Cursors are closed when they expire; 30 stay under the actor's 64.
    opener = lua_script(work, "big-in-open", noisy, orjson.dumps(body), limit=30)
    result, (listed, opened) = _run(server, [
        (f"{server.url}/commands/data/list", lister, 1),
        (f"{server.url}/commands/data/query-open", opener, 1),
    ], seconds, measure)  # fmt: skip
    filter_kb = len(orjson.dumps(wanted)) / 1000
    return {**result, "note": f"{RECORDS:,} records, a {filter_kb:.0f} KB $in of {IN_VALUES:,} values: "
                              f"{_said('data/list', listed)}, {_said('query-open', opened)}"}  # fmt: skip


def load_heavy_pages(server: Any, work: Path, noisy: str, seconds: float,
                     measure: Callable[[], dict[str, float]]) -> dict[str, Any]:  # fmt: skip
    """``data/list`` of 200 records of 50 KB (10 MB answers) on two connections, default database."""
    for _ in range(10):
        ops = [{"op": "create", "collection": "pages", "data": {"text": "p" * 50_000}}
               for _ in range(20)]  # fmt: skip
        server.call(noisy, "data/batch", {"operations": ops, "suppressEvents": True})
    script = lua_script(work, "heavy-pages", noisy,
                        orjson.dumps({"collection": "pages", "limit": 200}))  # fmt: skip
    result, (pages,) = _run(server, [(f"{server.url}/commands/data/list", script, 2)], seconds,
                            measure)  # fmt: skip
    return {**result, "note": f"200 x 50 KB records a page, 2 connections: {_said('pages', pages)}"}


def load_authenticated_flood(server: Any, work: Path, noisy: str, seconds: float,
                             measure: Callable[[], dict[str, float]],
                             connections: int = 400) -> dict[str, Any]:  # fmt: skip
    """``wrk -c400`` POSTing ``data/list`` (20 records) with one actor's valid token, as fast as the
    server answers (the outside tester's ``wrk -t2 -c400 -s post.lua``: the reader's p99 76x)."""
    script = lua_script(work, "flood", noisy, orjson.dumps({"collection": "items", "limit": 20}))
    result, (flood,) = _run(server, [(f"{server.url}/commands/data/list", script, connections)],
                            seconds, measure)  # fmt: skip
    refused = f", {flood.get('non2xx', 0):.0f} refused" if flood.get("non2xx") else ""
    return {**result, "note": f"wrk -c{connections}: {_said('flood', flood)}{refused}"}
