"""The PostgreSQL bulk write path (``adapters/postgres_bulk.py``): ``insert_many`` and the
importer's ``insert_many_raw`` send binary arrays (issues #15/#17) and store, count and refuse
exactly as the text arrays did."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import InvalidParams, RecordExists, Service
from dbhandles.adapters import postgres_bulk
from dbhandles.adapters.base import Query, RawRow
from dbhandles.adapters.postgres import PostgresAdapter
from dbhandles.errors import DbHandlesError
from tests.pgserver import postgres_adapter, run_in_schema

pytestmark = pytest.mark.postgres

STAMP = "2026-01-01T00:00:00.000Z"


@pytest.fixture
def adapter(pg: dict[str, Any]) -> Iterator[PostgresAdapter]:
    with postgres_adapter(pg) as instance:
        yield instance


def raw(record_id: str, data: str, version: int = 1) -> RawRow:
    return (record_id, data, STAMP, STAMP, version)


def ids_and_data(adapter: PostgresAdapter, collection: str) -> list[tuple[str, Any]]:
    with adapter.session() as session:
        return [(r["id"], r.get("n")) for r in session.find(collection, Query())]


def test_the_importer_takes_the_raw_path_on_postgres() -> None:
    assert PostgresAdapter.features.raw_inserts


def test_raw_rows_across_batches_count_exactly_and_keep_the_first_of_an_id(
    adapter: PostgresAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres_bulk, "BATCH", 3)
    with adapter.session(write=True) as session:
        assert session.insert_many_raw("c", [raw("a", '{"n":0}')]) == 1
    rows = [raw("a", '{"n":1}'), raw("b", '{"n":2}'), raw("c", '{"n":3}'),  # a: stored before
            raw("b", '{"n":4}'), raw("d", '{"n":5}'), raw("d", '{"n":6}'),  # b: an earlier batch
            raw("e", '{"n":7}')]  # fmt: skip
    with adapter.session(write=True) as session:
        assert session.insert_many_raw("c", iter(rows), skip_existing=True) == 4
    assert ids_and_data(adapter, "c") == [("a", 0), ("b", 2), ("c", 3), ("d", 5), ("e", 7)]


def test_a_taken_id_without_skip_existing_is_record_exists_and_writes_nothing(
    adapter: PostgresAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres_bulk, "BATCH", 2)
    with adapter.session(write=True) as session:
        session.insert_many_raw("c", [raw("a", "{}")])
    with pytest.raises(RecordExists), adapter.session(write=True) as session:
        session.insert_many_raw("c", [raw("x", "{}"), raw("y", "{}"), raw("a", "{}")])
    assert ids_and_data(adapter, "c") == [("a", None)]


def test_no_rows_write_nothing_and_make_no_table(adapter: PostgresAdapter) -> None:
    with adapter.session(write=True) as session:
        assert session.insert_many_raw("empty", iter(())) == 0
        assert session.insert_many("empty2", []) == 0
    with adapter.session() as session:
        assert session.collections() == []


def test_floats_orjson_writes_with_an_exponent_stay_floats(adapter: PostgresAdapter) -> None:
    """A line's own text ``1e+16`` (orjson's spelling) would be the integer 10**16 in ``jsonb``."""
    line = orjson.dumps({"big": 1e16, "small": 1.5e-10, "text": "1e+16", "exact": 0.1 + 0.2})
    with adapter.session(write=True) as session:
        session.insert_many_raw("c", [raw("a", line.decode())])
        session.insert_many("c", [{"id": "b", **orjson.loads(line), "createdAt": STAMP,
                                   "updatedAt": STAMP, "version": 1}])  # fmt: skip
    with adapter.session() as session:
        for record_id in ("a", "b"):
            record = session.get("c", record_id)
            assert record is not None
            big = record["big"]
            assert isinstance(big, float) and big == 1e16
            assert (record["small"], record["text"], record["exact"]) == (
                1.5e-10,
                "1e+16",
                0.1 + 0.2,
            )


@pytest.mark.parametrize("column", [0, 2, 3])
def test_nul_in_a_text_column_is_refused_as_before(adapter: PostgresAdapter, column: int) -> None:
    row = list(raw("a", "{}"))
    row[column] = f"{row[column]}\x00"
    with (
        pytest.raises(InvalidParams, match=r"NUL \(U\+0000\)"),
        adapter.session(write=True) as session,
    ):
        session.insert_many_raw("c", [raw("ok", "{}"), (row[0], row[1], row[2], row[3], 1)])
    assert ids_and_data(adapter, "c") == []


def test_u0000_in_data_is_refused_as_a_single_insert_refuses_it(adapter: PostgresAdapter) -> None:
    record = {"id": "a", "s": "x\x00y", "createdAt": STAMP, "updatedAt": STAMP, "version": 1}
    with pytest.raises(DbHandlesError) as single, adapter.session(write=True) as session:
        session.insert("c", dict(record))
    for write in (
        lambda session: session.insert_many("c", [dict(record)]),
        lambda session: session.insert_many_raw("c", [raw("a", '{"s":"x\\u0000y"}')]),
    ):
        with pytest.raises(DbHandlesError) as many, adapter.session(write=True) as session:
            write(session)
        assert (type(many.value), many.value.code) == (type(single.value), single.value.code)
    assert ids_and_data(adapter, "c") == []


def test_import_into_postgres_reports_collisions_and_rerun_counts(
    service: Service, pg: dict[str, Any], tmp_path: Path
) -> None:
    db = service.execute("data/open", {"adapter": "postgres", "config": pg})["dbHandle"]
    source = tmp_path / "in.jsonl"
    lines = [{"id": "a", "n": 1}, {"id": "b", "n": 1e16}, {"id": "a", "n": 2}, {"id": "a", "n": 1}]
    source.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    params = {"input": str(source), "dbHandle": db, "collection": "c", "batchSize": 2}
    first = service.execute("data/import", params)
    assert (first["imported"], first["skipped"], first["duplicates"]) == (2, 2, 1)
    assert [e["line"] for e in first["errors"]] == [3]
    again = service.execute("data/import", params)
    assert (again["imported"], again["skipped"], again["duplicates"]) == (0, 4, 1)
    items = service.execute("data/list", {"dbHandle": db, "collection": "c"})["items"]
    assert [(i["id"], i["n"]) for i in items] == [("a", 1), ("b", 1e16)]
    assert isinstance(items[1]["n"], float)


def test_get_many_reads_stored_readable_records_in_batches(
    adapter: PostgresAdapter, pg: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres_bulk, "BATCH", 2)
    with adapter.session(write=True) as session:
        session.insert_many_raw("c", [raw(i, f'{{"n":{n}}}') for n, i in enumerate("abcde")])
    run_in_schema(pg, "UPDATE c SET data = '{\"n\": 1e400}' WHERE id = 'c'")  # another tool
    with adapter.session(write=True) as session:
        found = session.get_many("c", ["a", "c", "e", "zz", "b"])
        assert {k: v["n"] for k, v in found.items()} == {"a": 0, "e": 4, "b": 1}
        assert found["a"] == session.get("c", "a")
        assert session.get_many("missing", ["a"]) == {}
        with pytest.raises(InvalidParams, match=r"NUL \(U\+0000\)"):
            session.get_many("c", ["a", "b", "x\x00"])


def test_a_skipped_line_whose_stored_row_is_unreadable_is_no_collision(
    service: Service, pg: dict[str, Any], tmp_path: Path
) -> None:
    """As with point reads: a row another tool damaged cannot be compared, so it is not reported."""
    db = service.execute("data/open", {"adapter": "postgres", "config": pg})["dbHandle"]
    service.execute("data/create", {"dbHandle": db, "collection": "c", "id": "a", "data": {}})
    run_in_schema(pg, "UPDATE c SET data = '{\"n\": 1e400}' WHERE id = 'a'")
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"id":"a","n":1}\n{"id":"b","n":2}\n')
    result = service.execute("data/import", {"input": str(source), "dbHandle": db,
                                             "collection": "c"})  # fmt: skip
    assert (result["imported"], result["skipped"], result["duplicates"]) == (1, 1, 0)
