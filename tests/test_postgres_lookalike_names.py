"""PostgreSQL, issue #14: a table another tool made with a collection's shape under a name holding
a capital (``CREATE TABLE "Fl" (LIKE fl INCLUDING ALL)``) is its own foreign table with its own
rows, never the collection ``fl`` its lower-cased name leads to (it was listed as ``Fl`` with
``fl``'s count, counted ``fl``'s rows, and a read of its own row was ``found: false``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from tests.pgserver import postgres_config, run_in_schema

pytestmark = pytest.mark.postgres

STAMP = "2026-01-01T00:00:00.000Z"


def _call(service: Service, db: str, command: str, **params: Any) -> Any:
    return service.execute(command, {"dbHandle": db, **params})


@pytest.mark.parametrize("lookalike", ["Fl", "FL"])
def test_a_look_alike_table_is_its_own_table_with_its_own_rows(
    service: Service, tmp_path: Path, lookalike: str
) -> None:
    pg = postgres_config(tmp_path)
    run_in_schema(pg)  # the schema, made first
    db = str(service.execute("data/open", {"adapter": "postgres", "config": pg})["dbHandle"])
    for record_id in ("a", "b"):
        _call(service, db, "data/create", collection="fl", id=record_id, data={"n": 1})
    run_in_schema(
        pg,
        f'CREATE TABLE "{lookalike}" (LIKE fl INCLUDING ALL)',
        f"INSERT INTO \"{lookalike}\" VALUES ('zz', '{{\"n\": 5}}', '{STAMP}', '{STAMP}', 1)",
    )
    listing = {c["name"]: c for c in _call(service, db, "data/schema")["collections"]}
    assert listing["fl"]["kind"] == "collection" and listing["fl"]["recordCount"] == 2
    assert listing[lookalike]["kind"] == "table" and listing[lookalike]["recordCount"] == 1
    assert _call(service, db, "data/count", collection=lookalike)["total"] == 1
    assert _call(service, db, "data/count", collection="fl")["total"] == 2
    own = _call(service, db, "data/read", collection=lookalike, id="zz")
    assert own["found"] and own["data"]["data"] == {"n": 5}, own
    assert not _call(service, db, "data/read", collection=lookalike, id="a")["found"]
    assert not _call(service, db, "data/read", collection="fl", id="zz")["found"]
    listed = _call(service, db, "data/list", collection=lookalike)["items"]
    assert [r["id"] for r in listed] == ["zz"]
    # Another spelling matches neither exactly: the collection's own name rule (lower-cased) wins.
    other = "fL" if lookalike == "Fl" else "Fl"
    assert _call(service, db, "data/count", collection=other)["total"] == 2
