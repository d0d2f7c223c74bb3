"""The seed's integration scenarios (its section 8) and worked flows, through ``execute``."""

from __future__ import annotations

from pathlib import Path

from dbhandles import Service


def test_open_sqlite_database_and_return_handle(service: Service, tmp_path: Path) -> None:
    result = service.execute(
        "data/open",
        {
            "adapter": "sqlite",
            "config": {"path": str(tmp_path / "test-training.sqlite"), "mode": "create"},
        },
    )
    assert result["success"] is True
    assert result["dbHandle"]
    assert result["adapter"] == "sqlite"


def test_default_handle_when_omitted(service: Service) -> None:
    users = service.execute("data/list", {"collection": "users"})
    assert users["success"] is True
    assert users["dbHandle"] == "default"


def test_create_records_in_training_database(service: Service, tmp_path: Path) -> None:
    handle = service.execute(
        "data/open",
        {
            "adapter": "sqlite",
            "config": {"path": str(tmp_path / "test-training.sqlite"), "mode": "create"},
        },
    )["dbHandle"]
    result = service.execute(
        "data/create",
        {
            "dbHandle": handle,
            "collection": "training_examples",
            "data": {"text": "example", "label": "positive"},
            "id": "test-001",
        },
    )
    assert result["success"] is True
    read = service.execute(
        "data/read", {"dbHandle": handle, "collection": "training_examples", "id": "test-001"}
    )
    assert read["data"]["text"] == "example"
    # The record is in the training database, not in the default one.
    assert (
        service.execute("data/read", {"collection": "training_examples", "id": "test-001"})["found"]
        is False
    )


def test_list_open_handles(service: Service, tmp_path: Path) -> None:
    service.execute(
        "data/open",
        {"adapter": "sqlite", "config": {"path": str(tmp_path / "t.sqlite"), "mode": "create"}},
    )
    result = service.execute("data/list-handles", {})
    assert len(result["handles"]) > 0
    assert result["handles"][0]["isDefault"] is True


def test_close_handle(service: Service, tmp_path: Path) -> None:
    handle = service.execute(
        "data/open",
        {"adapter": "sqlite", "config": {"path": str(tmp_path / "test.sqlite"), "mode": "create"}},
    )["dbHandle"]
    result = service.execute("data/close", {"dbHandle": handle})
    assert result["success"] is True


def test_training_pipeline_flow(service: Service, tmp_path: Path) -> None:
    """Open with mode create → import → filtered list on metadata.qualityScore → close; default untouched."""
    handle = service.execute(
        "data/open",
        {
            "adapter": "sqlite",
            "config": {"path": str(tmp_path / "continuum-git.sqlite"), "mode": "create"},
        },
    )["dbHandle"]
    ops = [
        {"op": "create", "collection": "training_examples", "id": f"c{i}",
         "data": {"messages": [{"role": "user", "content": f"change {i}"}], "metadata": {"qualityScore": i / 10, "source": "git"}}}
        for i in range(11)
    ]  # fmt: skip
    service.execute("data/batch", {"dbHandle": handle, "operations": ops})
    good = service.execute(
        "data/list",
        {"dbHandle": handle, "collection": "training_examples", "filter": {"metadata.qualityScore": {"$gte": 0.8}},
         "orderBy": [{"field": "metadata.qualityScore", "direction": "desc"}]},
    )  # fmt: skip
    assert [i["id"] for i in good["items"]] == ["c10", "c9", "c8"]
    assert good["count"] == 3
    service.execute("data/close", {"dbHandle": handle})
    assert service.execute("data/schema", {})["collections"] == []


def test_persona_knowledge_base_flow(service: Service, tmp_path: Path) -> None:
    """A persona opens its own database, stores facts and recalls them with $contains."""
    path = tmp_path / "personas" / "helper-ai" / "data" / "longterm.db"
    handle = service.execute(
        "data/open",
        {"adapter": "sqlite", "config": {"path": str(path), "mode": "create", "wal": True}},
    )["dbHandle"]
    for fact in ("the sky is blue", "tea is better than coffee", "blue whales are large"):
        service.execute(
            "data/create", {"dbHandle": handle, "collection": "memories", "data": {"fact": fact}}
        )
    recalled = service.execute(
        "data/list",
        {"dbHandle": handle, "collection": "memories", "filter": {"fact": {"$contains": "blue"}}},
    )
    assert recalled["count"] == 2
    assert path.exists()
