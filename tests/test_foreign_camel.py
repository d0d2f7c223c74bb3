"""``"fieldNames": "camel"``: the original system's entity tables as it showed them (issue 15, step 5).

The database is shaped as continuum-behaviour.md section 4.3 describes the original's SQLite layout,
built with plain ``sqlite3``: a table per collection named ``snake_case(collection)``, a column per
field (snake_case), ``id TEXT PRIMARY KEY``, ``created_at``/``updated_at`` ISO text, ``version``
INTEGER, booleans as INTEGER 0/1, JSON as TEXT, an index per indexed field, the ``system_info``
bookkeeping table. The test copies it and runs the seed's flow on the copy through ``Service``.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.errors import Conflict, InvalidParams

SCHEMA = """
CREATE TABLE system_info (key TEXT PRIMARY KEY, value TEXT, created_at TEXT, updated_at TEXT);
INSERT INTO system_info VALUES ('db_version', '1.0.0', '2025-01-01T00:00:00.000Z',
                                '2025-01-01T00:00:00.000Z');
CREATE TABLE users (id TEXT PRIMARY KEY, display_name TEXT NOT NULL, user_type TEXT NOT NULL,
                    is_online INTEGER NOT NULL DEFAULT 0, profile TEXT,
                    created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
                    version INTEGER NOT NULL DEFAULT 1);
CREATE TABLE chat_messages (id TEXT PRIMARY KEY, room_id TEXT NOT NULL,
                            sender_id TEXT NOT NULL REFERENCES users(id), content TEXT,
                            sender_name VARCHAR(100), created_at TEXT NOT NULL,
                            updated_at TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 1);
CREATE INDEX IF NOT EXISTS idx_chat_messages_room_id ON chat_messages (room_id);
"""
T0 = "2025-01-02T03:04:05.000Z"


@pytest.fixture
def original(tmp_path: Path) -> Path:
    """The original system's database, as its SQLite adapter left it."""
    path = tmp_path / "original" / "database.sqlite"
    path.parent.mkdir()
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    conn.execute(
        "INSERT INTO users VALUES ('u1', 'Joel', 'human', 1, '{\"theme\": \"dark\"}', ?, ?, 3)",
        (T0, T0),
    )
    conn.executemany(
        "INSERT INTO chat_messages VALUES (?, ?, 'u1', ?, 'Joel', ?, ?, 1)",
        [(f"m{i}", "general" if i % 2 else "random", f'{{"text": "hello {i}"}}', T0, T0)
         for i in range(7)],
    )  # fmt: skip
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def handle(service: Service, original: Path, tmp_path: Path) -> str:
    copy = tmp_path / "copy.sqlite"
    shutil.copyfile(original, copy)  # the test writes to a copy, as a user would try it first
    config = {"path": str(copy), "fieldNames": "camel"}
    return str(service.execute("data/open", {"adapter": "sqlite", "config": config})["dbHandle"])


def run(service: Service, name: str, handle: str, **params: Any) -> dict[str, Any]:
    return service.execute(name, {"dbHandle": handle, **params})


def test_records_look_as_the_original_returned_them(service: Service, handle: str) -> None:
    user = run(service, "data/read", handle, collection="users", id="u1")["data"]
    assert user == {"id": "u1", "displayName": "Joel", "userType": "human", "isOnline": 1,
                    "profile": {"theme": "dark"}, "createdAt": T0, "updatedAt": T0,
                    "version": 3}  # fmt: skip
    schema = run(service, "data/schema", handle, collection="chatMessages")["table"]
    assert schema["name"] == "chat_messages"
    assert {c["name"]: c.get("field") for c in schema["columns"]}["room_id"] == "roomId"
    assert schema["reservedFields"] == ["createdAt", "updatedAt", "version"]


def test_the_seed_flow_on_a_copy(service: Service, handle: str, tmp_path: Path) -> None:
    # create: createdAt/updatedAt/version are set by dbhandles, the rest are columns.
    made = run(service, "data/create", handle, collection="chatMessages",
               data={"roomId": "general", "senderId": "u1", "senderName": "Joel",
                     "content": {"text": "from dbhandles"}})  # fmt: skip
    record = made["data"]
    assert record["version"] == 1 and record["createdAt"] == record["updatedAt"] > T0
    assert record["roomId"] == "general" and record["content"] == {"text": "from dbhandles"}
    with pytest.raises(InvalidParams, match="createdAt"):
        run(service, "data/create", handle, collection="chatMessages",
            data={"roomId": "r", "senderId": "u1", "createdAt": T0})  # fmt: skip
    with pytest.raises(InvalidParams, match="no column 'room'"):
        run(service, "data/create", handle, collection="chatMessages",
            data={"room": "r", "senderId": "u1"})  # fmt: skip
    # read
    read = run(service, "data/read", handle, collection="chatMessages", id=record["id"])
    assert read["data"] == record
    # list, filtered by a camelCase field, newest first, in pages
    listed = run(service, "data/list", handle, collection="chatMessages",
                 filter={"roomId": "general"}, orderBy=[{"field": "id", "direction": "asc"}],
                 limit=2)  # fmt: skip
    expected = sorted(["m1", "m3", "m5", record["id"]])
    assert [r["id"] for r in listed["items"]] == expected[:2] and listed["count"] == 4
    seen = [r["id"] for r in listed["items"]]
    cursor = listed["nextCursor"]
    while cursor:
        page = run(service, "data/list", handle, collection="chatMessages",
                   filter={"roomId": "general"}, orderBy=[{"field": "id", "direction": "asc"}],
                   limit=2, cursor=cursor)  # fmt: skip
        seen += [r["id"] for r in page["items"]]
        cursor = page["nextCursor"]
    assert seen == expected
    counted = run(service, "data/count", handle, collection="chatMessages",
                  filter={"content.text": {"$regex": "^hello"}})  # fmt: skip
    assert counted["total"] == 7
    # update with optimistic concurrency: version and updatedAt are maintained
    updated = run(service, "data/update", handle, collection="chatMessages", id=record["id"],
                  data={"content": {"text": "edited"}}, expectedVersion=1)  # fmt: skip
    assert (updated["previousVersion"], updated["newVersion"]) == (1, 2)
    assert updated["data"]["updatedAt"] >= record["updatedAt"]
    assert updated["data"]["createdAt"] == record["createdAt"]
    with pytest.raises(Conflict):
        run(service, "data/update", handle, collection="chatMessages", id=record["id"],
            data={"content": None}, expectedVersion=1)  # fmt: skip
    old = run(service, "data/update", handle, collection="users", id="u1",
              data={"isOnline": False}, expectedVersion=3)  # fmt: skip
    assert old["data"]["isOnline"] == 0 and old["newVersion"] == 4
    # delete
    assert run(service, "data/delete", handle, collection="chatMessages", id=record["id"])[
        "deleted"
    ]
    assert (
        run(service, "data/read", handle, collection="chatMessages", id=record["id"])["found"]
        is False
    )
    # What the original's own adapter would read: snake_case columns, ISO text, integer versions.
    conn = sqlite3.connect(tmp_path / "copy.sqlite")
    try:
        assert conn.execute(
            "SELECT is_online, version, typeof(updated_at) FROM users WHERE id = 'u1'"
        ).fetchone() == (0, 4, "text")
    finally:
        conn.close()


def test_plain_field_names_are_the_columns(service: Service, original: Path) -> None:
    handle = service.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": str(original), "mode": "readonly"}}
    )["dbHandle"]
    user = run(service, "data/read", handle, collection="users", id="u1")["data"]
    assert user["display_name"] == "Joel" and user["created_at"] == T0
    # Without the option, collection names are table names: chatMessages is no table.
    assert run(service, "data/list", handle, collection="chatMessages")["items"] == []
