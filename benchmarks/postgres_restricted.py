"""What a PostgreSQL restricted handle's checks cost: the same commands through a handle with
``deniedCollections`` and through an unrestricted one, both measured in this run.

One schema holds a collection ``things`` (dbhandles' own table, 200 records), two tables another
tool made (``orders``, ``customers``: 200 rows, a foreign key, an index) and a view over both
(``order_view``). Per target: ``data/read`` by id, ``data/list`` (a page of 50) and
``data/create`` (each round creates a new id), through ``Service.execute``. Each round runs every
command of both handles in turn (a load on the machine slows them alike); prints the best
(minimum) of the rounds in ms per command and the ratio restricted / unrestricted. A restricted
handle checks what each command reaches (``postgres_reach.read_reach``,
``postgres_foreign_schema.own_code``, ``postgres_closure``); the unrestricted one checks nothing.
"warm": the checks' answers kept (``postgres_closure_cache``: one fingerprint per command);
"cold": forgotten before each restricted command, so the checks run in full.

    PYTHONPATH=src:. .venv/bin/python benchmarks/postgres_restricted.py [--rounds N] [--url ...]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._postgres import connect
from psycopg import sql

from dbhandles.adapters.postgres_closure_cache import clear
from dbhandles.service import Service
from dbhandles.settings import Settings

SCHEMA = "bench_restricted"
SETUP = (
    "CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL)",
    "CREATE TABLE orders (id integer PRIMARY KEY, customer integer REFERENCES customers, "
    "total numeric CHECK (total >= 0), note text DEFAULT 'none')",
    "CREATE INDEX orders_customer ON orders (customer)",
    "INSERT INTO customers SELECT i, 'customer ' || i FROM generate_series(1, 200) i",
    "INSERT INTO orders SELECT i, 1 + i % 200, i * 1.5 FROM generate_series(1, 200) i",
    "CREATE VIEW order_view AS SELECT o.id, o.total, c.name FROM orders o "
    "JOIN customers c ON c.id = o.customer",
)


def _best(runs: list[Callable[[], object]], rounds: int) -> list[float]:
    """Minimum seconds of each of ``runs``, taken in turn each round."""
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(rounds):
        for run, spent in zip(runs, times, strict=True):
            start = time.perf_counter()
            run()
            spent.append(time.perf_counter() - start)
    return [min(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    url = args.url
    if url is None:
        from tests.pgserver import postgres_server

        url = postgres_server().url
    with connect(url) as conn:
        schema = sql.Identifier(SCHEMA)
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(schema))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
        conn.execute(sql.SQL("SET search_path = {}").format(schema))
        for statement in SETUP:
            conn.execute(statement)
    config = {"url": url, "schema": SCHEMA, "mode": "create"}
    with tempfile.TemporaryDirectory() as folder:
        service = Service(settings=Settings(home=Path(folder) / "home"))
        try:
            plain = service.execute("data/open", {"adapter": "postgres", "config": config})
            restricted = service.execute(
                "data/open",
                {"adapter": "postgres", "config": config,
                 "permissions": {"deniedCollections": ["secret"]}},
            )  # fmt: skip
            for i in range(200):
                service.execute("data/create", {"dbHandle": plain["dbHandle"],
                                                "collection": "things",
                                                "data": {"id": f"t{i}", "n": i}})  # fmt: skip
            ids = itertools.count(1000)
            rows: list[tuple[str, float, float, float]] = []
            for target, read_id in (("things", "t7"), ("orders", "7"), ("order_view", None)):
                commands: list[tuple[str, str, dict[str, Any]]] = []
                if read_id is not None:
                    commands.append(("data/read", target, {"id": read_id}))
                commands.append(("data/list", target, {"limit": 50}))
                if target != "order_view":
                    commands.append(("data/create", target, {}))
                for command, collection, extra in commands:

                    def run(handle: str, cmd: str = command, coll: str = collection,
                            more: dict[str, Any] = extra) -> Any:  # fmt: skip
                        params: dict[str, Any] = {"dbHandle": handle, "collection": coll, **more}
                        if cmd == "data/create":
                            n = next(ids)
                            params["data"] = (
                                {"id": f"n{n}", "n": n} if coll == "things"
                                else {"id": n, "customer": 1 + n % 200, "total": 1}
                            )  # fmt: skip
                        return service.execute(cmd, params)

                    run(plain["dbHandle"]), run(restricted["dbHandle"])  # warm both

                    def cold() -> Any:
                        clear()
                        return run(restricted["dbHandle"])

                    base, checked, uncached = _best(
                        [lambda: run(plain["dbHandle"]), lambda: run(restricted["dbHandle"]),
                         cold],
                        args.rounds,
                    )  # fmt: skip
                    rows.append((f"{command} {collection}", base, checked, uncached))
        finally:
            service.close()
    for name, base, checked, uncached in rows:
        print(f"{name:24} unrestricted {base * 1e3:6.2f} ms  restricted warm "
              f"{checked * 1e3:6.2f} ms (ratio {checked / base:5.2f})  cold "
              f"{uncached * 1e3:6.2f} ms (ratio {uncached / base:5.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
