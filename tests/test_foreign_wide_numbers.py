"""A number past +-2**63 in a column of a table dbhandles did not create (issue 15): the records'
bound keeps dbhandles' own integers exact; a foreign column has its own rule. A float column
(SQLite REAL, PostgreSQL ``double precision``/``real``) takes any finite double it holds, a
``numeric`` one any number; an integer column refuses one past its 64 bits, ``invalid_params``
naming the field, nothing written. Every write door (create, update, batch, copy into a table)
and a round trip (export, then the lines written back into the same kind of table)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import Service
from dbhandles.errors import DbHandlesError
from tests.conftest import adapter_config
from tests.test_foreign_copy import _sql

PG = pytest.mark.postgres

SQLITE = """
CREATE TABLE wide (id TEXT PRIMARY KEY, score REAL, n INTEGER, t TEXT);
CREATE TABLE back (id TEXT PRIMARY KEY, score REAL, n INTEGER, t TEXT);
INSERT INTO wide VALUES ('a', 1e20, 1, 'x'), ('b', 1e308, 2, 'y'), ('c', -1e300, 3, 'z');
"""
PG_SCRIPT = """
CREATE TABLE wide (id text PRIMARY KEY, score double precision, n bigint, t text, r real,
                   big numeric);
CREATE TABLE back (LIKE wide INCLUDING ALL);
INSERT INTO wide VALUES ('a', 1e20, 1, 'x', 1e20, 1e30), ('b', 1e308, 2, 'y', 3e38, -1e40),
                        ('c', -1e300, 3, 'z', -1e20, 123456789012345678901234567890);
"""
#: A field of each engine's table and a value past +-2**63 it takes.
TAKEN = {
    "sqlite": [("score", 1e20), ("score", -1.7e308), ("t", 1e300)],
    "postgres": [("score", 1e20), ("score", -1.7e308), ("r", 1e30), ("big", 10**30),
                 ("big", 1e25), ("t", 1e300)],
}  # fmt: skip
#: A field that cannot hold the value (an integer column), and why in words.
REFUSED = {
    "sqlite": [("n", 1e20), ("score", 2**64)],
    "postgres": [("n", 1e20), ("n", -(2**70)), ("r", 1e300)],
}


def _open(service: Service, tmp_path: Path, adapter: str) -> str:
    folder = tmp_path / "w"
    folder.mkdir()
    if adapter == "sqlite":
        conn = sqlite3.connect(folder / "db.sqlite")
        conn.executescript(SQLITE)
        conn.close()
        config: dict[str, Any] = {"path": str(folder / "db.sqlite")}
    else:
        _sql("postgres", folder, PG_SCRIPT)
        config = adapter_config("postgres", folder)
        config.pop("mode", None)
    return str(service.execute("data/open", {"adapter": adapter, "config": config})["dbHandle"])


def _rows(service: Service, handle: str, table: str) -> list[dict[str, Any]]:
    listed = service.execute("data/list", {"dbHandle": handle, "collection": table})
    return list(listed["items"])


ADAPTERS = ["sqlite", pytest.param("postgres", marks=PG)]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_every_write_door_takes_what_the_column_holds(
    service: Service, tmp_path: Path, adapter: str
) -> None:
    handle = _open(service, tmp_path, adapter)
    base = {"dbHandle": handle, "collection": "wide"}
    for i, (name, value) in enumerate(TAKEN[adapter]):
        made = service.execute("data/create", {**base, "id": f"n{i}", "data": {name: value}})
        if name in ("score", "r"):  # a float column shows the double written
            assert made["data"][name] == value
        done = service.execute("data/update", {**base, "id": "a", "data": {name: value}})
        assert done["data"][name] == made["data"][name]
        batch = service.execute("data/batch", {"dbHandle": handle, "operations": [
            {"op": "create", "collection": "wide", "id": f"m{i}", "data": {name: value}},
            {"op": "update", "collection": "wide", "id": "b", "data": {name: value}}]})  # fmt: skip
        assert len(batch["results"]) == 2
        read = service.execute("data/read", {**base, "id": f"m{i}"})
        assert read["data"][name] == made["data"][name]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_number_the_column_cannot_hold_is_refused_naming_the_field(
    service: Service, tmp_path: Path, adapter: str
) -> None:
    handle = _open(service, tmp_path, adapter)
    base = {"dbHandle": handle, "collection": "wide"}
    before = _rows(service, handle, "wide")
    for name, value in REFUSED[adapter]:
        for command, params in [
            ("data/create", {**base, "id": "new", "data": {name: value}}),
            ("data/update", {**base, "id": "a", "data": {name: value}}),
        ]:
            with pytest.raises(DbHandlesError) as info:
                service.execute(command, params)
            assert (info.value.code, info.value.field) == ("invalid_params", f"data.{name}")
        assert _rows(service, handle, "wide") == before


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_export_and_write_back_round_trips(service: Service, tmp_path: Path, adapter: str) -> None:
    handle = _open(service, tmp_path, adapter)
    out = tmp_path / "wide.jsonl"
    service.execute("data/export", {"dbHandle": handle, "collection": "wide", "output": str(out)})
    lines = [orjson.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 3
    service.execute("data/batch", {"dbHandle": handle, "operations": [
        {"op": "create", "collection": "back", "data": line} for line in lines]})  # fmt: skip
    assert _rows(service, handle, "back") == _rows(service, handle, "wide")
    service.execute("data/truncate", {"dbHandle": handle, "collection": "back"})
    copied = service.execute("data/copy", {"from": {"dbHandle": handle, "collection": "wide"},
                                           "to": {"dbHandle": handle, "collection": "back"},
                                           "batchSize": 1})  # fmt: skip
    assert copied["copied"] == 3
    assert _rows(service, handle, "back") == _rows(service, handle, "wide")
