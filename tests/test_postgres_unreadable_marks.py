"""Issue #14: an unfiltered count of a PostgreSQL collection no longer walks every row's ``jsonb``.

Each collection dbhandles creates carries a partial index of its unreadable rows
(``adapters/postgres_marks.py``), kept by PostgreSQL on every write, dbhandles' or another tool's;
the count is ``count(*)`` less its rows and ``unreadable`` its rows. These tests check the rule
still holds through it (another tool's insert, update and delete; a listing, a count, a schema's
``recordCount`` and ``unreadable`` agree), that the count uses the index, and that a collection
an older version made (no index) is counted by the full test and upgraded when its indexes are
ensured. ``benchmarks/postgres_readable_rows.py`` measures the speed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dbhandles import Service
from dbhandles.adapters.postgres_marks import UNREADABLE_FUNCTION, has_mark, mark_name

pytestmark = pytest.mark.postgres
#: ``createdAt`` / ``updatedAt`` as dbhandles writes them.
STAMP = "2026-01-01T00:00:00.000Z"
#: Rows another tool inserts: the first two are no record, the third is one.
FOREIGN = {
    "x400": '{"n": 1e400}',
    "xid": '{"id": "zz"}',
    "xok": '{"n": 2.5, "tags": ["a"]}',
}


def _connect(pg: dict[str, Any]) -> psycopg.Connection[Any]:
    conn = psycopg.connect(pg["url"], autocommit=True)
    conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(pg["schema"])))
    return conn


def _made(service: Service, tmp_path: Path, records: int = 5) -> tuple[dict[str, Any], str]:
    from tests.pgserver import postgres_config

    pg = postgres_config(tmp_path)
    db = service.execute("data/open", {"adapter": "postgres", "config": pg})["dbHandle"]
    for i in range(records):
        service.execute(
            "data/create",
            {"dbHandle": db, "collection": "c", "id": f"r{i}", "data": {"n": i, "f": i / 7}},
        )
    return pg, str(db)


def _agree(service: Service, db: str, readable: int, unreadable: int) -> None:
    ask = lambda command, **p: service.execute(command, {"dbHandle": db, "collection": "c", **p})  # noqa: E731
    listed = ask("data/list", limit=100)
    assert (len(listed["items"]), listed["count"], listed["unreadable"]) == (
        readable,
        readable,
        unreadable,
    )
    assert ask("data/count")["total"] == readable
    schema = ask("data/schema")
    assert (schema["recordCount"], schema["unreadable"]) == (readable, unreadable)


def test_a_new_collection_carries_the_index_and_counts_agree_with_another_tools_writes(
    service: Service, tmp_path: Path
) -> None:
    pg, db = _made(service, tmp_path)
    with _connect(pg) as conn:
        assert has_mark(conn, pg["schema"], "c")
    _agree(service, db, 5, 0)
    with _connect(pg) as conn:  # another tool: inserts
        for record_id, text in FOREIGN.items():
            conn.execute(
                "INSERT INTO c VALUES (%s, %s::jsonb, %s, %s, 1)", (record_id, text, STAMP, STAMP)
            )
    _agree(service, db, 6, 2)
    with _connect(pg) as conn:  # updates, both ways, and a system column
        conn.execute("""UPDATE c SET data = '{"n": 18446744073709551616}' WHERE id = 'r0'""")
        conn.execute("""UPDATE c SET data = '{"n": 1}' WHERE id = 'x400'""")
        conn.execute("UPDATE c SET version = 0 WHERE id = 'r1'")
    _agree(service, db, 5, 3)
    with _connect(pg) as conn:  # deletes
        conn.execute("DELETE FROM c WHERE id IN ('r0', 'xid')")
    _agree(service, db, 5, 1)
    # dbhandles' own update of a row another tool made readable keeps the count exact.
    service.execute(
        "data/update", {"dbHandle": db, "collection": "c", "id": "x400", "data": {"n": 2}}
    )
    _agree(service, db, 5, 1)


def test_the_unfiltered_count_reads_the_index_not_every_row(
    service: Service, tmp_path: Path
) -> None:
    pg, _ = _made(service, tmp_path, records=1)
    with _connect(pg) as conn:
        conn.execute(
            "INSERT INTO c SELECT 'g' || i, jsonb_build_object('n', i, 'f', i / 7.0), %s, %s, 1 "
            "FROM generate_series(1, 3000) AS i",
            (STAMP, STAMP),
        )
        conn.execute("ANALYZE c")
        call = sql.SQL("{}.{}(id, data, created_at, updated_at, version)").format(
            sql.Identifier(pg["schema"]), sql.Identifier(UNREADABLE_FUNCTION)
        )
        plan = conn.execute(
            sql.SQL("EXPLAIN SELECT count(*) FROM c WHERE {}").format(call)
        ).fetchall()
        assert mark_name(pg["schema"], "c") in " ".join(line for (line,) in plan)


def test_a_collection_an_older_version_made_is_counted_by_the_test_then_upgraded(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dbhandles.adapters import postgres_schema

    asked: list[str] = []

    def counted(conn: psycopg.Connection[Any], schema: str, table: str) -> bool:
        asked.append(table)
        return has_mark(conn, schema, table)

    monkeypatch.setattr(postgres_schema, "has_mark", counted)
    pg, db = _made(service, tmp_path)
    service.execute("data/close", {"dbHandle": db})
    with _connect(pg) as conn:  # as an older version left it: no index
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(mark_name(pg["schema"], "c"))))
        conn.execute("INSERT INTO c VALUES ('x400', '{\"n\": 1e400}', %s, %s, 1)", (STAMP, STAMP))
    fresh = Service()
    try:
        again = str(fresh.execute("data/open", {"adapter": "postgres", "config": pg})["dbHandle"])
        asked.clear()
        _agree(fresh, again, 5, 1)
        _agree(fresh, again, 5, 1)
        assert asked == ["c"]  # the missing index is remembered: one catalog query, not one a count
        fresh.declare("c", indexes=["n"])  # a write ensures its indexes, which upgrades it
        fresh.execute(
            "data/create", {"dbHandle": again, "collection": "c", "id": "r9", "data": {"n": 9}}
        )
        with _connect(pg) as conn:
            assert has_mark(conn, pg["schema"], "c")
        _agree(fresh, again, 6, 1)
        assert asked == ["c", "c"]  # asked again once upgraded here, then known
    finally:
        fresh.close()
