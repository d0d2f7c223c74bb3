"""Benchmark: the cost of each SQLite durability setting, side by side in one run.

Creates ``--records`` records one ``data/create`` (one commit) at a time on a fresh SQLite handle opened
with ``synchronous: normal`` and then with ``synchronous: full``, in the same process and folder, and
prints commits/s for each and the ratio. The folder is a temporary one under ``--dir`` (default: the
system temp folder; point it at the disk you deploy on, since fsync cost is the disk's). A benchmark,
not a test: nothing here asserts a time.

    .venv/bin/python benchmarks/durability.py [--records 2000] [--dir PATH]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from dbhandles import Service


def commits_per_second(service: Service, path: Path, synchronous: str, records: int) -> float:
    handle = service.execute(
        "data/open",
        {"adapter": "sqlite",
         "config": {"path": str(path), "mode": "create", "synchronous": synchronous}},
    )["dbHandle"]  # fmt: skip
    started = time.perf_counter()
    for i in range(records):
        service.execute("data/create", {"dbHandle": handle, "collection": "c", "data": {"i": i}})
    return records / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(dir=args.dir) as folder,
        Service(home=Path(folder) / "home") as service,
    ):
        rates = {
            mode: commits_per_second(service, Path(folder) / f"{mode}.sqlite", mode, args.records)
            for mode in ("normal", "full")
        }
    for mode, rate in rates.items():
        print(f"synchronous={mode:<7} {rate:10,.0f} commits/s")
    print(f"full costs {rates['normal'] / rates['full']:.2f}x normal per commit")


if __name__ == "__main__":
    main()
