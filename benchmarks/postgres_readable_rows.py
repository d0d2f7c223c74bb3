"""What reading PostgreSQL collections in full costs (``postgres_records.READABLE`` in every
query's ``WHERE``): the same statements run without and with the test, both measured in this run.

20,000 records of about 0.6 KB of JSON (a dozen fields, an array of objects, a nested object);
``count(*)`` of the whole table, a page of 100 in id order, and a filtered count. Prints the
median time of each and the ratio of the tested statement to the plain one.

    .venv/bin/python benchmarks/postgres_readable_rows.py [--rounds N] [--url postgresql://...]
"""

from __future__ import annotations

import argparse
from typing import Any

import orjson
from benchmarks._postgres import connect, medians

from dbhandles.adapters.postgres_records import READABLE

ROWS = 20_000


def _record(i: int) -> dict[str, Any]:
    return {
        "owner": f"user{i % 50}", "n": i, "score": i / 7, "tags": ["a", "b", f"t{i % 9}"],
        "messages": [{"role": "user", "content": "hello " * 10, "at": i}] * 3,
        "meta": {"source": "bench", "depth": {"x": 1, "y": [1, 2, 3]}}, "ok": i % 2 == 0,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    with connect(args.url) as conn:
        conn.execute(
            "CREATE TEMP TABLE bench_c (id text PRIMARY KEY, data jsonb NOT NULL, "
            "created_at text, updated_at text, version int)"
        )
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO bench_c VALUES (%s, %s, 't', 't', 1)",
                [(f"r{i:05}", orjson.dumps(_record(i)).decode()) for i in range(ROWS)],
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
            print(
                f"{name}: plain {base * 1e3:.2f} ms, read in full {measured * 1e3:.2f} ms, "
                f"ratio {measured / base:.2f}"
            )


if __name__ == "__main__":
    main()
