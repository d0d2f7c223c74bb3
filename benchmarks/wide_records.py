"""What reading wide records costs on SQLite (``data/read`` and ``data/list``) against the floor: raw
``sqlite3`` fetching the same rows plus ``orjson.loads`` of each, measured in the same run.

``--records`` records ``{"a": [[], [], ...], "i": n}`` of ``--arrays`` empty arrays each (the
round-17 finding: 3,000,000 arrays, ~9 MB a record, once took 6.6 s to read and 44 s to list,
walking every array in Python for the depth check). Four timings, each the best of ``--rounds``
interleaved with its baseline (wall time, this process only):

* ``read``: ``data/read`` of every record, one by one (the point read: ``orjson.loads``, one
  ``orjson.dumps`` and byte searches; the depth told by orjson's own nesting limit);
* ``list``: ``data/list limit=10`` of them, the collection's fast state known (rows dbhandles wrote
  are decoded by ``orjson.loads`` alone);
* ``list after a commit``: the same after another connection committed, so every row is read
  once more through ``RECORD_FUNCTION`` to find which are canonical;
* ``spaced``: a list of the same records as another tool spaced them (``[], []``: every row read
  through ``RECORD_FUNCTION`` and decoded by ``load_record``, a repeated key looked for).

Usage::

    python benchmarks/wide_records.py                      # 4 records of 1,000,000 arrays
    python benchmarks/wide_records.py --arrays=3000000 --rounds=3
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _compare import timed_in_turn

from dbhandles import Service, Settings


def _raw(path: Path, ids: list[str]) -> Callable[[], object]:
    """The floor: one plain connection fetching each row's ``data`` and ``orjson.loads`` of it."""

    def run() -> object:
        conn = sqlite3.connect(path)
        try:
            return [
                orjson.loads(conn.execute("SELECT data FROM c WHERE id = ?", (i,)).fetchone()[0])
                for i in ids
            ]
        finally:
            conn.close()

    return run


def _commit(path: Path) -> None:
    """Another connection commits (nothing changed): ``PRAGMA data_version`` moves."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_touch (x)")
        conn.execute("INSERT INTO bench_touch VALUES (1)")
        conn.commit()
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=4)
    parser.add_argument("--arrays", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        # No time budget: the costs are measured, not cut at 10 s (a list of huge rows another
        # tool wrote may pass it, and then answers query_timeout: tests/test_read_in_full_cost.py).
        settings = Settings(home=Path(folder) / "home", query_timeout_ms=0)
        service = Service(settings=settings)
        try:
            path = Path(folder) / "w.sqlite"
            db = service.execute(
                "data/open", {"adapter": "sqlite", "config": {"path": str(path), "mode": "create"}}
            )["dbHandle"]
            ids = [f"r{i}" for i in range(args.records)]
            for n, record_id in enumerate(ids):
                data = {"a": [[] for _ in range(args.arrays)], "i": n}
                service.execute(
                    "data/create",
                    {"dbHandle": db, "collection": "c", "id": record_id, "data": data},
                )
            size = len(orjson.dumps({"a": [[] for _ in range(args.arrays)], "i": 0}))
            base = {"dbHandle": db, "collection": "c"}

            def read() -> object:
                return [service.execute("data/read", {**base, "id": i}) for i in ids]

            def listing() -> object:
                page = service.execute("data/list", {**base, "limit": 10, "skipCount": True})
                assert len(page["items"]) == len(ids)
                return page

            def after_commit() -> object:
                _commit(path)
                return listing()

            timings: dict[str, tuple[list[float], list[float]]] = {}
            steps = {"read": read, "list": listing, "list after a commit": after_commit}
            listing()  # the fast state
            floor = _raw(path, ids)
            for name, step in steps.items():
                now, raw = timings.setdefault(name, ([], []))
                timed_in_turn([(step, now), (floor, raw)], args.rounds)
            conn = sqlite3.connect(path)  # another tool's spacing: no row canonical any more
            with conn:
                conn.execute("UPDATE c SET data = replace(data, '],[', '], [')")
            conn.close()
            now, raw = timings.setdefault("spaced", ([], []))
            timed_in_turn([(listing, now), (floor, raw)], args.rounds)
        finally:
            service.close()
    print(
        f"{args.records} records of {args.arrays:,} empty arrays "
        f"({size / 1e6:.1f} MB each), best of {args.rounds}:"
    )
    for name, (now, raw) in timings.items():
        print(
            f"  {name:<20} {min(now):8.3f} s   raw sqlite3 + orjson.loads {min(raw):8.3f} s   "
            f"ratio {min(now) / min(raw):5.2f}"
        )


if __name__ == "__main__":
    main()
