"""What measuring a page's bytes in SQL costs on PostgreSQL (``postgres_bytes.bounded_page``): the
same page statement run plain and wrapped, both measured in this run, each fetched whole.

500 records of about 1.5 KB of JSON; pages of 100 and 500 rows. Prints the median time of each and
the ratio of the bounded statement to the plain one, each read as the adapter reads it.

    .venv/bin/python benchmarks/postgres_page_bytes.py [--rounds N] [--url postgresql://...]
"""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
from benchmarks._compare import medians, ratio_line
from benchmarks._postgres import arguments, connect
from psycopg import sql

from dbhandles.adapters.postgres_bytes import bounded_page, page_rows

ROWS = 500
ORDER = '"id" ASC'


def _compare(conn: psycopg.Connection[Any], limit: int, rounds: int) -> tuple[float, float]:
    """Median seconds of the plain page statement and of the bounded one, each read as the
    adapter reads it (``jsonb`` through orjson; the bounded page's JSON text by ``page_rows``)."""
    plain = sql.SQL(
        "SELECT id, data, created_at, updated_at, version FROM bench_pages "
        f"ORDER BY {ORDER} LIMIT %s OFFSET %s"
    )
    bounded, params = bounded_page(plain, (limit, 0), ORDER)
    base, measured = medians(
        [
            lambda: conn.execute(plain, (limit, 0)).fetchall(),
            lambda: page_rows(conn.execute(bounded, params).fetchall(), "bench_pages"),
        ],
        rounds,
    )
    return base, measured


def main() -> None:
    args = arguments(__doc__, 100)
    with connect(args.url) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_pages")
        conn.execute(
            "CREATE TEMP TABLE bench_pages (id text PRIMARY KEY, data jsonb, created_at text, "
            "updated_at text, version int)"
        )
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO bench_pages VALUES (%s, %s, 't', 't', 1)",
                [
                    (f"r{i:04}", orjson.dumps({"text": "x" * 1500, "n": i}).decode())
                    for i in range(ROWS)
                ],
            )
        for limit in (100, 500):
            base, bounded = _compare(conn, limit, args.rounds)
            print(ratio_line(f"page of {limit}", base, bounded, ("plain", "bounded")))


if __name__ == "__main__":
    main()
