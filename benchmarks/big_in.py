"""A big ``$in`` on SQLite: dbhandles' compiled SQL against a hand-written query, in the same run.

Loads ``--records`` records ``{tag, n}`` into a SQLite collection through the adapter, then counts
the records whose ``tag`` is one of ``--values`` distinct strings (thousands), two ways, on the same
connection and table, interleaved, best of ``--rounds``:

* **dbhandles**: ``session.count(collection, parse_filter({"tag": {"$in": [...]}}))``, parsed and
  compiled afresh each round (the list differs by one value each round, as requests send their own);
* **hand-written**: ``SELECT count(*) FROM chats WHERE json_extract(data, '$.tag') IN
  (SELECT value FROM json_each(?))``, the list bound once as a JSON array.

The counts must agree; the target is a ratio (dbhandles / hand-written) of at most 2. Usage::

    python benchmarks/big_in.py [--records=100000] [--values=5000] [--rounds=5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from dbhandles.adapters.sqlite import SqliteAdapter
from dbhandles.filters import parse_filter

TARGET = 2.0
COLLECTION = "tags"


def tag(i: int) -> str:
    return f"tag-{i:07d}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--values", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    stamp = "2025-05-01T00:00:00.000Z"
    with tempfile.TemporaryDirectory() as work:
        config = {"path": str(Path(work) / "in.db"), "mode": "create", "synchronous": "normal"}
        adapter = SqliteAdapter(SqliteAdapter.prepare(SqliteAdapter.parse_config(config)))
        try:
            with adapter.session(write=True) as session:
                session.insert_many(COLLECTION, [
                    {"id": f"r{i:07d}", "tag": tag(i), "n": i, "createdAt": stamp,
                     "updatedAt": stamp, "version": 1}
                    for i in range(args.records)
                ])  # fmt: skip
            step = max(1, 2 * args.records // args.values)  # half of the values match a record
            wanted = [tag(i) for i in range(0, step * args.values, step)][: args.values]
            hand = (
                f"SELECT count(*) FROM \"{COLLECTION}\" WHERE json_extract(data, '$.tag') IN "
                "(SELECT value FROM json_each(?))"
            )
            best_ours = best_hand = float("inf")
            with adapter.session() as session:
                conn: Any = session.conn  # type: ignore[attr-defined]
                for n in range(args.rounds):
                    sent = [*wanted[1:], f"none-{n}"]  # a list of its own each round: no cache hit
                    start = time.perf_counter()
                    ours = session.count(COLLECTION, parse_filter({"tag": {"$in": sent}}))
                    best_ours = min(best_ours, time.perf_counter() - start)
                    start = time.perf_counter()
                    theirs = conn.execute(hand, (orjson.dumps(sent).decode(),)).fetchone()[0]
                    best_hand = min(best_hand, time.perf_counter() - start)
                    assert ours == theirs, (ours, theirs)
        finally:
            adapter.close()
    ratio = best_ours / best_hand
    print(f"{args.records:,} records, $in of {len(wanted):,} values ({ours:,} match): dbhandles "
          f"{best_ours * 1000:.1f} ms, hand-written {best_hand * 1000:.1f} ms, ratio {ratio:.2f} "
          f"(target <= {TARGET})")  # fmt: skip
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
