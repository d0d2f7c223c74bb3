"""``data/schema`` lists a table it cannot read with ``recordCount: null`` and the rest as usual
(issue 15, outside tester's finding 2; PostgreSQL's case is ``test_postgres_foreign_roles.py``).

On SQLite the table that cannot be read is a virtual table whose module is not loaded: its
``CREATE VIRTUAL TABLE`` is in the schema (written here through ``writable_schema``, as another
program with the extension would leave it), but this connection has no such module.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dbhandles import Service
from dbhandles.errors import ReadOnly


def test_a_virtual_table_whose_module_is_missing_does_not_break_the_listing(
    service: Service, tmp_path: Path
) -> None:
    path = tmp_path / "ext.db"
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE plain (id INTEGER PRIMARY KEY); INSERT INTO plain VALUES (1);")
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute(
        "INSERT INTO sqlite_schema (type, name, tbl_name, rootpage, sql) VALUES "
        "('table', 'vec', 'vec', 0, 'CREATE VIRTUAL TABLE vec USING no_such_module(a)')"
    )
    conn.commit()
    conn.close()
    handle = service.execute("data/open", {"adapter": "sqlite",
                                           "config": {"path": str(path)}})["dbHandle"]  # fmt: skip
    listed = {
        t["name"]: t for t in service.execute("data/schema", {"dbHandle": handle})["collections"]
    }
    assert listed["vec"]["recordCount"] is None and "module" in listed["vec"]["refused"]
    assert listed["plain"]["recordCount"] == 1
    with pytest.raises(ReadOnly, match="module"):
        service.execute("data/list", {"dbHandle": handle, "collection": "vec"})
