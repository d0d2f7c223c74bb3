"""What the PostgreSQL benchmarks share: a connection read as the adapter reads (``jsonb`` through
orjson), to the server ``--url`` names or to one the tests' helper starts (``tests/pgserver.py``),
and medians of statements taken in turn (a load on the machine slows them alike)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson
import psycopg
from psycopg.types.json import set_json_loads

__all__ = ["connect", "medians"]


def connect(url: str | None) -> psycopg.Connection[Any]:
    """An autocommit connection to ``url``, or to a server started for this run when ``None``
    (needs the repository root on ``PYTHONPATH``, as the benchmarks' usage lines say)."""
    if url is None:
        from tests.pgserver import postgres_server

        url = postgres_server().url
    conn = psycopg.connect(url, autocommit=True)
    set_json_loads(orjson.loads, conn)  # as the adapter's connections (postgres.py)
    return conn


def medians(runs: list[Callable[[], object]], rounds: int) -> list[float]:
    """Median seconds of each of ``runs``, taken in turn each round."""
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(rounds):
        for run, spent in zip(runs, times, strict=True):
            start = time.perf_counter()
            run()
            spent.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]
