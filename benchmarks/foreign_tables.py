"""Foreign tables: ``data/list`` and ``data/read`` against hand-written ``sqlite3``, side by side.

A 200,000-row table written with plain sqlite3 (an integer key, an indexed ``repo`` column, text,
numbers and a JSON column), then, in one run:

* ``data/list`` with ``{"repo": "r7"}`` (an indexed column, 1% of the rows), 100 per page with the
  count, through ``Service.execute``; baseline: the same two statements written by hand with
  ``sqlite3``, building the same dicts (target: speed ratio >= 0.8);
* ``data/read`` by key; baseline: ``SELECT ... WHERE key = ?`` and a dict (target: <= 3x the time);
* an ordered page: ``data/list`` with ``orderBy: "-score"`` (an indexed REAL column), 100 rows, no
  count; baseline: ``SELECT ... ORDER BY score DESC, n LIMIT 101`` by hand (target: ratio >= 0.5;
  a sort of the whole table per page, as before the index served the order, is far below).

Every baseline is checked once to return exactly what dbhandles returns (the same records, the key
column ``n`` included, and the same count) before anything is timed.

    python benchmarks/foreign_tables.py [--rows N]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import orjson
from _compare import best

from dbhandles.service import Service
from dbhandles.settings import Settings

COLUMNS = ("repo", "author", "lines", "score", "meta")
#: A record's keys: ``id`` (the key's value), then every column, the key ``n`` included; the
#: baselines build each record inline (no call per row) as ``dict(zip(KEYS, (n, n, ..., meta)))``
#: with the JSON text of ``meta`` parsed, and are checked equal to what dbhandles returns.
KEYS = ("id", "n", *COLUMNS)


def build(path: Path, rows: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE commits (n INTEGER PRIMARY KEY, repo TEXT, author TEXT, lines INTEGER, "
        "score REAL, meta TEXT)"
    )
    conn.executemany(
        "INSERT INTO commits VALUES (?, ?, ?, ?, ?, ?)",
        (
            (i, f"r{i % 100}", f"author {i % 997}", i % 500, i / 7,
             orjson.dumps({"files": i % 13, "tag": "x"}).decode())
            for i in range(rows)
        ),
    )  # fmt: skip
    conn.execute("CREATE INDEX commits_repo ON commits (repo)")
    conn.execute("CREATE INDEX commits_score ON commits (score)")
    conn.commit()
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "legacy.db"
        build(path, args.rows)
        service = Service(settings=Settings(home=Path(folder) / "home"))
        raw = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        loads = orjson.loads
        try:
            handle = service.execute(
                "data/open",
                {"adapter": "sqlite", "config": {"path": str(path), "mode": "readonly"}},
            )["dbHandle"]
            params = {"dbHandle": handle, "collection": "commits", "filter": {"repo": "r7"},
                      "limit": 100}  # fmt: skip

            def ours_list() -> Any:
                return service.execute("data/list", params)

            def raw_list() -> Any:
                rows = raw.execute(
                    f"SELECT n, {', '.join(COLUMNS)} FROM commits WHERE repo = ? ORDER BY n "
                    "LIMIT 101",
                    ("r7",),
                ).fetchall()
                items = [
                    dict(zip(KEYS, (r[0], *r[:5], loads(r[5])), strict=True)) for r in rows[:100]
                ]
                count = raw.execute("SELECT count(*) FROM commits WHERE repo = ?", ("r7",))
                return items, count.fetchone()[0]

            def ours_read() -> Any:
                return service.execute(
                    "data/read", {"dbHandle": handle, "collection": "commits", "id": "123457"}
                )

            def raw_read() -> Any:
                row = raw.execute(
                    f"SELECT n, {', '.join(COLUMNS)} FROM commits WHERE n = ?", (123457,)
                ).fetchone()
                return dict(zip(KEYS, (row[0], *row[:5], loads(row[5])), strict=True))

            ordered_params = {"dbHandle": handle, "collection": "commits", "orderBy": "-score",
                              "limit": 100, "skipCount": True}  # fmt: skip

            def ours_ordered() -> Any:
                return service.execute("data/list", ordered_params)

            def raw_ordered() -> Any:
                rows = raw.execute(
                    f"SELECT n, {', '.join(COLUMNS)} FROM commits ORDER BY score DESC, n LIMIT 101"
                ).fetchall()
                return [
                    dict(zip(KEYS, (r[0], *r[:5], loads(r[5])), strict=True)) for r in rows[:100]
                ]

            # Honest baselines: the hand-written code returns the same records (and count).
            listed_page, (raw_items, raw_count) = ours_list(), raw_list()
            assert listed_page["items"] == raw_items and listed_page["count"] == raw_count
            assert ours_read()["data"] == raw_read()
            assert ours_ordered()["items"] == raw_ordered()
            listed, baseline = best(ours_list, 30), best(raw_list, 30)
            read, read_baseline = best(ours_read, 300), best(raw_read, 300)
            ordered, ordered_baseline = best(ours_ordered, 20), best(raw_ordered, 20)
        finally:
            raw.close()
            service.close()
    print(f"data/list (filter on an indexed column, {args.rows:,} rows): "
          f"{listed * 1e3:.2f} ms vs sqlite3 {baseline * 1e3:.2f} ms: speed ratio "
          f"{baseline / listed:.2f} (target >= 0.8)")  # fmt: skip
    print(f"data/read by key: {read * 1e6:.0f} us vs sqlite3 {read_baseline * 1e6:.0f} us: "
          f"{read / read_baseline:.1f}x the time (target <= 3)")  # fmt: skip
    print(f"data/list ordered by an indexed column (orderBy -score, 100 rows): "
          f"{ordered * 1e3:.2f} ms vs sqlite3 {ordered_baseline * 1e3:.2f} ms: speed ratio "
          f"{ordered_baseline / ordered:.2f} (target >= 0.5)")  # fmt: skip


if __name__ == "__main__":
    main()
