"""The parse step of an import, per line, against ``orjson.loads`` measured in the same run.

Reads the first ``--lines`` lines of the continuum-git file that ``import_jsonl.py`` generates (made
here if missing) and times, interleaved over ``--rounds`` rounds (the best round of each kept):

* **loads**: ``orjson.loads`` of each line, the floor's validation;
* **no rule**: what the parser did per line before the value rule: ``loads``, ``orjson.dumps``
  compared with the line, the content-hash id (``sha256`` of the sorted serialisation);
* **parse_chunk**: ``dbhandles.importer.parse.parse_chunk`` with content-hash ids (the importer's
  parser, value rule included);
* **loads+dumps**: ``orjson.loads`` then ``orjson.dumps`` of each line (the serialisation the parser
  compares with the line, without the rule);
* **loads+rule**: ``orjson.loads`` then ``values.canonical`` (the rule and that serialisation);
* **loads+exact**: ``orjson.loads`` then ``values.check_value`` and ``orjson.dumps`` (the rule as the
  API applies it, with paths).

Each object is dropped before the next line is parsed, as in the importer (a list of 20,000 parsed
objects would not fit in the CPU's caches and slow every step down). Each round is timed in CPU time
of this process (``time.process_time``), not wall-clock: on a shared machine the wall-clock time of
a round is mostly how long other processes held the CPU (at a load average of 10 on 2 CPUs, ``loads``
measured 2.9 and 6.2 us a line in two runs). It prints microseconds per line and the ratios to
``loads``; the cost of the value rule is ``parse_chunk - no rule`` (and
``loads+rule - loads+dumps``). Usage::

    python benchmarks/import_parse.py                 # 20,000 lines, 7 rounds
    python benchmarks/import_parse.py --lines=50000 --rounds=11
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections.abc import Callable
from hashlib import sha256
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _datagen import generate_file

from dbhandles.importer.parse import parse_chunk
from dbhandles.values import canonical, check_value


def _loads(lines: list[bytes]) -> None:
    loads = orjson.loads
    for line in lines:  # as the floor does: each object is dropped before the next line
        loads(line)


def _each(lines: list[bytes], step: Callable[[dict[str, Any]], object]) -> None:
    loads = orjson.loads
    for line in lines:
        step(loads(line))


def _no_rule(lines: list[bytes]) -> None:
    loads, dumps, sort_keys = orjson.loads, orjson.dumps, orjson.OPT_SORT_KEYS
    for line in lines:
        obj = loads(line)
        text = dumps(obj)
        sha256(dumps(obj, option=sort_keys)).hexdigest()[:32]
        line.startswith(text)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/dbhandles-bench-import"))
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    sources = sorted(args.workdir.glob("continuum-git-*-0.jsonl"))
    source = sources[0] if sources else args.workdir / f"continuum-git-{args.lines}-0.jsonl"
    if not sources:
        generate_file(source, args.lines, 0)
    with source.open("rb") as file:
        lines = list(itertools.islice(file, args.lines))
    contenders: dict[str, Callable[[], object]] = {
        "loads": lambda: _loads(lines),
        "no rule": lambda: _no_rule(lines),
        "parse_chunk": lambda: parse_chunk(lines, None),
        "loads+dumps": lambda: _each(lines, orjson.dumps),
        "loads+rule": lambda: _each(lines, lambda obj: canonical(obj, "")),
        "loads+exact": lambda: _each(lines, lambda obj: orjson.dumps(check_value(obj, ""))),
    }
    print(f"{len(lines):,} lines of {source.name}, {sum(map(len, lines)) / len(lines):,.0f} bytes "
          f"each; python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.2f} at start")  # fmt: skip
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(args.rounds):
        for name, run in contenders.items():
            start = time.process_time()
            run()
            best[name] = min(best[name], time.process_time() - start)
    per_line = {name: seconds / len(lines) * 1e6 for name, seconds in best.items()}
    print(f"{'best of ' + str(args.rounds):13} {'CPU us/line':>11} {'/ loads':>8}")
    for name, micros in per_line.items():
        print(f"{name:13} {micros:11.2f} {micros / per_line['loads']:7.2f}x")
    rule = per_line["parse_chunk"] - per_line["no rule"]
    alone = per_line["loads+rule"] - per_line["loads+dumps"]
    exact = per_line["loads+exact"] - per_line["loads+dumps"]
    print(f"\nthe rule's check alone: {alone:.2f} us/line (the exact walk: {exact:.2f})")
    print(f"value rule in parse_chunk: {rule:.2f} us/line "
          f"({rule / per_line['loads']:.2f}x loads, {rule / per_line['no rule']:+.0%} on the parse)")  # fmt: skip
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
