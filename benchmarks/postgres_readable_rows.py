"""What reading PostgreSQL collections in full costs (``postgres_records.READABLE`` in every
query's ``WHERE``): the same statements run without and with the test, both measured in this run.

20,000 records of about 0.6 KB of JSON (a dozen fields, an array of objects, a nested object);
``count(*)`` of the whole table, a page of 100 in id order, and a filtered count. Prints the
median time of each and the ratio of the tested statement to the plain one; then the count with
the test of ``data`` alone against the whole test (``SYSTEM_READABLE``, the system columns'
share); then the unfiltered count and ``unreadable`` as dbhandles runs them on a collection it
made (``postgres_marks``: ``count(*)`` less the rows of the partial index of unreadable rows)
against ``count(*)`` and the whole test (issue #14's target: within 3x of ``count(*)``).

    .venv/bin/python benchmarks/postgres_readable_rows.py [--rounds N] [--url postgresql://...]
"""

from __future__ import annotations

from typing import Any

import orjson
from benchmarks._compare import medians, ratio_line
from benchmarks._postgres import arguments, connect
from psycopg import sql

from dbhandles.adapters.postgres_marks import make_mark, unreadable_call
from dbhandles.adapters.postgres_records import READABLE, SYSTEM_READABLE

ROWS = 20_000
#: ``createdAt`` / ``updatedAt`` as dbhandles writes them (another text makes the row unreadable).
STAMP = "2026-01-01T00:00:00.000Z"


def _record(i: int) -> dict[str, Any]:
    return {
        "owner": f"user{i % 50}", "n": i, "score": i / 7, "tags": ["a", "b", f"t{i % 9}"],
        "messages": [{"role": "user", "content": "hello " * 10, "at": i}] * 3,
        "meta": {"source": "bench", "depth": {"x": 1, "y": [1, 2, 3]}}, "ok": i % 2 == 0,
    }  # fmt: skip


def main() -> None:
    args = arguments(__doc__, 20)
    with connect(args.url) as conn:
        conn.execute("DROP SCHEMA IF EXISTS bench_marks CASCADE")
        conn.execute("CREATE SCHEMA bench_marks")
        conn.execute("SET search_path = bench_marks")
        conn.execute(
            "CREATE TABLE bench_c (id text PRIMARY KEY, data jsonb NOT NULL, "
            "created_at text, updated_at text, version int)"
        )
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO bench_c VALUES (%s, %s, %s, %s, 1)",
                [
                    (f"r{i:05}", orjson.dumps(_record(i)).decode(), STAMP, STAMP)
                    for i in range(ROWS)
                ],
            )
        make_mark(conn, "bench_marks", "bench_c")  # as on a collection dbhandles creates
        conn.execute("ANALYZE bench_c")
        statements = {
            "count": ("SELECT count(*) FROM bench_c WHERE {}", ()),
            "page of 100": (
                "SELECT id, data, created_at, updated_at, version FROM bench_c WHERE {} "
                "ORDER BY id LIMIT 100",
                (),
            ),
            "filtered count": (
                "SELECT count(*) FROM bench_c WHERE {} AND data->>'owner' = %s",
                ("user7",),
            ),
        }
        for name, (text, params) in statements.items():
            plain, tested = (text.format("TRUE"), text.format(READABLE))
            base, measured = medians(
                [
                    lambda s=plain, p=params: conn.execute(s, p).fetchall(),  # type: ignore[misc]
                    lambda s=tested, p=params: conn.execute(s, p).fetchall(),  # type: ignore[misc]
                ],
                args.rounds,
            )
            print(ratio_line(name, base, measured, ("plain", "read in full"), digits=2))
        data_only = READABLE.replace(f"{SYSTEM_READABLE} AND ", "")
        count = statements["count"][0]
        base, measured = medians(
            [
                lambda: conn.execute(count.format(data_only)).fetchall(),
                lambda: conn.execute(count.format(READABLE)).fetchall(),
            ],
            args.rounds,
        )
        print(
            ratio_line(
                "count, system columns too",
                base,
                measured,
                ("data only", "with the system columns"),
                digits=2,
            )
        )

        marked = sql.SQL("SELECT (SELECT count(*) FROM bench_c) - (SELECT count(*) FROM bench_c "
                         "WHERE {})").format(unreadable_call("bench_marks"))  # fmt: skip
        plain = count.format("TRUE")
        tested = count.format(READABLE)
        base, measured, full = medians(
            [
                lambda: conn.execute(plain).fetchall(),
                lambda: conn.execute(marked).fetchall(),
                lambda: conn.execute(tested).fetchall(),
            ],
            args.rounds,
        )
        assert conn.execute(marked).fetchall() == conn.execute(tested).fetchall()
        print(ratio_line("unfiltered count, marked", base, measured, ("count(*)", "dbhandles")))
        print(
            ratio_line("unfiltered count, marked", full, measured, ("the whole test", "dbhandles"))
        )
        unreadable = sql.SQL("SELECT count(*) FROM bench_c WHERE {}").format(
            unreadable_call("bench_marks")
        )
        base, measured = medians(
            [
                lambda: conn.execute(count.format(f"NOT {READABLE}")).fetchall(),
                lambda: conn.execute(unreadable).fetchall(),
            ],
            args.rounds,
        )
        print(ratio_line("unreadable", base, measured, ("the whole test", "marked"), digits=4))
        # What the index costs each write: the same rows inserted into a table without it and into
        # one with it, in one statement (as an import) and as 500 single-row statements.
        conn.execute("CREATE TABLE bench_w (LIKE bench_c INCLUDING ALL)")
        conn.execute("CREATE TABLE bench_m (LIKE bench_c INCLUDING ALL)")
        make_mark(conn, "bench_marks", "bench_m")

        def bulk(table: str) -> None:
            conn.execute(f"TRUNCATE {table}")
            conn.execute(f"INSERT INTO {table} SELECT * FROM bench_c")

        def singles(table: str) -> None:
            conn.execute(f"TRUNCATE {table}")
            for i in range(500):
                conn.execute(
                    f"INSERT INTO {table} SELECT * FROM bench_c WHERE id = %s", (f"r{i:05}",)
                )

        for name, write in (("bulk insert of all rows", bulk), ("500 single inserts", singles)):
            base, measured = medians(
                [lambda w=write: w("bench_w"), lambda w=write: w("bench_m")],  # type: ignore[misc]
                max(3, args.rounds // 3),
            )
            print(ratio_line(name, base, measured, ("without the index", "with it"), digits=2))
        conn.execute("DROP SCHEMA bench_marks CASCADE")


if __name__ == "__main__":
    main()
