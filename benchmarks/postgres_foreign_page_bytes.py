"""What bounding a page of a PostgreSQL table dbhandles did not create costs
(``postgres_bytes.bounded_columns``, used by ``PgReader.find``): the page statement run plain and
bounded, both measured in this run, each read into records as the reader reads them.

500 rows of about 1.5 KB (an integer key, text, numeric, jsonb and text[] columns); pages of 100
and 500 rows, by key and by a text column. Prints the median time of each and the ratio of the
bounded page to the plain one.

    .venv/bin/python benchmarks/postgres_foreign_page_bytes.py [--rounds N] [--url postgresql://...]
"""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
from benchmarks._compare import medians, ratio_line
from benchmarks._postgres import arguments, connect
from psycopg import sql

from dbhandles.adapters.base import Query
from dbhandles.adapters.foreign_values import records_builder
from dbhandles.adapters.postgres_foreign import ForeignCatalog, PgReader
from dbhandles.filters import SortKey

ROWS = 500
SCHEMA = "bench_foreign_pages"


def _compare(
    conn: psycopg.Connection[Any], reader: PgReader, query: Query, rounds: int
) -> tuple[float, float]:
    """Median seconds of the plain page (the statement ``find`` ran before pages were bounded)
    and of ``find``'s bounded one, both built into records."""
    order = reader.compiler.order_by(reader.paths.order(query.order))
    plain = sql.SQL(
        f"SELECT {reader.select} FROM {reader.source} WHERE true ORDER BY {order} "
        "LIMIT %s OFFSET %s"
    )
    build = records_builder(reader.keys, range(len(reader.keys)))

    def run(statement: sql.SQL, params: tuple[Any, ...], timed: bool) -> Any:
        return conn.execute(statement, params)

    base, bounded = medians(
        [
            lambda: build(conn.execute(plain, (query.limit, 0)).fetchall()),
            lambda: reader.find(run, query),
        ],
        rounds,
    )
    return base, bounded


def main() -> None:
    args = arguments(__doc__, 100)
    with connect(args.url) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
        conn.execute(
            f"CREATE TABLE {SCHEMA}.pages (id integer PRIMARY KEY, title text, body text, "
            "n numeric, doc jsonb, tags text[])"
        )
        with conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {SCHEMA}.pages VALUES (%s, %s, %s, %s, %s, %s)",
                [
                    (
                        i,
                        f"t{(i * 7919) % ROWS:04}",
                        "x" * 1200,
                        i / 7,
                        orjson.dumps({"k": "y" * 200, "i": i}).decode(),
                        ["a", "b", str(i)],
                    )
                    for i in range(ROWS)
                ],
            )
        conn.execute(f"ANALYZE {SCHEMA}.pages")
        conn.execute("SET search_path = pg_catalog")
        reader = ForeignCatalog(SCHEMA).reader(conn, "pages")
        assert reader is not None
        try:
            for limit in (100, 500):
                for name, order in (
                    ("key", ()),
                    ("title", (SortKey(("title",)), SortKey(("id",)))),
                ):
                    query = Query(limit=limit, order=order) if order else Query(limit=limit)
                    base, bounded = _compare(conn, reader, query, args.rounds)
                    label = f"page of {limit} by {name}"
                    print(ratio_line(label, base, bounded, ("plain", "bounded")))
        finally:
            conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


if __name__ == "__main__":
    main()
