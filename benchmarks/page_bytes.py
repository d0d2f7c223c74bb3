"""What counting a page's UTF-8 bytes costs (``sqlite_pages.fetch_page``) against reading the same
rows with no bound (``cursor.fetchall()``), both measured in this run.

Two pages of 500 records of about 1.5 KB of JSON: ASCII text (measured by its length, no copy) and
text of 3-byte characters (CJK: encoded to be measured). Prints the median time of each and the
ratio to the unbounded read.

    python benchmarks/page_bytes.py [--rounds N]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from dbhandles.adapters.sqlite_pages import fetch_page

ROWS = 500


def _database(path: Path, char: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE c (id TEXT PRIMARY KEY, data TEXT)")
    conn.executemany(
        "INSERT INTO c VALUES (?, ?)",
        [(f"r{i}", orjson.dumps({"text": char * 500, "n": i}).decode()) for i in range(ROWS)],
    )
    conn.commit()
    return conn


def _median(run: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as folder:
        for label, char in (("ascii", "x"), ("cjk", "\u4e2d")):
            conn = _database(Path(folder) / f"{label}.sqlite", char)
            base, bounded = _compare(conn, rounds)
            print(
                f"{label:5} page of {ROWS}: fetchall {base * 1e3:.3f} ms, fetch_page "
                f"{bounded * 1e3:.3f} ms, ratio {bounded / base:.2f}"
            )
            conn.close()


def _compare(conn: sqlite3.Connection, rounds: int) -> tuple[float, float]:
    """Median seconds of the unbounded read and of ``fetch_page``, of the same statement."""
    query = "SELECT id, data FROM c ORDER BY id"
    base = _median(lambda: conn.execute(query).fetchall(), rounds)
    return base, _median(lambda: fetch_page(conn.execute(query), "c", 1), rounds)


if __name__ == "__main__":
    main()
