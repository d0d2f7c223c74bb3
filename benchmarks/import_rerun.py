"""What reporting colliding ids costs a re-run: ``data/import`` of a file already imported (every
line skipped, so every batch reads its records back, ``importer/collisions.py``) against the same
re-run with that check switched off, in the same process, in turn, best of ``--rounds``.

    python benchmarks/import_rerun.py --records 100000 --rounds 3

Prints both times and the ratio (the check's cost on the worst case; a first import, where every
batch stores every line, never runs it).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from _datagen import generate_file

from dbhandles import Service
from dbhandles.importer import run as import_run


def _rerun(service: Service, handle: str, source: Path) -> tuple[float, dict[str, object]]:
    started = time.perf_counter()
    result = service.execute("data/import", {"input": str(source), "dbHandle": handle,
                                             "collection": "c", "parser": "inline"})  # fmt: skip
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="dbh-bench-rerun-"))
    try:
        source = generate_file(folder / "in.jsonl", args.records)
        service = Service(home=str(folder / "home"))
        try:
            handle = service.execute("data/open", {"adapter": "sqlite", "config": {
                "path": str(folder / "db.sqlite"), "mode": "create"}})["dbHandle"]  # fmt: skip
            first, result = _rerun(service, handle, source)
            print(f"first import: {first:.2f} s, {result['imported']} imported")
            checked, unchecked = [], []
            real = import_run.collisions
            for _ in range(args.rounds):
                seconds, result = _rerun(service, handle, source)
                assert result["skipped"] == args.records and result["duplicates"] == 0, result
                checked.append(seconds)
                import_run.collisions = lambda *a, **k: []  # type: ignore[assignment]
                try:
                    unchecked.append(_rerun(service, handle, source)[0])
                finally:
                    import_run.collisions = real
        finally:
            service.close()
        best, base = min(checked), min(unchecked)
        print(
            f"re-run with the collision check: {best:.2f} s; without: {base:.2f} s; "
            f"ratio {best / base:.2f}x ({args.records} records, best of {args.rounds})"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
