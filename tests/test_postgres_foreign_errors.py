"""Refused writes to PostgreSQL tables dbhandles did not create name what was wrong (issue 15,
tester's finding 10): a value a column cannot take names its field, a row no partition takes is
not a CHECK, a DEFERRABLE foreign key broken at COMMIT is a ``constraint_violation``.

The schema is built with plain SQL through psycopg, on the server the suite starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dbhandles import Service
from dbhandles.errors import ConstraintViolation, InvalidParams
from tests.pgserver import postgres_config

pytestmark = pytest.mark.postgres

SCHEMA = """
CREATE TYPE mood AS ENUM ('calm', 'busy');
CREATE TABLE parents (id integer PRIMARY KEY);
CREATE TABLE typed (id integer PRIMARY KEY, d date, ts timestamptz, m mood, small smallint,
                    n numeric(4, 1), nums integer[], note text,
                    parent integer REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE events (id integer, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
"""


@pytest.fixture
def handle(service: Service, tmp_path: Path) -> str:
    pg = postgres_config(tmp_path)
    with psycopg.connect(pg["url"], autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(pg["schema"])))
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(pg["schema"])))
        conn.execute(SCHEMA)
    return str(service.execute("data/open", {"adapter": "postgres", "config": pg})["dbHandle"])


def create(service: Service, handle: str, collection: str, data: dict[str, Any]) -> Any:
    return service.execute(
        "data/create", {"dbHandle": handle, "collection": collection, "data": data}
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("d", "2024-13-45"), ("ts", "yesterday-ish"), ("m", "happy"), ("small", 70000),
     ("n", "12345.6"), ("nums", [1, "x"])],
)  # fmt: skip
def test_a_value_a_column_cannot_take_names_its_field(
    service: Service, handle: str, field: str, value: Any
) -> None:
    with pytest.raises(InvalidParams) as caught:
        create(service, handle, "typed", {"id": 1, "note": "n", field: value})
    assert caught.value.field == f"data.{field}", caught.value.message


def test_a_row_no_partition_takes_is_not_a_check(service: Service, handle: str) -> None:
    with pytest.raises(ConstraintViolation) as caught:
        create(service, handle, "events", {"_id": 1, "at": "2030-01-01"})
    assert caught.value.details["constraint"] == "partition"
    assert "CHECK" not in caught.value.message


def test_a_deferred_foreign_key_broken_at_commit(service: Service, handle: str) -> None:
    with pytest.raises(ConstraintViolation) as caught:
        create(service, handle, "typed", {"id": 2, "parent": 99})
    assert caught.value.details["constraint"] == "foreign_key"
    assert "99" not in caught.value.message
    found = service.execute("data/read", {"dbHandle": handle, "collection": "typed", "id": 2})
    assert not found["found"]
