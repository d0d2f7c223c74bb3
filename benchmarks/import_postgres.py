"""JSONL import into PostgreSQL against SQLite: ``data/import`` of one file into a handle of each,
in the same process, in turn, best of ``--rounds`` (issues #15/#17: PostgreSQL was ~7x slower).

Each round imports the whole file into a new collection of each database (a first import: every
line stored), then imports it again into the same collection (a re-run: every line skipped, the
``ON CONFLICT DO NOTHING`` path and the read-back of ``importer/collisions.py``). Lines are parsed
in this process (``parser: inline``) so both contenders do the same Python work. Prints records/s
of each and PostgreSQL's rate as a share of SQLite's, measured in the same run. Usage::

    PYTHONPATH=src:. python benchmarks/import_postgres.py --records 20000 --rounds 3
    PYTHONPATH=src:. python benchmarks/import_postgres.py --url postgresql://...  # a running server

Without ``--url`` a throwaway server is started (``tests/pgserver.py``, ``fsync=off``); the SQLite
database is a file in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _datagen import generate_file

from dbhandles import Service


def _import(service: Service, handle: str, source: Path, collection: str) -> tuple[float, int]:
    """Seconds (wall clock) of one ``data/import``, and how many lines it stored."""
    started = time.perf_counter()
    result = service.execute("data/import", {"input": str(source), "dbHandle": handle,
                                             "collection": collection, "parser": "inline"})  # fmt: skip
    return time.perf_counter() - started, int(result["imported"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", default=None, help="a PostgreSQL server (else one is started)")
    args = parser.parse_args()
    url = args.url
    if url is None:
        from tests.pgserver import postgres_server

        url = postgres_server().url
    folder = Path(tempfile.mkdtemp(prefix="dbh-bench-pgimport-"))
    try:
        source = generate_file(folder / "in.jsonl", args.records)
        megabytes = source.stat().st_size / 1e6
        service = Service(home=str(folder / "home"))
        try:
            handles = {
                "sqlite": service.execute("data/open", {"adapter": "sqlite", "config": {
                    "path": str(folder / "db.sqlite"), "mode": "create"}})["dbHandle"],
                "postgres": service.execute("data/open", {"adapter": "postgres", "config": {
                    "url": url, "schema": f"bench_import_{os.getpid()}", "mode": "create"}})[
                    "dbHandle"],
            }  # fmt: skip
            best: dict[tuple[str, str], float] = {}
            for round_ in range(args.rounds):
                for name, handle in handles.items():
                    collection = f"r{round_}"
                    first, stored = _import(service, handle, source, collection)
                    assert stored == args.records, (name, stored)
                    again, stored = _import(service, handle, source, collection)
                    assert stored == 0, (name, stored)
                    for kind, seconds in (("first", first), ("rerun", again)):
                        key = (name, kind)
                        best[key] = min(best.get(key, seconds), seconds)
                    print(f"round {round_ + 1} {name}: first {first:.2f} s, re-run {again:.2f} s")
        finally:
            service.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{args.records} records, {megabytes:.1f} MB, best of {args.rounds} (wall clock):")
    for kind in ("first", "rerun"):
        pg, lite = best[("postgres", kind)], best[("sqlite", kind)]
        print(
            f"  {kind:5}: postgres {args.records / pg:8.0f} records/s ({pg:.2f} s), "
            f"sqlite {args.records / lite:8.0f} records/s ({lite:.2f} s); "
            f"postgres/sqlite {lite / pg:.2f}x"
        )
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
