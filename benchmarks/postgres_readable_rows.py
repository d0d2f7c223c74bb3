"""What reading PostgreSQL collections in full costs (``postgres_records.READABLE`` in every
query's ``WHERE``): the same statements run without and with the test, both measured in this run.

20,000 records of about 0.6 KB of JSON (a dozen fields, an array of objects, a nested object);
``count(*)`` of the whole table, a page of 100 in id order, and a filtered count. Prints the
median time of each and the ratio of the tested statement to the plain one; then the count with
the test of ``data`` alone against the whole test (``SYSTEM_READABLE``, the system columns'
share).

    .venv/bin/python benchmarks/postgres_readable_rows.py [--rounds N] [--url postgresql://...]
"""

from __future__ import annotations

from typing import Any

import orjson
from benchmarks._compare import medians, ratio_line
from benchmarks._postgres import arguments, connect

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
        conn.execute(
            "CREATE TEMP TABLE bench_c (id text PRIMARY KEY, data jsonb NOT NULL, "
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


if __name__ == "__main__":
    main()
