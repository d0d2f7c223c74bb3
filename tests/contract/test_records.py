"""Contract: create, read, update, delete and batch behave the same on every adapter."""

from __future__ import annotations

import pytest

from dbhandles import (
    Conflict,
    InvalidParams,
    RecordExists,
    RecordNotFound,
    Service,
    ValidationFailed,
)


def test_create_returns_the_stored_record(service: Service, db: str) -> None:
    result = service.execute(
        "data/create",
        {
            "dbHandle": db,
            "collection": "training_examples",
            "data": {"text": "example", "label": "positive"},
            "id": "test-001",
        },
    )
    record = result["data"]
    assert result["success"] is True
    assert result["id"] == "test-001"
    assert result["dbHandle"] == db
    assert record["text"] == "example"
    assert record["version"] == 1
    assert record["createdAt"] == record["updatedAt"]
    assert record["createdAt"].endswith("Z")


def test_create_generates_a_uuid_or_takes_data_id(service: Service, db: str) -> None:
    generated = service.execute(
        "data/create", {"dbHandle": db, "collection": "c", "data": {"a": 1}}
    )["id"]
    assert len(generated) == 36
    taken = service.execute(
        "data/create", {"dbHandle": db, "collection": "c", "data": {"id": "x", "a": 1}}
    )
    assert taken["id"] == "x"


def test_read_round_trips_nested_json(service: Service, db: str) -> None:
    data = {
        "s": "é ☃ 𝄞",
        "n": 1.5,
        "i": -3,
        "b": False,
        "z": None,
        "list": [1, "a", None],
        "o": {"k": {"d": 1}},
    }
    service.execute("data/create", {"dbHandle": db, "collection": "c", "id": "r", "data": data})
    found = service.execute("data/read", {"dbHandle": db, "collection": "c", "id": "r"})
    assert found["found"] is True
    assert {k: found["data"][k] for k in data} == data


def test_read_missing_is_success_with_found_false(service: Service, db: str) -> None:
    result = service.execute(
        "data/read", {"dbHandle": db, "collection": "nothing_here", "id": "nope"}
    )
    assert result == {**result, "success": True, "found": False, "data": None}


def test_duplicate_id_is_record_exists_and_keeps_the_original(service: Service, db: str) -> None:
    service.execute("data/create", {"dbHandle": db, "collection": "c", "id": "a", "data": {"v": 1}})
    with pytest.raises(RecordExists):
        service.execute(
            "data/create", {"dbHandle": db, "collection": "c", "id": "a", "data": {"v": 2}}
        )
    assert (
        service.execute("data/read", {"dbHandle": db, "collection": "c", "id": "a"})["data"]["v"]
        == 1
    )


def test_update_merges_and_bumps_version(service: Service, db: str) -> None:
    service.execute(
        "data/create", {"dbHandle": db, "collection": "c", "id": "a", "data": {"x": 1, "y": 2}}
    )
    result = service.execute(
        "data/update", {"dbHandle": db, "collection": "c", "id": "a", "data": {"y": 3, "z": 4}}
    )
    assert result["previousVersion"] == 1
    assert result["newVersion"] == 2
    assert result["data"]["x"] == 1 and result["data"]["y"] == 3 and result["data"]["z"] == 4
    same = service.execute(
        "data/update",
        {"dbHandle": db, "collection": "c", "id": "a", "data": {"x": 9}, "incrementVersion": False},
    )
    assert same["newVersion"] == 2
    stored = service.execute("data/read", {"dbHandle": db, "collection": "c", "id": "a"})["data"]
    assert stored["x"] == 9 and stored["version"] == 2
    assert stored["updatedAt"] >= stored["createdAt"]


def test_update_with_stale_expected_version_is_a_conflict(service: Service, db: str) -> None:
    service.execute("data/create", {"dbHandle": db, "collection": "c", "id": "a", "data": {"x": 1}})
    service.execute(
        "data/update",
        {"dbHandle": db, "collection": "c", "id": "a", "data": {"x": 2}, "expectedVersion": 1},
    )
    with pytest.raises(Conflict) as info:
        service.execute(
            "data/update",
            {"dbHandle": db, "collection": "c", "id": "a", "data": {"x": 3}, "expectedVersion": 1},
        )
    assert "version 2" in str(info.value)
    assert (
        service.execute("data/read", {"dbHandle": db, "collection": "c", "id": "a"})["data"]["x"]
        == 2
    )


def test_update_missing_record_is_record_not_found(service: Service, db: str) -> None:
    with pytest.raises(RecordNotFound):
        service.execute(
            "data/update", {"dbHandle": db, "collection": "c", "id": "ghost", "data": {"x": 1}}
        )


def test_reserved_fields_cannot_be_written(service: Service, db: str) -> None:
    for field in ("version", "createdAt", "updatedAt"):
        with pytest.raises(InvalidParams, match=field):
            service.execute("data/create", {"dbHandle": db, "collection": "c", "data": {field: 5}})
    service.execute("data/create", {"dbHandle": db, "collection": "c", "id": "a", "data": {"x": 1}})
    with pytest.raises(InvalidParams):
        service.execute(
            "data/update", {"dbHandle": db, "collection": "c", "id": "a", "data": {"id": "b"}}
        )


def test_delete_reports_found_and_is_idempotent(service: Service, db: str) -> None:
    service.execute("data/create", {"dbHandle": db, "collection": "c", "id": "a", "data": {}})
    first = service.execute("data/delete", {"dbHandle": db, "collection": "c", "id": "a"})
    assert first["found"] is True and first["deleted"] is True
    second = service.execute("data/delete", {"dbHandle": db, "collection": "c", "id": "a"})
    assert second["success"] is True and second["found"] is False and second["deleted"] is False
    assert (
        service.execute("data/read", {"dbHandle": db, "collection": "c", "id": "a"})["found"]
        is False
    )


def test_collection_names_are_case_insensitive(service: Service, db: str) -> None:
    service.execute("data/create", {"dbHandle": db, "collection": "Users", "id": "a", "data": {}})
    assert (
        service.execute("data/read", {"dbHandle": db, "collection": "users", "id": "a"})["found"]
        is True
    )


def test_batch_applies_everything(service: Service, db: str) -> None:
    service.execute(
        "data/create", {"dbHandle": db, "collection": "c", "id": "old", "data": {"v": 1}}
    )
    result = service.execute(
        "data/batch",
        {"dbHandle": db, "operations": [
            {"op": "create", "collection": "c", "id": "new", "data": {"v": 2}},
            {"op": "update", "collection": "c", "id": "old", "data": {"v": 10}},
            {"op": "delete", "collection": "c", "id": "new"},
            {"op": "create", "collection": "d", "data": {"w": 1}},
        ]},
    )  # fmt: skip
    assert [r["op"] for r in result["results"]] == ["create", "update", "delete", "create"]
    listed = service.execute("data/list", {"dbHandle": db, "collection": "c"})
    assert [(r["id"], r["v"]) for r in listed["items"]] == [("old", 10)]


def test_batch_is_all_or_nothing(service: Service, db: str) -> None:
    service.execute("data/create", {"dbHandle": db, "collection": "c", "id": "a", "data": {"v": 1}})
    with pytest.raises(RecordNotFound, match=r"operations\[2\]"):
        service.execute(
            "data/batch",
            {"dbHandle": db, "operations": [
                {"op": "create", "collection": "c", "id": "b", "data": {}},
                {"op": "update", "collection": "c", "id": "a", "data": {"v": 2}},
                {"op": "update", "collection": "c", "id": "ghost", "data": {"v": 3}},
            ]},
        )  # fmt: skip
    assert (
        service.execute("data/read", {"dbHandle": db, "collection": "c", "id": "b"})["found"]
        is False
    )
    assert (
        service.execute("data/read", {"dbHandle": db, "collection": "c", "id": "a"})["data"]["v"]
        == 1
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"collection": "1bad", "data": {}},
        {"collection": "has-dash", "data": {}},
        {"collection": "_dbh_handles", "data": {}},
        {"collection": "x" * 65, "data": {}},
        {"collection": "c", "data": "not an object"},
        {"collection": "c", "data": {}, "id": ""},
        {"collection": "c", "data": {}, "unknownParam": 1},
        {"data": {}},
    ],
)
def test_bad_create_params_are_invalid_params(
    service: Service, db: str, bad: dict[str, object]
) -> None:
    envelope = service.dispatch("data/create", {"dbHandle": db, **bad})
    assert envelope["success"] is False
    assert envelope["code"] == "invalid_params"
    assert envelope["error"]


def test_nan_is_refused_not_silently_nulled(service: Service, db: str) -> None:
    with pytest.raises(InvalidParams, match="NaN"):
        service.execute(
            "data/create", {"dbHandle": db, "collection": "c", "data": {"x": float("nan")}}
        )


def test_declared_model_validates_creates_and_merged_updates(service: Service, db: str) -> None:
    from pydantic import BaseModel

    class Example(BaseModel):
        text: str
        label: str = "unlabelled"
        score: float | None = None

    service.declare("examples", Example, indexes=["label"])
    created = service.execute(
        "data/create",
        {"dbHandle": db, "collection": "examples", "id": "e", "data": {"text": "t", "extra": 1}},
    )
    assert created["data"]["label"] == "unlabelled"
    assert created["data"]["extra"] == 1
    with pytest.raises(ValidationFailed, match="text"):
        service.execute(
            "data/create", {"dbHandle": db, "collection": "examples", "data": {"label": "x"}}
        )
    with pytest.raises(ValidationFailed, match="score"):
        service.execute(
            "data/update",
            {"dbHandle": db, "collection": "examples", "id": "e", "data": {"score": "high"}},
        )
    assert (
        service.execute("data/read", {"dbHandle": db, "collection": "examples", "id": "e"})["data"][
            "version"
        ]
        == 1
    )
    schema = service.execute("data/schema", {"dbHandle": db, "collection": "examples"})
    assert schema["declared"] is True
    assert {f["name"] for f in schema["fields"]} == {"text", "label", "score"}
    assert schema["indexes"] == ["label"]


def test_integers_beyond_64_bits_are_refused(service: Service, db: str) -> None:
    with pytest.raises(InvalidParams, match="64 bits"):
        service.execute("data/create", {"dbHandle": db, "collection": "c", "data": {"big": 2**64}})
    service.execute(
        "data/create", {"dbHandle": db, "collection": "c", "id": "ok", "data": {"big": 2**63 - 1}}
    )
    assert (
        service.execute("data/read", {"dbHandle": db, "collection": "c", "id": "ok"})["data"]["big"]
        == 2**63 - 1
    )
