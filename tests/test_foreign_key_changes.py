"""An update that changes the key of a row of a table dbhandles did not create is the documented
``invalid_params`` on ``data`` ("the key of a record cannot change"), nothing written, whether the
new key is free or another row's (issue 15: a taken key answered ``record_exists`` on ``id``,
telling the caller which keys exist). Compound, text and integer keys; data/update and data/batch;
SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.errors import DbHandlesError
from tests.conftest import adapter_config
from tests.test_foreign_copy import _sql

PG = pytest.mark.postgres

SCRIPT = """
CREATE TABLE pairs (a text, b integer, c integer, PRIMARY KEY (a, b));
INSERT INTO pairs VALUES ('x', 1, 0), ('x', 2, 0);
CREATE TABLE named (k text PRIMARY KEY, v integer);
INSERT INTO named VALUES ('a', 1), ('b', 2);
CREATE TABLE numbered (k integer PRIMARY KEY, v integer);
INSERT INTO numbered VALUES (1, 1), (2, 2);
"""
#: (table, the id of the row to change, a key change to another row's key, to a free key).
CHANGES = [
    ("pairs", '["x",1]', {"b": 2}, {"b": 3}),
    ("named", "a", {"k": "b"}, {"k": "z"}),
    ("numbered", "1", {"k": 2}, {"k": 9}),
]


def _open(service: Service, tmp_path: Path, adapter: str) -> str:
    folder = tmp_path / "k"
    folder.mkdir()
    if adapter == "sqlite":
        conn = sqlite3.connect(folder / "db.sqlite")
        conn.executescript(SCRIPT)
        conn.close()
        config: dict[str, Any] = {"path": str(folder / "db.sqlite")}
    else:
        _sql("postgres", folder, SCRIPT)
        config = adapter_config("postgres", folder)
        config.pop("mode", None)
    return str(service.execute("data/open", {"adapter": adapter, "config": config})["dbHandle"])


def _rows(service: Service, handle: str, table: str) -> list[dict[str, Any]]:
    listed = service.execute("data/list", {"dbHandle": handle, "collection": table})
    return sorted(listed["items"], key=lambda r: str(r["id"]))


@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("adapter", ["sqlite", pytest.param("postgres", marks=PG)])
def test_a_key_change_is_invalid_params_whether_the_new_key_is_taken_or_free(
    service: Service, tmp_path: Path, adapter: str, batch: bool
) -> None:
    handle = _open(service, tmp_path, adapter)
    for table, record_id, taken, free in CHANGES:
        before = _rows(service, handle, table)
        for data in (taken, free):
            update = {"collection": table, "id": record_id, "data": data}
            command, params = (
                ("data/batch", {"dbHandle": handle, "operations": [{"op": "update", **update}]})
                if batch
                else ("data/update", {"dbHandle": handle, **update})
            )
            with pytest.raises(DbHandlesError) as info:
                service.execute(command, params)
            assert info.value.code == "invalid_params", info.value.message
            assert info.value.field == ("operations[0].data" if batch else "data")
            assert "the key of a record cannot change" in info.value.message
            assert _rows(service, handle, table) == before
        # Setting the key to the value it has is no change.
        same = {name: value for name, value in before[0].items() if name in taken}
        service.execute("data/update", {"dbHandle": handle, "collection": table,
                                        "id": str(before[0]["id"]), "data": same})  # fmt: skip
