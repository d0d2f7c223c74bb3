"""Contract: what an adapter declares in ``Features`` it does (tests skipped by capability)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dbhandles import Service
from dbhandles.adapters import Adapter, get_adapter_class
from tests.conftest import adapter_config

TS = "2024-05-01T12:00:00.000Z"


@pytest.fixture
def adapter(adapter_name: str, tmp_path: Path) -> Iterator[Adapter]:
    """The adapter itself (not through a handle) on a fresh database."""
    cls = get_adapter_class(adapter_name)
    instance = cls(cls.prepare(cls.parse_config(adapter_config(adapter_name, tmp_path))))
    try:
        yield instance
    finally:
        instance.close()


@pytest.mark.requires("durable")
def test_records_survive_closing_and_reopening(
    service: Service, adapter_name: str, tmp_path: Path
) -> None:
    config = adapter_config(adapter_name, tmp_path)
    first = service.execute("data/open", {"adapter": adapter_name, "config": config})["dbHandle"]
    service.execute("data/create", {"dbHandle": first, "collection": "c", "id": "k", "data": {}})
    service.execute("data/close", {"dbHandle": first})
    again = service.execute("data/open", {"adapter": adapter_name, "config": config})["dbHandle"]
    assert service.execute("data/read", {"dbHandle": again, "collection": "c", "id": "k"})["found"]


@pytest.mark.requires("raw_inserts")
def test_raw_inserts_store_rows_as_given_and_skip_taken_ids(adapter: Adapter) -> None:
    rows = [("a", '{"x": 1}', TS, TS, 1), ("b", '{"y": [1, {"z": null}]}', TS, TS, 3)]
    with adapter.session(write=True) as session:
        assert session.insert_many_raw("c", rows) == 2
    with adapter.session(write=True) as session:
        more = [("a", '{"x": 2}', TS, TS, 1), ("n", "{}", TS, TS, 1)]
        assert session.insert_many_raw("c", more, skip_existing=True) == 1
    with adapter.session() as session:
        assert session.get("c", "b") == {
            "id": "b", "y": [1, {"z": None}], "createdAt": TS, "updatedAt": TS, "version": 3,
        }  # fmt: skip
        assert session.get("c", "a") == {
            "id": "a", "x": 1, "createdAt": TS, "updatedAt": TS, "version": 1,
        }  # fmt: skip
        assert session.count("c", None) == 3


@pytest.mark.requires("bulk_load")
def test_batches_written_during_a_bulk_load_are_committed(adapter: Adapter) -> None:
    with adapter.bulk_load():
        for batch in range(3):
            with adapter.session(write=True) as session:
                records = [
                    {"id": f"{batch}-{i}", "i": i, "createdAt": TS, "updatedAt": TS, "version": 1}
                    for i in range(10)
                ]
                assert session.insert_many("c", records, skip_existing=True) == 10
        with adapter.session() as session:
            assert session.count("c", None) == 30
    with adapter.session() as session:
        assert session.count("c", None) == 30
        assert session.get("c", "2-9") is not None


@pytest.mark.requires("inline_reads")
def test_reads_never_wait_is_asked_of_a_live_connection(adapter: Adapter) -> None:
    """Only a connected adapter may say its reads never wait (the server's inline reads rely on it)."""
    assert adapter.reads_never_wait() is False
    with adapter.session() as session:
        session.count("c", None)
    adapter.release()
    assert adapter.reads_never_wait() is False
