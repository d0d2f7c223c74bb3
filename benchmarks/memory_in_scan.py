"""A memory scan with a large ``$in``: ``evaluate.matches`` against the plainest Python loop.

Issue 13: ``data/list`` with a 1,300-value ``$in`` over a 300,000-record memory handle took 2.3-4.5 s,
all of it holding Python's GIL (two scans: the count and the page). This times one scan of
``--records`` records two ways, in the same run, interleaved, best of ``--rounds``:

* **matches**: ``[r for r in records if matches(node, r)]``, what the memory adapter runs;
* **floor**: ``[r for r in records if r.get("tag") in wanted]``, a set lookup and nothing else: the
  least any Python evaluation of this filter can cost.

It prints both and their ratio (matches / floor); the counts must agree. Usage::

    python benchmarks/memory_in_scan.py [--records=300000] [--values=1300] [--rounds=5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from dbhandles.evaluate import matches
from dbhandles.filters import parse_filter


def tag(i: int) -> str:
    return f"tag-{i:07d}-" + "x" * 34


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--values", type=int, default=1_300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    records = [{"id": str(i), "tag": tag(i), "n": i} for i in range(args.records)]
    step = max(1, args.records // args.values)
    values = [tag(i * step) for i in range(args.values)]
    node = parse_filter({"tag": {"$in": values}})
    wanted = set(values)
    best = {"matches": float("inf"), "floor": float("inf")}
    counts: dict[str, int] = {}
    for _ in range(args.rounds):
        start = time.perf_counter()
        counts["matches"] = len([r for r in records if matches(node, r)])
        best["matches"] = min(best["matches"], time.perf_counter() - start)
        start = time.perf_counter()
        counts["floor"] = len([r for r in records if r.get("tag") in wanted])
        best["floor"] = min(best["floor"], time.perf_counter() - start)
    if counts["matches"] != counts["floor"]:
        print(f"counts differ: {counts}")
        return 1
    print(f"{args.records:,} records, $in of {args.values:,} values, {counts['floor']:,} match; "
          f"best of {args.rounds}")  # fmt: skip
    print(f"matches: {best['matches'] * 1e3:.0f} ms, floor: {best['floor'] * 1e3:.0f} ms, "
          f"ratio {best['matches'] / best['floor']:.1f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
