"""Durability choices made deliberately (issue 16, part 6): the system tables at synchronous=FULL,
orphaned temporary files of the JSON adapter removed, and a failed import's counts in fields."""

from __future__ import annotations

import os
from pathlib import Path

from dbhandles import Service


def test_the_system_tables_survive_power_loss(tmp_path: Path) -> None:
    with Service(home=tmp_path / "home") as service:
        store = service.registry.store
        db = store._db  # type: ignore[attr-defined]
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_a_killed_json_writers_temporary_file_is_removed_on_open(tmp_path: Path) -> None:
    path = tmp_path / "db.json"
    with Service(home=tmp_path / "home") as service:
        handle = service.execute(
            "data/open", {"adapter": "json", "config": {"path": str(path), "mode": "create"}}
        )["dbHandle"]
        service.execute("data/create", {"dbHandle": handle, "collection": "c", "data": {}})
        service.execute("data/close", {"dbHandle": handle})
    orphan = tmp_path / ".db.json.0badc0de.tmp"  # a commit's own name: 8 hex digits
    orphan.write_text("{half a write")
    unrelated = tmp_path / "notes.tmp"
    unrelated.write_text("keep")
    lookalike = tmp_path / ".db.json.abc123.tmp"  # another's file in that form: not a commit's
    lookalike.write_text("keep")
    with Service(home=tmp_path / "home") as service:
        handle = service.execute("data/open", {"adapter": "json", "config": {"path": str(path)}})[
            "dbHandle"
        ]
        assert service.execute("data/list", {"dbHandle": handle, "collection": "c"})["count"] == 1
    assert not orphan.exists()
    assert unrelated.read_text() == "keep" and lookalike.read_text() == "keep"
    assert sorted(os.listdir(tmp_path)) == sorted(
        [".db.json.abc123.tmp", "db.json", "db.json.lock", "home", "notes.tmp"]
    )


def test_a_failed_import_says_what_it_kept_in_fields(tmp_path: Path) -> None:
    data = tmp_path / "in.jsonl"
    data.write_text('{"id": "a"}\n{"id": "b"}\nnot json\n')
    with Service(home=tmp_path / "home") as service:
        envelope = service.dispatch(
            "data/import",
            {"input": str(data), "output": str(tmp_path / "o.sqlite"), "batchSize": 1,
             "onError": "abort"},
        )  # fmt: skip
    assert envelope["success"] is False
    assert envelope["imported"] == 2 and "lines" in envelope and "batches" in envelope
    assert envelope["dbHandle"] not in (None, "default")
    assert envelope["output"] == str(tmp_path / "o.sqlite")
    assert envelope["code"] != "internal_error"
