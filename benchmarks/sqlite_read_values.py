"""What reading a record with SQLite's rule costs (``adapters.sqlite_values.loads``: a duplicated
key's first value, a string cut at U+0000) against the ``orjson.loads`` it replaced, in the same run.

Every page of a ``data/list`` of ``--records`` seed-shaped chat records (three messages and metadata, as dbhandles
writes them) on an SQLite collection, ``--rounds`` rounds, interleaved (the first of each pair alternating), the best round of each kept
(CPU time of this process). The baseline swaps ``orjson.loads`` back into the two read sites of a
listing. A text another tool wrote (spaced, so not orjson's serialisation) is read a second time;
its cost is printed per record too, against ``orjson.loads`` of the same text. Usage::

    python benchmarks/sqlite_read_values.py                # 20,000 records, 5 rounds
    python benchmarks/sqlite_read_values.py --records=100000 --rounds=7
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _compare import timed_in_turn

from dbhandles import Service, Settings
from dbhandles.adapters import sqlite_session, sqlite_values

#: What the rounds count: CPU seconds of this process.
CPU = time.process_time


def _record(i: int) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": f"What is {i} + {i}? Answer with a number only."},
            {"role": "assistant", "content": str(2 * i)},
        ],
        "metadata": {"topic": f"t{i % 10}", "quality": (i % 100) / 100, "source": "seed"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        service = Service(settings=Settings(home=Path(folder) / "home"))
        try:
            db = service.execute("data/open", {"adapter": "sqlite", "config": {
                "path": str(Path(folder) / "b.sqlite"), "mode": "create"}})["dbHandle"]  # fmt: skip
            operations = [{"op": "create", "collection": "c", "data": _record(i)}
                          for i in range(args.records)]  # fmt: skip
            for start in range(0, len(operations), 1000):
                service.execute(
                    "data/batch", {"dbHandle": db, "operations": operations[start : start + 1000]}
                )
            params = {"dbHandle": db, "collection": "c", "limit": 500, "skipCount": True}

            def listing() -> object:
                """Every record, 500 a page (``DBHANDLES_MAX_LIMIT``'s default) by ``nextCursor``."""
                page = service.execute("data/list", params)
                while page["hasMore"]:
                    page = service.execute("data/list", {**params, "cursor": page["nextCursor"]})
                return page

            def listing_before() -> object:
                sqlite_session.loads = orjson.loads  # the baseline: orjson's rule
                try:
                    return listing()
                finally:
                    sqlite_session.loads = sqlite_values.loads

            now: list[float] = []
            before: list[float] = []
            timed_in_turn([(listing_before, before), (listing, now)], args.rounds, CPU)
        finally:
            service.close()
    spaced = orjson.dumps(_record(7), option=orjson.OPT_INDENT_2).decode()
    per: dict[str, list[float]] = {"orjson": [], "sqlite_values": []}
    timed_in_turn(
        [
            (lambda: [orjson.loads(spaced) for _ in range(10_000)], per["orjson"]),
            (lambda: [sqlite_values.loads(spaced) for _ in range(10_000)], per["sqlite_values"]),
        ],
        args.rounds,
        CPU,
    )
    n = args.records
    print(f"data/list of {n} records on SQLite (best of {args.rounds}, CPU):")
    print(
        f"  orjson.loads (baseline)   {min(before) * 1000:8.1f} ms  {min(before) / n * 1e6:6.2f} us/record"
    )
    print(
        f"  sqlite_values.loads       {min(now) * 1000:8.1f} ms  {min(now) / n * 1e6:6.2f} us/record"
    )
    print(f"  ratio now / baseline      {min(now) / min(before):8.2f}x")
    other, ours = (min(per[k]) / 10_000 * 1e6 for k in ("orjson", "sqlite_values"))
    print(f"a text another tool wrote (indented): orjson {other:.2f} us, sqlite_values {ours:.2f} us "
          f"({ours / other:.1f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
