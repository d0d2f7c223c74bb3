"""Contract: schema, truncate, clear, vacuum and events on every adapter."""

from __future__ import annotations

import pytest

from dbhandles import Event, NotSupported, Service
from dbhandles.adapters import get_adapter_class


def test_schema_lists_collections_with_counts(service: Service, db: str) -> None:
    for i in range(3):
        service.execute("data/create", {"dbHandle": db, "collection": "alpha", "data": {"i": i}})
    service.execute("data/create", {"dbHandle": db, "collection": "beta", "data": {"x": "y"}})
    listing = service.execute("data/schema", {"dbHandle": db})["collections"]
    assert [(c["name"], c["recordCount"]) for c in listing] == [("alpha", 3), ("beta", 1)]


def test_schema_infers_fields_by_sampling(service: Service, db: str) -> None:
    service.execute("data/create", {"dbHandle": db, "collection": "c", "data": {"a": 1, "b": "x"}})
    service.execute(
        "data/create", {"dbHandle": db, "collection": "c", "data": {"a": "two", "c": [1]}}
    )
    schema = service.execute("data/schema", {"dbHandle": db, "collection": "c"})
    fields = {f["name"]: f for f in schema["fields"]}
    assert schema["recordCount"] == 2 and schema["declared"] is False
    assert fields["a"]["type"] == "number|string" and fields["a"]["required"] is True
    assert fields["c"]["type"] == "array" and fields["c"]["required"] is False


def test_truncate_and_clear_report_counts(service: Service, db: str) -> None:
    for i in range(4):
        service.execute("data/create", {"dbHandle": db, "collection": "a", "data": {"i": i}})
    service.execute("data/create", {"dbHandle": db, "collection": "b", "data": {}})
    assert (
        service.execute("data/truncate", {"dbHandle": db, "collection": "a"})["recordsDeleted"] == 4
    )
    assert (
        service.execute("data/truncate", {"dbHandle": db, "collection": "never"})["recordsDeleted"]
        == 0
    )
    service.execute("data/create", {"dbHandle": db, "collection": "a", "data": {}})
    cleared = service.execute("data/clear", {"dbHandle": db})
    assert cleared["collectionsCleared"] == 2 and cleared["recordsCleared"] == 2
    assert service.execute("data/list", {"dbHandle": db, "collection": "b"})["count"] == 0


def test_clear_only_touches_its_own_database(service: Service, db: str) -> None:
    service.execute("data/create", {"collection": "users", "id": "keep", "data": {}})
    service.execute("data/create", {"dbHandle": db, "collection": "users", "data": {}})
    service.execute("data/clear", {"dbHandle": db})
    assert service.execute("data/read", {"collection": "users", "id": "keep"})["found"] is True


def test_vacuum_reports_sizes_where_supported(service: Service, db: str, adapter_name: str) -> None:
    if not get_adapter_class(adapter_name).features.vacuum:
        with pytest.raises(NotSupported):
            service.execute("data/vacuum", {"dbHandle": db})
        return
    for i in range(50):
        service.execute(
            "data/create", {"dbHandle": db, "collection": "c", "data": {"blob": "x" * 2000, "i": i}}
        )
    service.execute("data/truncate", {"dbHandle": db, "collection": "c"})
    result = service.execute("data/vacuum", {"dbHandle": db})
    assert result["beforeSize"] > 0 and result["afterSize"] <= result["beforeSize"]


def test_writes_publish_events_naming_the_handle(service: Service, db: str) -> None:
    events: list[Event] = []
    with service.events.subscribe("data:notes:*", events.append):
        service.execute(
            "data/create", {"dbHandle": db, "collection": "notes", "id": "n", "data": {"t": 1}}
        )
        service.execute(
            "data/update", {"dbHandle": db, "collection": "notes", "id": "n", "data": {"t": 2}}
        )
        service.execute("data/delete", {"dbHandle": db, "collection": "notes", "id": "n"})
        service.execute(
            "data/create",
            {"dbHandle": db, "collection": "notes", "data": {}, "suppressEvents": True},
        )
        service.execute("data/truncate", {"dbHandle": db, "collection": "notes"})
        service.execute("data/create", {"dbHandle": db, "collection": "other", "data": {}})
    assert [e.name for e in events] == [
        "data:notes:created", "data:notes:updated", "data:notes:deleted", "data:notes:truncated",
    ]  # fmt: skip
    assert all(e.payload["dbHandle"] == db for e in events)
    assert events[1].payload["record"]["t"] == 2


def test_a_failing_subscriber_never_fails_the_write(service: Service, db: str) -> None:
    def boom(event: Event) -> None:
        raise RuntimeError("subscriber bug")

    with service.events.subscribe("data:*", boom):
        result = service.execute("data/create", {"dbHandle": db, "collection": "c", "data": {}})
    assert result["success"] is True


def test_emit_events_false_on_open_silences_the_handle(
    service: Service, adapter_name: str, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import adapter_config

    handle = service.execute(
        "data/open",
        {
            "adapter": adapter_name,
            "config": adapter_config(adapter_name, tmp_path),
            "emitEvents": False,
        },
    )["dbHandle"]
    events: list[Event] = []
    with service.events.subscribe("data:*", events.append):
        service.execute("data/create", {"dbHandle": handle, "collection": "c", "data": {}})
    assert events == []
