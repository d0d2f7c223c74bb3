"""What the PostgreSQL benchmarks share: a connection read as the adapter reads (``jsonb`` through
orjson), to the server ``--url`` names or to one the tests' helper starts (``tests/pgserver.py``);
they time their statements with ``benchmarks/_compare.py``."""

from __future__ import annotations

import argparse
from typing import Any

import orjson
import psycopg
from psycopg.types.json import set_json_loads

__all__ = ["arguments", "connect"]


def arguments(description: str | None, rounds: int) -> argparse.Namespace:
    """The command line every PostgreSQL benchmark reads: ``--rounds`` (``rounds`` by default) and
    ``--url`` (the server; one is started for the run when it is omitted)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--url", default=None)
    return parser.parse_args()


def connect(url: str | None) -> psycopg.Connection[Any]:
    """An autocommit connection to ``url``, or to a server started for this run when ``None``
    (needs the repository root on ``PYTHONPATH``, as the benchmarks' usage lines say)."""
    if url is None:
        from tests.pgserver import postgres_server

        url = postgres_server().url
    conn = psycopg.connect(url, autocommit=True)
    set_json_loads(orjson.loads, conn)  # as the adapter's connections (postgres.py)
    return conn
