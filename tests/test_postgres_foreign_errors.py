"""Refused writes to PostgreSQL tables dbhandles did not create name what was wrong (issue 15,
tester's finding 10): a value a column cannot take names its field, a row no partition takes is
not a CHECK, a DEFERRABLE foreign key broken at COMMIT is a ``constraint_violation``.

The schema is built with plain SQL through psycopg, on the server the suite starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.errors import ConstraintViolation, InvalidParams
from tests.pgserver import postgres_schema

pytestmark = pytest.mark.postgres

SCHEMA = """
CREATE TYPE mood AS ENUM ('calm', 'busy');
CREATE TABLE parents (id integer PRIMARY KEY);
CREATE TABLE typed (id integer PRIMARY KEY, d date, ts timestamptz, m mood, small smallint,
                    n numeric(4, 1), nums integer[], note text,
                    parent integer REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE arrays (id integer PRIMARY KEY, tags text[], amounts numeric[], counts int[],
                     keys uuid[], flags boolean[], days date[], grid int[][], docs jsonb[]);
CREATE TABLE events (id integer, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
"""


@pytest.fixture
def handle(service: Service, tmp_path: Path) -> str:
    pg = postgres_schema(tmp_path, SCHEMA)
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


UUID = "6f1c2a3e-5b7d-4c1e-9a2b-3c4d5e6f7a8b"


@pytest.mark.parametrize(
    ("field", "value"),
    [("tags", ["x", {"y": 1}]), ("tags", [True]), ("amounts", [1.5, {"a": 1}]),
     ("amounts", [False]), ("amounts", ["abc"]), ("counts", [1, "x"]), ("keys", [5]),
     ("keys", ["not-a-uuid"]), ("flags", [1]), ("flags", [{"a": True}]), ("days", [20240101]),
     ("grid", [[1, 2], [3, {"z": 0}]])],
)  # fmt: skip
def test_an_array_element_the_element_type_cannot_take_names_the_field(
    service: Service, handle: str, field: str, value: Any
) -> None:
    with pytest.raises(InvalidParams) as caught:
        create(service, handle, "arrays", {"id": 1, field: value})
    assert caught.value.field == f"data.{field}", caught.value.message
    listed = service.execute("data/list", {"dbHandle": handle, "collection": "arrays"})
    assert listed["items"] == []


def test_array_elements_that_fit_are_stored_as_the_element_type_reads_them(
    service: Service, handle: str
) -> None:
    data = {"id": 1, "tags": ["x", 5, None, 'q"\\'], "amounts": [1.5, "2.25", 3],
            "counts": [1, "2"], "keys": [UUID], "flags": [True, False], "days": ["2024-05-07"],
            "grid": [[1, 2], [3, 4]], "docs": [{"y": 1}, "s", 2, None]}  # fmt: skip
    created = create(service, handle, "arrays", data)["data"]
    assert created == {**data, "tags": ["x", "5", None, 'q"\\'], "counts": [1, 2],
                       "amounts": [1.5, 2.25, 3]}  # fmt: skip
