"""Benchmark: in-process ``data/read`` and ``data/list`` against raw ``sqlite3`` + ``orjson`` in one run.

The data are training-shaped records (``benchmarks/_datagen.py``: about 2 KB each, nested
``messages`` and ``metadata``), imported into a SQLite file that a ``Service`` opens as a handle. The
baselines read the same file through their own ``sqlite3`` connection:

- ``data/read`` (random ids) against ``SELECT ... WHERE id = ?`` plus ``orjson.loads`` of the data;
- ``data/list`` with ``filter={"metadata.qualityScore": {"$gte": 0.8}}``, ``limit=100`` and ``skipCount``,
  against the hand-written ``json_extract`` query in id order (one page plus one row, as keyset paging
  reads it) plus ``orjson.loads`` of each row.

Rounds alternate between dbhandles and the baseline so the machine's noise falls on both; the ratio
is the median dbhandles time over the median baseline time (targets: at most 3x for the read, 1.2x
for the list). Each dbhandles round ends by writing the audit rows it queued (``AuditLog.flush``),
so the background writer's CPU time counts in that round rather than in the next baseline round
(the wall clock stops before it: callers never wait for that write).
The CPU time per call is printed beside it: on a busy machine it is the steadier
figure (the wall clock then also measures how often each side waits for a core). ``--profile``
prints where dbhandles' time goes (cProfile) instead.
``--default-audit`` instead lists a collection of the *default* database with the audit log on
(a 20-row page, ``skipCount``, the audit rows written after each call): the handle store commits
them into ``default.sqlite`` on its own connection, and the rounds alternate between that commit
told to the default adapter's witness (``sqlite_records.store_commit``, as dbhandles runs) and left
untold (the behaviour before issue #17: each commit looked like another tool's, so each listing
read every row of the collection again). It prints both sides' CPU time per call, their ratio and
how many times each side re-read the rows (``sqlite_records.rescans``).
A benchmark, not a test: nothing here asserts a time.

    .venv/bin/python benchmarks/inprocess.py [--records 20000] [--rounds 7] [--profile]
    .venv/bin/python benchmarks/inprocess.py --default-audit [--records 20000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from _datagen import generate_file

from dbhandles import Service
from dbhandles.adapters import sqlite_records
from dbhandles.settings import Settings
from dbhandles.store import sqlite as store_sqlite

READ_TARGET = 3.0
LIST_TARGET = 1.2
COLLECTION = "examples"
FILTER = {"metadata.qualityScore": {"$gte": 0.8}}
LIST_SQL = (
    f'SELECT id, data, created_at, updated_at, version FROM "{COLLECTION}" '
    "WHERE json_extract(data, '$.metadata.qualityScore') >= ? ORDER BY id LIMIT ?"
)
READ_SQL = f'SELECT id, data, created_at, updated_at, version FROM "{COLLECTION}" WHERE id = ?'


def _per_call(
    fn: Callable[[], object], calls: int, settle: Callable[[], object] | None = None
) -> tuple[float, float]:
    """Wall-clock and CPU seconds per call of ``fn`` over ``calls`` calls. The CPU time includes
    ``settle()`` (dbhandles' side: writing the audit rows its calls queued, so the audit writer's
    work is counted in its own round and none of it falls into the baseline's); the wall clock
    does not (a caller never waits for that write, nor for its commit's fsync)."""
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        fn()
    wall = time.perf_counter() - start
    if settle is not None:
        settle()
    return wall / calls, (time.process_time() - cpu) / calls


def _compare(
    label: str,
    ours: Callable[[], object],
    base: Callable[[], object],
    calls: int,
    rounds: int,
    settle: Callable[[], object],
) -> float:
    ours(), base()  # warm both (statement caches, first page of the file)
    settle()
    mine: list[tuple[float, float]] = []
    theirs: list[tuple[float, float]] = []
    for _ in range(rounds):
        mine.append(_per_call(ours, calls, settle))
        theirs.append(_per_call(base, calls))
    a, b = (statistics.median(t[0] for t in mine), statistics.median(t[0] for t in theirs))
    cpu_a, cpu_b = (statistics.median(t[1] for t in mine), statistics.median(t[1] for t in theirs))
    print(f"{label:<44} {a * 1e6:>12.1f} {b * 1e6:>12.1f} {a / b:>7.2f}x   "
          f"CPU {cpu_a * 1e6:.1f} / {cpu_b * 1e6:.1f} µs = {cpu_a / cpu_b:.2f}x")  # fmt: skip
    return a / b


def _default_audit(records: int, rounds: int) -> int:
    """``--default-audit``: the default database listed with the audit log on, the store's
    commits told to its witness against left untold, alternating rounds of 30 calls."""
    told = store_sqlite.store_commit

    def untold(file: str, conn: sqlite3.Connection) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()

    with tempfile.TemporaryDirectory(prefix="dbh-inprocess-") as tmp:
        source = generate_file(Path(tmp) / "seed.jsonl", records)
        with Service(settings=Settings(home=Path(tmp) / "home", audit=True)) as svc:
            svc.execute(
                "data/import",
                {"dbHandle": "default", "input": str(source), "collection": COLLECTION},
            )
            params = {"collection": COLLECTION, "limit": 20, "skipCount": True}

            def list_default() -> object:
                page = svc.execute("data/list", params)
                svc.audit.flush()
                return page

            cpu: dict[str, list[float]] = {"told": [], "untold": []}
            rescans = dict.fromkeys(cpu, 0)
            list_default()
            try:
                for _ in range(rounds):
                    for side, commit in (("told", told), ("untold", untold)):
                        store_sqlite.store_commit = commit  # type: ignore[assignment]
                        # An untold commit is another tool's: the next two calls re-read (the
                        # second's read transaction marked the epoch before the first looked).
                        list_default()
                        list_default()
                        before = sqlite_records.rescans()
                        cpu[side].append(_per_call(list_default, 30)[1])
                        rescans[side] += sqlite_records.rescans() - before
            finally:
                store_sqlite.store_commit = told
    a, b = statistics.median(cpu["told"]), statistics.median(cpu["untold"])
    calls = 30 * rounds
    print(f"{records} records in the default database, audit on; load average "
          f"{os.getloadavg()[0]:.2f}; medians of {rounds} rounds of 30 calls")  # fmt: skip
    print(f"data/list (20 rows), store commits told:   CPU {a * 1e3:.3f} ms/call, "
          f"{rescans['told']} re-reads in {calls} calls")  # fmt: skip
    print(f"data/list (20 rows), store commits untold: CPU {b * 1e3:.3f} ms/call, "
          f"{rescans['untold']} re-reads in {calls} calls")  # fmt: skip
    print(f"untold / told ratio {b / a:.1f}x")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="cProfile dbhandles' side instead")
    parser.add_argument(
        "--default-audit", action="store_true", help="the default database, audit log on"
    )
    args = parser.parse_args(argv)
    if args.default_audit:
        return _default_audit(args.records, args.rounds)
    with tempfile.TemporaryDirectory(prefix="dbh-inprocess-") as tmp:
        source = generate_file(Path(tmp) / "seed.jsonl", args.records)
        db = Path(tmp) / "training.sqlite"
        with Service(home=Path(tmp) / "home") as svc:
            handle = svc.execute(
                "data/open", {"adapter": "sqlite", "config": {"path": str(db), "mode": "create"}}
            )["dbHandle"]
            svc.execute(
                "data/import", {"dbHandle": handle, "input": str(source), "collection": COLLECTION}
            )
            raw = sqlite3.connect(db, check_same_thread=False)
            ids = [row[0] for row in raw.execute(f'SELECT id FROM "{COLLECTION}"')]
            rng = random.Random(7)
            picks = [rng.choice(ids) for _ in range(4096)]
            position = [0]

            def next_id() -> str:
                position[0] = (position[0] + 1) % len(picks)
                return picks[position[0]]

            def read_ours() -> dict[str, Any]:
                params = {"dbHandle": handle, "collection": COLLECTION, "id": next_id()}
                return svc.execute("data/read", params)

            def read_base() -> Any:
                row = raw.execute(READ_SQL, (next_id(),)).fetchone()
                return orjson.loads(row[1])

            list_params = {"dbHandle": handle, "collection": COLLECTION, "filter": FILTER,
                           "limit": 100, "skipCount": True}  # fmt: skip

            def list_ours() -> dict[str, Any]:
                return svc.execute("data/list", list_params)

            def list_base() -> list[Any]:
                rows = raw.execute(LIST_SQL, (0.8, 101)).fetchall()
                return [orjson.loads(row[1]) for row in rows[:100]]

            page = list_ours()
            assert page["success"] and len(page["items"]) == len(list_base()), page.keys()
            record_bytes = statistics.mean(
                len(orjson.dumps(read_ours()["data"])) for _ in range(200)
            )
            if args.profile:
                profiler = cProfile.Profile()
                profiler.enable()
                for _ in range(3000):
                    read_ours()
                for _ in range(100):
                    list_ours()
                profiler.disable()
                pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
                raw.close()
                return 0
            print(
                f"{args.records} records of {record_bytes / 1024:.1f} KB on average; load average "
                f"{os.getloadavg()[0]:.2f}; medians of {args.rounds} rounds"
            )
            print(f"{'':<44} {'dbhandles µs':>12} {'baseline µs':>12} {'ratio':>8}")
            settle = svc.audit.flush
            read = _compare("data/read (random id)", read_ours, read_base, 2000, args.rounds,
                            settle)  # fmt: skip
            listed = _compare("data/list (qualityScore >= 0.8, 100 rows)", list_ours, list_base,
                              40, args.rounds, settle)  # fmt: skip
            raw.close()
    print(f"data/read ratio {read:.2f}x (target <= {READ_TARGET}x), "
          f"data/list ratio {listed:.2f}x (target <= {LIST_TARGET}x)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
