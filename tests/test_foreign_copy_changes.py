"""``data/copy`` into a table whose columns change values (issue 15): ``"007"`` stored as ``7``,
``1.005`` as ``1.01``, ``"abc  "`` as ``"abc"``. A move keeps such a source row (a conflict listed
in ``changes`` with its field); a copy counts it in ``changed``; value-preserving conversions
(``true`` as 1, a timestamp's text as another text of the same instant, ``"7"`` as 7) still verify.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.commands.copy_table import changed_field, preserved
from tests.conftest import adapter_config
from tests.test_foreign_copy import _sql

PG = pytest.mark.postgres

SOURCE = "CREATE TABLE src (k TEXT PRIMARY KEY, zip TEXT, ts TEXT, amount TEXT, name TEXT)"
LOSSY = ("a", "007", "2024-03-01 10:00", "1.005", "abc  ")
FAITHFUL = ("b", "7", "2024-03-01 10:00", "1.25", "abc")


def _sqlite(path: Path, script: str, rows: list[tuple[Any, ...]] | None = None) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.executescript(script)
        if rows:
            marks = ", ".join("?" for _ in rows[0])
            conn.executemany(f"INSERT INTO {script.split()[2]} VALUES ({marks})", rows)
        conn.commit()
    finally:
        conn.close()


def _open(service: Service, adapter: str, folder: Path) -> str:
    config = adapter_config(adapter, folder)
    config.pop("mode", None)
    if adapter == "sqlite":
        config = {"path": str(folder / "db.sqlite")}
    return str(service.execute("data/open", {"adapter": adapter, "config": config})["dbHandle"])


def _source(service: Service, tmp_path: Path, rows: list[tuple[Any, ...]]) -> str:
    (tmp_path / "s").mkdir()
    _sqlite(tmp_path / "s" / "db.sqlite", SOURCE, rows)
    return _open(service, "sqlite", tmp_path / "s")


def _target(service: Service, tmp_path: Path, adapter: str) -> str:
    folder = tmp_path / "t"
    folder.mkdir()
    if adapter == "sqlite":
        _sqlite(folder / "db.sqlite", "CREATE TABLE dst (k TEXT PRIMARY KEY, zip INTEGER, ts TEXT, "
                "amount REAL, name TEXT)")  # fmt: skip
    else:
        script = ("CREATE TABLE dst (k text PRIMARY KEY, zip integer, ts timestamptz, "
                  "amount numeric(6,2), name varchar(3))")  # fmt: skip
        # _sql also inserts into notes: give it the table to insert nothing into.
        _sql("postgres", folder, script)
    return _open(service, adapter, folder)


def _copy(service: Service, a: str, b: str, **params: Any) -> dict[str, Any]:
    return service.execute("data/copy", {"from": {"dbHandle": a, "collection": "src"},
                                         "to": {"dbHandle": b, "collection": "dst"}, **params})  # fmt: skip


def _ids(service: Service, handle: str, collection: str) -> list[str]:
    page = service.execute("data/list", {"dbHandle": handle, "collection": collection})
    return sorted(str(r["id"]) for r in page["items"])


ENGINES = ["sqlite", pytest.param("postgres", marks=PG)]


@pytest.mark.parametrize("adapter", ENGINES)
def test_a_move_keeps_the_source_row_whose_value_the_column_changed(
    service: Service, tmp_path: Path, adapter: str
) -> None:
    a = _source(service, tmp_path, [LOSSY, FAITHFUL])
    b = _target(service, tmp_path, adapter)
    done = _copy(service, a, b, move=True)
    assert (done["copied"], done["deleted"], done["conflicts"], done["changed"]) == (2, 1, 1, 1)
    assert done["conflictIds"] == ["a"]
    assert done["changes"] == [{"id": "a", "field": "zip", "value": "007", "stored": 7}]
    assert _ids(service, a, "src") == ["a"]  # the changed row is kept, the faithful one moved
    # A re-run finds the copy identical to what the table would store, and still keeps the source.
    again = _copy(service, a, b, move=True)
    assert (again["skipped"], again["deleted"], again["conflicts"]) == (1, 0, 1)
    assert _ids(service, a, "src") == ["a"]


@PG
def test_every_lossy_postgres_conversion_is_named(service: Service, tmp_path: Path) -> None:
    """Each column of the lossy row changes it on its own: the field named is that column."""
    rows = [("z", "007", "2024-03-01T10:00:00Z", "1.25", "abc"),
            ("m", "7", "2024-03-01T10:00:00Z", "1.005", "abc"),
            ("n", "7", "2024-03-01T10:00:00Z", "1.25", "abc  "),
            ("t", "7", "2024-03-01T10:00:00+02:00", "1.25", "abc")]  # fmt: skip
    a = _source(service, tmp_path, rows)
    b = _target(service, tmp_path, "postgres")
    done = _copy(service, a, b, move=True)
    fields = {c["id"]: (c["field"], c["stored"]) for c in done["changes"]}
    assert fields == {"z": ("zip", 7), "m": ("amount", 1.01), "n": ("name", "abc")}
    assert (done["deleted"], _ids(service, a, "src")) == (1, ["m", "n", "z"])


@pytest.mark.parametrize("adapter", ENGINES)
def test_a_copy_without_move_reports_changed_rows(
    service: Service, tmp_path: Path, adapter: str
) -> None:
    a = _source(service, tmp_path, [LOSSY, FAITHFUL])
    b = _target(service, tmp_path, adapter)
    done = _copy(service, a, b)
    assert (done["copied"], done["changed"], done["conflicts"]) == (2, 1, 0)
    assert [c["id"] for c in done["changes"]] == ["a"]
    again = _copy(service, a, b)  # a re-run reports it again (skipped, still changed)
    assert (again["skipped"], again["changed"]) == (2, 1)


@pytest.mark.parametrize(
    ("value", "stored"),
    [(True, 1), (False, 0), ("7", 7), ("7.50", 7.5), (7, "7"), ("1e3", 1000),
     ("2024-03-01T10:00:00+02:00", "2024-03-01T08:00:00.000000Z"),
     ("2024-03-01 10:00", "2024-03-01T10:00:00.000000Z"), ("10:00", "10:00:00"),
     ("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
     ({"a": [1, 2.0]}, {"a": [1.0, 2]}), (None, None)],
)  # fmt: skip
def test_value_preserving_conversions(value: Any, stored: Any) -> None:
    assert preserved(value, stored)


@pytest.mark.parametrize(
    ("value", "stored"),
    [("007", 7), ("1.005", 1.01), (1.005, 1.01), ("abc  ", "abc"), (True, "1"), (1, True),
     ("2024-03-01T10:00:00+02:00", "2024-03-01T10:00:00.000000Z"),
     ("2024-03-01T10:00:00Z", "2024-03-01"), (" 7", 7), ("+7", 7), ("x", None), (None, 0),
     ({"a": "1"}, {"a": 1})],
)  # fmt: skip
def test_conversions_that_change_the_value(value: Any, stored: Any) -> None:
    assert not preserved(value, stored)


def test_changed_field_compares_ids_as_text_and_skips_dropped_reserved_fields() -> None:
    record = {"id": "7", "n": 1, "createdAt": "2024-01-01T00:00:00Z", "version": 3}
    assert changed_field(record, {"id": 7, "n": 1}) is None
    assert changed_field({**record, "id": "007"}, {"id": 7, "n": 1}) == "id"
    assert changed_field(record, {"id": 7, "n": 1, "version": 1}) == "version"
