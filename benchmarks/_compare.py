"""How the benchmarks compare a measured run with its baseline in the same process: each run timed in
turn every round (a load on the machine slows them alike), then the median or best seconds of
each, and one printed line with their ratio."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

__all__ = ["best", "medians", "ratio_line", "timed_in_turn"]


def timed_in_turn(
    runs: Sequence[tuple[Callable[[], object], list[float]]],
    rounds: int,
    clock: Callable[[], float] = time.perf_counter,
) -> None:
    """``rounds`` rounds of calling each run of ``runs`` once, appending the seconds ``clock``
    counted (wall time by default, ``time.process_time`` for CPU) to its list; the order is
    reversed every other round, so no run always goes first."""
    for round_ in range(rounds):
        for run, spent in runs if round_ % 2 == 0 else runs[::-1]:
            start = clock()
            run()
            spent.append(clock() - start)


def medians(runs: list[Callable[[], object]], rounds: int) -> list[float]:
    """Median seconds of each of ``runs``, taken in turn (in the order given) each round."""
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(rounds):
        for run, spent in zip(runs, times, strict=True):
            start = time.perf_counter()
            run()
            spent.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def best(run: Callable[[], object], rounds: int) -> float:
    """The fewest wall seconds ``run`` took in ``rounds`` calls."""
    times: list[float] = []
    timed_in_turn([(run, times)], rounds)
    return min(times)


def ratio_line(
    label: str, base: float, measured: float, names: tuple[str, str], digits: int = 3
) -> str:
    """``label: <base name> B ms, <measured name> M ms, ratio R`` for the seconds ``base`` and
    ``measured`` (milliseconds with ``digits`` decimals; the ratio is measured over base)."""
    return (
        f"{label}: {names[0]} {base * 1e3:.{digits}f} ms, {names[1]} {measured * 1e3:.{digits}f} ms, "
        f"ratio {measured / base:.2f}"
    )
