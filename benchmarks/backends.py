"""Benchmark: the same command mix against an SQLite handle and a PostgreSQL handle, in one run.

Each command of the mix (create, read, update, list with a filter and a sort, list on a declared
index, a 10-operation batch, query-open + query-next, delete) runs ``--rounds`` times through
``Service.execute`` on both handles, interleaved so that both backends see the same machine load.
It prints each command's median and p99 latency per backend and the ratio PostgreSQL / SQLite
(above 1: PostgreSQL is slower). A benchmark, not a test: nothing here asserts a time.

PostgreSQL is the throwaway server of the test suite (``initdb`` + ``pg_ctl``, a Unix socket,
``fsync=off``) unless ``--url`` names one; SQLite runs with its defaults (WAL, synchronous=normal).
Both are local: what is measured is per-command overhead (round trips, planning, JSON), not network.

    .venv/bin/python benchmarks/backends.py [--records 5000] [--rounds 300] [--url postgresql://...]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "src"), str(REPO)]

from dbhandles import Service, Settings  # noqa: E402

Step = Callable[[Service, str, int], Any]


def _record(i: int) -> dict[str, Any]:
    return {
        "text": f"example {i} " + "lorem ipsum " * 8,
        "label": ("positive", "negative", "neutral")[i % 3],
        "metadata": {
            "qualityScore": (i * 37 % 100) / 100,
            "tokenCount": 50 + i % 400,
            "source": f"s{i % 20}",
        },
    }


def _mix(records: int) -> dict[str, Step]:
    """Command name → one call of it (``i`` is the round, used for fresh ids and varying filters)."""
    rng = random.Random(7)

    def seeded() -> str:
        return f"seed-{rng.randrange(records):06d}"

    return {
        "data/create": lambda s, h, i: s.execute(
            "data/create",
            {"dbHandle": h, "collection": "bench", "id": f"new-{i:06d}", "data": _record(i)},
        ),
        "data/read": lambda s, h, i: s.execute(
            "data/read", {"dbHandle": h, "collection": "bench", "id": seeded()}
        ),
        "data/update": lambda s, h, i: s.execute(
            "data/update",
            {"dbHandle": h, "collection": "bench", "id": seeded(), "data": {"label": "checked"}},
        ),
        "data/list filter+sort": lambda s, h, i: s.execute(
            "data/list",
            {
                "dbHandle": h,
                "collection": "bench",
                "limit": 20,
                "skipCount": True,
                "filter": {
                    "metadata.qualityScore": {"$gte": (i % 10) / 10},
                    "label": {"$ne": "neutral"},
                },
                "orderBy": [{"field": "metadata.tokenCount", "direction": "desc"}],
            },
        ),
        "data/list indexed eq": lambda s, h, i: s.execute(
            "data/list",
            {
                "dbHandle": h,
                "collection": "bench",
                "limit": 20,
                "filter": {"metadata.source": f"s{i % 20}"},
            },
        ),
        "data/batch (10 ops)": lambda s, h, i: s.execute(
            "data/batch",
            {
                "dbHandle": h,
                "operations": [
                    {
                        "op": "create",
                        "collection": "batch",
                        "id": f"b-{i:06d}-{k}",
                        "data": _record(k),
                    }
                    for k in range(10)
                ],
            },
        ),
        "data/query-open+next": lambda s, h, i: s.execute(
            "data/query-next",
            {
                "queryHandle": s.execute(
                    "data/query-open",
                    {
                        "dbHandle": h,
                        "collection": "bench",
                        "pageSize": 50,
                        "orderBy": ["id"],
                        "filter": {"label": "positive"},
                    },
                )["queryHandle"]
            },
        ),
        "data/delete": lambda s, h, i: s.execute(
            "data/delete", {"dbHandle": h, "collection": "bench", "id": f"new-{i:06d}"}
        ),
    }


def _seed(service: Service, handle: str, records: int) -> None:
    for start in range(0, records, 1000):
        ops = [
            {"op": "create", "collection": "bench", "id": f"seed-{i:06d}", "data": _record(i)}
            for i in range(start, min(start + 1000, records))
        ]
        service.execute(
            "data/batch", {"dbHandle": handle, "operations": ops, "suppressEvents": True}
        )


def _quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(records: int, rounds: int, url: str | None) -> None:
    if url is None:
        from tests.pgserver import postgres_server

        url = postgres_server().url
    work = Path(tempfile.mkdtemp(prefix="dbh-bench-"))
    service = Service(settings=Settings(home=work / "home", audit=False))
    service.declare("bench", indexes=["metadata.source"])
    try:
        handles = {
            "sqlite": service.execute(
                "data/open",
                {
                    "adapter": "sqlite",
                    "config": {"path": str(work / "bench.sqlite"), "mode": "create"},
                },
            )["dbHandle"],
            "postgres": service.execute(
                "data/open",
                {
                    "adapter": "postgres",
                    "config": {"url": url, "schema": f"bench_{int(time.time())}", "mode": "create"},
                },
            )["dbHandle"],
        }
        for handle in handles.values():
            _seed(service, handle, records)
        mix = _mix(records)
        timings: dict[tuple[str, str], list[float]] = {(c, b): [] for c in mix for b in handles}
        for i in range(rounds):
            for command, step in mix.items():
                for backend, handle in handles.items():
                    started = time.perf_counter()
                    step(service, handle, i)
                    timings[(command, backend)].append((time.perf_counter() - started) * 1000)
        _report(mix, timings, records, rounds)
    finally:
        service.close()


def _report(
    mix: dict[str, Step], timings: dict[tuple[str, str], list[float]], records: int, rounds: int
) -> None:
    print(f"{records} records, {rounds} rounds per command; latency in ms (median / p99)")
    print(f"{'command':24} {'sqlite':>17} {'postgres':>17} {'pg/sqlite':>10}")
    for command in mix:
        sq, pg = timings[(command, "sqlite")], timings[(command, "postgres")]
        sq_med, pg_med = statistics.median(sq), statistics.median(pg)
        print(
            f"{command:24} {sq_med:8.3f} /{_quantile(sq, 0.99):7.3f} {pg_med:8.3f} /{_quantile(pg, 0.99):7.3f} "
            f"{pg_med / sq_med:9.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--url", help="a PostgreSQL URL (default: start a throwaway server)")
    args = parser.parse_args()
    run(args.records, args.rounds, args.url)


if __name__ == "__main__":
    main()
