"""How long reading a large request body holds Python's GIL: ``values.read_json``'s scan for long
digit runs against the ``re`` scan it replaced, measured in the same run (issue 13 D).

Every request body and WebSocket message is read by ``read_json``: ``orjson.loads``, then a scan for
19 or more digits in a row (an integer orjson may have read as a float). While a thread runs that
scan no other thread runs, the event loop included, so a 9.6 MB body from one client delayed every
other client by the scan's duration. Three 9-10 MB ``data/list`` bodies (a long string, a long
``$in`` of strings, a long ``$in`` of 18-digit integers) are scanned over ``--rounds`` rounds,
interleaved, the best round of each kept (CPU time of this process, ``time.process_time``). It prints
milliseconds per body for ``orjson.loads`` (the floor), the ``re`` scan and the ``translate`` scan
now used, and the ratio ``re / translate``. Usage::

    python benchmarks/long_digits.py              # 5 rounds
    python benchmarks/long_digits.py --rounds=11
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dbhandles.values import _has_long_digits

_RE = re.compile(rb"[0-9]{19}")


def _bodies() -> dict[str, bytes]:
    def listing(filter: object) -> bytes:
        return orjson.dumps({"collection": "big", "filter": filter})

    return {
        "string": listing({"t": "x" * 9_600_000}),
        "$in strings": listing({"t": {"$in": [f"value-{i}" for i in range(600_000)]}}),
        "$in integers": listing({"t": {"$in": list(range(10**17, 10**17 + 500_000))}}),
    }


def _time(step: Callable[[bytes], object], body: bytes, rounds: list[float]) -> None:
    start = time.process_time()
    step(body)
    rounds.append(time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(
        f"{'body':<14} {'MB':>5} {'loads ms':>9} {'re ms':>8} {'translate ms':>13} {'re/translate':>13}"
    )
    for name, body in _bodies().items():
        loads: list[float] = []
        scan_re: list[float] = []
        scan_now: list[float] = []
        for _ in range(args.rounds):
            _time(orjson.loads, body, loads)
            _time(_RE.search, body, scan_re)
            _time(_has_long_digits, body, scan_now)
        assert (_RE.search(body) is not None) == _has_long_digits(body)
        best = [min(x) * 1000 for x in (loads, scan_re, scan_now)]
        print(
            f"{name:<14} {len(body) / 1e6:>5.1f} {best[0]:>9.1f} {best[1]:>8.1f} {best[2]:>13.1f} "
            f"{best[1] / best[2]:>12.1f}x"
        )


if __name__ == "__main__":
    main()
