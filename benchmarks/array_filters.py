"""Filters through arrays on SQLite: dbhandles' compiled SQL against a hand-written ``json_each`` query.

Loads seed-shaped chat records (``_datagen.py``: ``messages`` of system / user / assistant) into a
SQLite collection through the adapter, then counts the records matching each filter two ways, on
the same connection and table, in the same run:

* **dbhandles**: ``session.count(collection, parse_filter(...))``, the SQL the filter compiles to
  (MongoDB's rules: any message matching is enough);
* **hand-written**: ``SELECT count(*) ... WHERE EXISTS (SELECT 1 FROM json_each(data, '$.messages') e
  WHERE json_extract(e.value, '$.role') = ?)``, the query a person would write for this one shape
  (``regexp`` is the same RE2 function dbhandles registers).

Each is run ``--rounds`` times, interleaved, and the best time kept; the counts must agree. The
target is a ratio (dbhandles / hand-written) of at most 2.

A second part loads one record whose ``messages`` holds ``--long-array`` elements (10,000) and
times a filter, an ``$elemMatch`` and a ``groupBy`` through it against the hand-written
``json_each`` query: the time must grow with the array's length, not with its square (reading each
element by its path from the document's start made 16,000 elements a query timeout). Usage::

    python benchmarks/array_filters.py                  # 200,000 records
    python benchmarks/array_filters.py --records=20000 --rounds=5
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _datagen import records

from dbhandles.adapters.sqlite import SqliteAdapter
from dbhandles.filters import parse_filter

TARGET = 2.0
#: The long array's target: linear time, a constant factor over the hand-written query (which
#: parses each element once; the compiled rule reads an element's type and value, and an element
#: that is itself an array, per MongoDB's rules). Time growing with the square of the length gave
#: hundreds at 10,000 elements (2 s at 8,000 against 3 ms).
LONG_TARGET = 10.0
COLLECTION = "chats"
BATCH = 5_000

#: (label, filter, hand-written condition on one message ``e``, its parameter)
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("messages.role = 'tool' (no match: full scan)", {"messages.role": "tool"},
     "json_extract(e.value, '$.role') = ?", "tool"),
    ("messages.role = 'user' (every record)", {"messages.role": "user"},
     "json_extract(e.value, '$.role') = ?", "user"),
    ("messages.content $regex", {"messages.content": {"$regex": "handle registry|sqlite adapter"}},
     "regexp(?, json_extract(e.value, '$.content'))", "handle registry|sqlite adapter"),
]  # fmt: skip


def load(adapter: SqliteAdapter, count: int) -> None:
    batch: list[dict[str, Any]] = []
    stamp = "2025-05-01T00:00:00.000Z"
    with adapter.session(write=True) as session:
        for i, rec in enumerate(records(count)):
            batch.append(
                {**rec, "id": f"r{i:07d}", "createdAt": stamp, "updatedAt": stamp, "version": 1}
            )
            if len(batch) == BATCH:
                session.insert_many(COLLECTION, batch)
                batch = []
        if batch:
            session.insert_many(COLLECTION, batch)


#: (label, filter or None for ``groupBy messages.role``, the hand-written query on ``LONG``)
LONG_CASES: list[tuple[str, dict[str, Any] | None, str]] = [
    ("messages.role = 'nobody'", {"messages.role": "nobody"},
     "SELECT count(*) FROM \"long\" WHERE EXISTS (SELECT 1 FROM json_each(data, '$.messages') AS e "
     "WHERE json_extract(e.value, '$.role') = 'nobody')"),
    ("$elemMatch role 'nobody'", {"messages": {"$elemMatch": {"role": "nobody"}}},
     "SELECT count(*) FROM \"long\" WHERE EXISTS (SELECT 1 FROM json_each(data, '$.messages') AS e "
     "WHERE json_extract(e.value, '$.role') = 'nobody')"),
    ("groupBy messages.role", None,
     "SELECT count(*) FROM (SELECT json_extract(e.value, '$.role') AS r, count(*) FROM \"long\", "
     "json_each(data, '$.messages') AS e GROUP BY r)"),
]  # fmt: skip


def long_array(adapter: SqliteAdapter, length: int, rounds: int) -> float:
    """The ``LONG_CASES`` on one record of ``length`` messages; the worst ratio."""
    stamp = "2025-05-01T00:00:00.000Z"
    message = {"role": "user", "content": "x" * 100}
    record = {"id": "long", "messages": [message] * length, "createdAt": stamp,
              "updatedAt": stamp, "version": 1}  # fmt: skip
    with adapter.session(write=True) as session:
        session.insert_many("long", [record])
    worst = 0.0
    print(f"one record of {length:,} messages:", flush=True)
    with adapter.session() as session:
        conn = session.conn  # type: ignore[attr-defined]
        for label, spec, hand in LONG_CASES:
            node = parse_filter(spec) if spec is not None else None

            def ours(n: Any = node) -> int:
                if n is not None:
                    return session.count("long", n)
                return session.group_count("long", None, (("messages", "role"),), 10).group_count

            best_ours = best_hand = float("inf")
            for _ in range(rounds):
                t, got = timed(ours)
                best_ours = min(best_ours, t)
                t, theirs = timed(lambda q=hand: conn.execute(q).fetchone()[0])
                best_hand = min(best_hand, t)
            ratio = best_ours / best_hand
            worst = max(worst, ratio)
            print(f"  {label}: dbhandles {best_ours:.4f} s ({got}), hand-written {best_hand:.4f} s "
                  f"({theirs}), ratio {ratio:.2f}")  # fmt: skip
    return worst


def timed(run: Any) -> tuple[float, int]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, int(result)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--long-array", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as work:
        config = {"path": str(Path(work) / "chats.db"), "mode": "create", "synchronous": "normal"}
        adapter = SqliteAdapter(SqliteAdapter.prepare(SqliteAdapter.parse_config(config)))
        try:
            print(f"loading {args.records:,} chat records...", flush=True)
            load(adapter, args.records)
            worst = 0.0
            for label, spec, condition, param in CASES:
                node = parse_filter(spec)
                hand = (
                    f'SELECT count(*) FROM "{COLLECTION}" WHERE EXISTS (SELECT 1 FROM '
                    f"json_each(data, '$.messages') AS e WHERE {condition})"
                )
                best_ours = best_hand = float("inf")
                with adapter.session() as session:
                    conn = session.conn  # type: ignore[attr-defined]
                    for _ in range(args.rounds):
                        t, ours = timed(lambda f=node: session.count(COLLECTION, f))
                        best_ours = min(best_ours, t)
                        t, theirs = timed(
                            lambda c=conn, q=hand, v=param: c.execute(q, (v,)).fetchone()[0]
                        )
                        best_hand = min(best_hand, t)
                        if ours != theirs:
                            print(f"  {label}: counts differ: {ours} against {theirs}")
                            return 1
                ratio = best_ours / best_hand
                worst = max(worst, ratio)
                print(f"  {label}: {ours:,} matches; dbhandles {best_ours:.3f} s, "
                      f"hand-written {best_hand:.3f} s, ratio {ratio:.2f}")  # fmt: skip
            worst_long = long_array(adapter, args.long_array, args.rounds)
        finally:
            adapter.close()
    ok = worst <= TARGET and worst_long <= LONG_TARGET
    print(f"worst ratio {worst:.2f} (target at most {TARGET}); long array {worst_long:.2f} "
          f"(target at most {LONG_TARGET}): {'ok' if ok else 'OVER TARGET'}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
