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
import tempfile
from pathlib import Path

import orjson
from _compare import medians, ratio_line

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as folder:
        for label, char in (("ascii", "x"), ("cjk", "\u4e2d")):
            conn = _database(Path(folder) / f"{label}.sqlite", char)
            base, bounded = _compare(conn, rounds)
            line = ratio_line(
                f"{label:5} page of {ROWS}", base, bounded, ("fetchall", "fetch_page")
            )
            print(line)
            conn.close()


def _compare(conn: sqlite3.Connection, rounds: int) -> tuple[float, float]:
    """Median seconds of the unbounded read and of ``fetch_page``, of the same statement, taken
    in turn each round."""
    query = "SELECT id, data FROM c ORDER BY id"
    base, bounded = medians(
        [lambda: conn.execute(query).fetchall(), lambda: fetch_page(conn.execute(query), "c", 1)],
        rounds,
    )
    return base, bounded


if __name__ == "__main__":
    main()
