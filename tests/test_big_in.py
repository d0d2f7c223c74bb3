"""A big ``$in`` compiles each value as one did alone: the same rows as the oracle, the same refusal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dbhandles.adapters.base import Query
from dbhandles.adapters.sqlite import SqliteAdapter
from dbhandles.errors import InvalidFilter
from dbhandles.evaluate import matches
from dbhandles.filters import Compare, parse_filter

STAMP = "2025-05-01T00:00:00.000Z"
VALUES: list[object] = [*(f"t{i}" for i in range(0, 3_000, 3)), 7, 7.5, True, None, 2**62]


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[SqliteAdapter]:
    config = {"path": str(tmp_path / "in.db"), "mode": "create"}
    adapter = SqliteAdapter(SqliteAdapter.prepare(SqliteAdapter.parse_config(config)))
    kinds: list[object] = ["t3", "t4", 7, 7.0, 7.5, "7", True, 1, None, 2**62, ["t6"], {"a": 1}]
    records = [
        {"id": f"r{i}", "k": kind, "createdAt": STAMP, "updatedAt": STAMP, "version": 1}
        for i, kind in enumerate(kinds)
    ]
    records.append({"id": "absent", "createdAt": STAMP, "updatedAt": STAMP, "version": 1})
    with adapter.session(write=True) as session:
        session.insert_many("c", records)
    yield adapter
    adapter.close()


def test_a_big_in_of_every_kind_finds_what_the_oracle_finds(sqlite: SqliteAdapter) -> None:
    node = parse_filter({"k": {"$in": VALUES}})
    with sqlite.session() as session:
        everything = session.find("c", Query())
        found = session.find("c", Query(filter=node))
    assert sorted(r["id"] for r in found) == sorted(r["id"] for r in everything if matches(node, r))
    assert len(found) > 4


def test_a_lone_surrogate_in_a_big_in_is_refused_by_name(sqlite: SqliteAdapter) -> None:
    node = Compare(("k",), "in", (*(f"t{i}" for i in range(100)), "bad\ud800"))
    with pytest.raises(InvalidFilter, match="not valid Unicode"):
        sqlite.where(node)
