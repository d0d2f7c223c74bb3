"""Rows another tool wrote into a SQLite file with plain ``sqlite3``, behind dbhandles' back: the
setup the tests of foreign writes, texts dbhandles would not write, and freshness share."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dbhandles import Service

#: Where ``written_by_another_tool`` puts its texts: a collection's ``data`` or a foreign table's
#: JSON TEXT column.
PLACES = ("collection", "foreign column")


@contextmanager
def another_connection(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection to the SQLite file ``path`` (autocommit, WAL), closed on the way out: its
    DDL moves the schema version as another process's would."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    try:
        yield conn
    finally:
        conn.close()


def run_sql(path: Path, *statements: str) -> None:
    """Run ``statements`` in order on one plain connection to ``path`` (made if missing), commit
    and close it: another process, as far as a service is concerned."""
    conn = sqlite3.connect(path)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


def open_sqlite(service: Service, config: dict[str, Any], **permissions: Any) -> str:
    """A handle to the SQLite database ``config`` names (with ``permissions``, if any)."""
    params: dict[str, Any] = {"adapter": "sqlite", "config": config}
    if permissions:
        params["permissions"] = permissions
    return str(service.execute("data/open", params)["dbHandle"])


def written_by_another_tool(
    service: Service, path: Path, where: str, texts: list[str]
) -> tuple[str, str, str]:
    """A database at ``path`` whose rows another tool wrote as the JSON ``texts`` (row ``i`` holds
    ``texts[i]``), ``where`` one of ``PLACES``: record ``r{i}`` of collection ``c``, made by
    dbhandles and then overwritten, or row ``i`` of table ``f (id INTEGER PRIMARY KEY, doc TEXT)``.

    Returns:
        (a fresh handle to ``path``, the collection, the field holding the JSON: ``""`` for a
        collection's record, ``"doc"`` for the foreign column).

    Raises:
        ValueError: ``where`` is not one of ``PLACES``.
    """
    if where not in PLACES:
        raise ValueError(f"no such place: {where!r}")
    if where == "collection":
        db = open_sqlite(service, {"path": str(path), "mode": "create"})
        for i in range(len(texts)):
            service.execute("data/create", {"dbHandle": db, "collection": "c", "id": f"r{i}",
                                             "data": {"n": 0}})  # fmt: skip
    conn = sqlite3.connect(path)
    try:
        if where == "collection":
            conn.executemany("UPDATE c SET data = ? WHERE id = ?",
                             [(text, f"r{i}") for i, text in enumerate(texts)])  # fmt: skip
        else:
            conn.execute("CREATE TABLE f (id INTEGER PRIMARY KEY, doc TEXT)")
            conn.executemany("INSERT INTO f VALUES (?, ?)", list(enumerate(texts)))
        conn.commit()
    finally:
        conn.close()
    db = open_sqlite(service, {"path": str(path)})
    return (db, "c", "") if where == "collection" else (db, "f", "doc")
