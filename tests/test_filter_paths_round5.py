"""Long dotted filter paths: SQL linear in the number of parts, the oracle's answer on every adapter.

A path of n parts, each of which may step through an array, used to compile to SQL that nested one
sub-expression per part and repeated it (2**n): 8 parts overflowed SQLite's parser. Stored values
nest up to 64 levels, so paths of up to 64 parts are legitimate.
"""

from __future__ import annotations

from typing import Any

import pytest

from dbhandles.adapters.postgres_compile import PostgresDialect
from dbhandles.adapters.sql_compile import SqlCompiler
from dbhandles.adapters.sqlite_compile import SqliteDialect
from dbhandles.evaluate import matches
from dbhandles.filters import parse_filter, parse_order_by
from dbhandles.service import Service

PARTS = "abcdefghijklmnopqrstuvwxyz"


def _path(n: int, digit_every: int = 0) -> str:
    parts = [PARTS[i % 26] if not digit_every or i % digit_every else "0" for i in range(n)]
    parts[0] = "a"
    return ".".join(parts)


def _nested(path: str, leaf: Any, array_at: int | None) -> Any:
    """A value reaching ``leaf`` through ``path``, with an array of two elements at part ``array_at``."""
    value = leaf
    parts = path.split(".")
    for i in reversed(range(1, len(parts))):
        part = parts[i]
        if part.isdigit():
            value = [value]
        elif i == array_at:
            value = [{"other": 1}, {part: value}]
        else:
            value = {part: value}
    return value


def _sql_length(dialect: Any, filter_: dict[str, Any]) -> int:
    fragment = SqlCompiler(dialect).where(parse_filter(filter_))
    return len(fragment.sql)


@pytest.mark.parametrize(
    "dialect", [SqliteDialect(), PostgresDialect()], ids=["sqlite", "postgres"]
)
@pytest.mark.parametrize("digit_every", [0, 3])
def test_sql_grows_linearly_with_the_parts(dialect: Any, digit_every: int) -> None:
    lengths = {n: _sql_length(dialect, {_path(n, digit_every): "x"}) for n in range(1, 65)}
    per_part = (lengths[64] - lengths[32]) / 32
    # Linear: the last 32 parts cost no more per part than the 16 before them, give or take the
    # longer path text each part repeats a bounded number of times.
    assert lengths[64] < 64 * 2000
    assert per_part <= 3 * (lengths[32] - lengths[16]) / 16 + 200
    sort_sql = SqlCompiler(dialect).order_by(parse_order_by([_path(64)]))
    assert len(sort_sql) < 64 * 2000


@pytest.fixture
def long_db(service: Service, db: str) -> tuple[Service, str, list[dict[str, Any]]]:
    records: list[dict[str, Any]] = []
    for n in (1, 2, 7, 8, 9, 10, 17, 33, 62, 64):
        path = _path(n)
        top = path.split(".")[0]
        for array_at in (None, 1, n // 2, n - 1):
            for leaf in ("x", "y", None, ["x", "z"]):
                if n + (array_at is not None) + isinstance(leaf, list) > 64:
                    continue  # nested deeper than a stored value may be
                data = {top: _nested(path, leaf, array_at)} if n > 1 else {top: leaf}
                records.append({"id": f"r{len(records)}", "n": n, "data": data})
    # Arrays of objects, created one by one (data/create), so no batch limit is in the way.
    for record in records:
        service.execute(
            "data/create",
            {"dbHandle": db, "collection": "deep", "id": record["id"], "data": record["data"]},
        )
    return service, db, records


@pytest.mark.parametrize("n", [1, 2, 7, 8, 9, 10, 17, 33, 62, 64])
def test_long_paths_answer_as_the_oracle(
    long_db: tuple[Service, str, list[dict[str, Any]]], n: int
) -> None:
    service, db, records = long_db
    path = _path(n)
    for filter_ in (
        {path: "x"},
        {path: None},
        {path: {"$ne": "x"}},
        {path: {"$exists": False}},
        {path: {"$in": ["y", "z"]}},
        {path: {"$regex": "^[xz]$"}},
    ):
        expected = sum(1 for r in records if matches(parse_filter(filter_), r["data"]))
        result = service.execute(
            "data/count", {"dbHandle": db, "collection": "deep", "filter": filter_}
        )
        assert result["total"] == expected, filter_
