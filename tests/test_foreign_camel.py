"""``"fieldNames": "camel"``: the original system's entity tables as it showed them (issue 15, step 5).

The database is shaped as continuum-behaviour.md section 4.3 describes the original's SQLite layout,
built with plain ``sqlite3``: a table per collection named ``snake_case(collection)``, a column per
field (snake_case), ``id TEXT PRIMARY KEY``, ``created_at``/``updated_at`` ISO text, ``version``
INTEGER, booleans as INTEGER 0/1, JSON as TEXT, an index per indexed field, the ``system_info``
bookkeeping table. The test copies it and runs the seed's flow on the copy through ``Service``.
Every test runs on PostgreSQL too, on the same tables made with plain SQL (there booleans are
``boolean`` and JSON ``jsonb``, PostgreSQL's own types for them).
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.errors import Conflict, InvalidParams
from tests.conftest import adapter_config

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
#: The same tables on PostgreSQL: booleans as ``boolean``, JSON fields as ``jsonb``.
PG_SCHEMA = (
    SCHEMA.replace(
        "is_online INTEGER NOT NULL DEFAULT 0", "is_online boolean NOT NULL DEFAULT false"
    )
    .replace("profile TEXT", "profile jsonb")
    .replace("content TEXT", "content jsonb")
)
T0 = "2025-01-02T03:04:05.000Z"
USERS = ("u1", "Joel", "human", 1, '{"theme": "dark"}', T0, T0, 3)
MESSAGES = [(f"m{i}", "general" if i % 2 else "random", f'{{"text": "hello {i}"}}', T0, T0)
            for i in range(7)]  # fmt: skip


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _pg(tmp_path: Path) -> Any:
    import psycopg
    from psycopg import sql

    pg = adapter_config("postgres", tmp_path / "original")
    conn = psycopg.connect(pg["url"], autocommit=True)
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(pg["schema"])))
    conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(pg["schema"])))
    return conn


@pytest.fixture
def original(tmp_path: Path, engine: str) -> dict[str, Any]:
    """The original system's database, as its adapter left it: the config of a handle on it."""
    (tmp_path / "original").mkdir()
    if engine == "postgres":
        with _pg(tmp_path) as conn:
            conn.execute(PG_SCHEMA)  # type: ignore[arg-type]
            conn.execute("INSERT INTO users VALUES (%s, %s, %s, %s::int::boolean, %s, %s, %s, %s)",
                         USERS)  # fmt: skip
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO chat_messages VALUES (%s, %s, 'u1', %s, 'Joel', %s, %s, 1)",
                    MESSAGES,
                )
        config = adapter_config("postgres", tmp_path / "original")
        config.pop("mode")
        return config
    path = tmp_path / "original" / "database.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    conn.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?, ?)", USERS)
    conn.executemany("INSERT INTO chat_messages VALUES (?, ?, 'u1', ?, 'Joel', ?, ?, 1)", MESSAGES)
    conn.commit()
    conn.close()
    return {"path": str(path)}


@pytest.fixture
def handle(service: Service, original: dict[str, Any], engine: str, tmp_path: Path) -> str:
    config = dict(original)
    if engine == "sqlite":
        copy = tmp_path / "copy.sqlite"
        shutil.copyfile(original["path"], copy)  # writes go to a copy, as a user would try first
        config["path"] = str(copy)
    config["fieldNames"] = "camel"
    return str(service.execute("data/open", {"adapter": engine, "config": config})["dbHandle"])


def _stored_user(engine: str, tmp_path: Path) -> tuple[Any, ...]:
    """What the original's own adapter would read of user u1: is_online, version, updated_at's type."""
    if engine == "postgres":
        with _pg(tmp_path) as conn:
            row = conn.execute(
                "SELECT is_online, version, pg_typeof(updated_at)::text FROM users WHERE id = 'u1'"
            ).fetchone()
        return tuple(row) if row else ()
    conn = sqlite3.connect(tmp_path / "copy.sqlite")
    try:
        return tuple(
            conn.execute(
                "SELECT is_online, version, typeof(updated_at) FROM users WHERE id = 'u1'"
            ).fetchone()
        )
    finally:
        conn.close()


def run(service: Service, name: str, handle: str, **params: Any) -> dict[str, Any]:
    return service.execute(name, {"dbHandle": handle, **params})


def test_records_look_as_the_original_returned_them(
    service: Service, handle: str, engine: str
) -> None:
    user = run(service, "data/read", handle, collection="users", id="u1")["data"]
    online = True if engine == "postgres" else 1  # SQLite has no booleans
    assert user == {"id": "u1", "displayName": "Joel", "userType": "human", "isOnline": online,
                    "profile": {"theme": "dark"}, "createdAt": T0, "updatedAt": T0,
                    "version": 3}  # fmt: skip
    schema = run(service, "data/schema", handle, collection="chatMessages")["table"]
    assert schema["name"] == "chat_messages"
    assert {c["name"]: c.get("field") for c in schema["columns"]}["room_id"] == "roomId"
    assert schema["reservedFields"] == ["createdAt", "updatedAt", "version"]


def test_the_seed_flow_on_a_copy(
    service: Service, handle: str, engine: str, tmp_path: Path
) -> None:
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
    with pytest.raises(InvalidParams, match='no column "room"'):
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
    offline = False if engine == "postgres" else 0
    assert type(old["data"]["isOnline"]) is type(offline) and old["data"]["isOnline"] == offline
    assert old["newVersion"] == 4
    # delete
    assert run(service, "data/delete", handle, collection="chatMessages", id=record["id"])[
        "deleted"
    ]
    assert (
        run(service, "data/read", handle, collection="chatMessages", id=record["id"])["found"]
        is False
    )
    # What the original's own adapter would read: snake_case columns, ISO text, integer versions.
    assert _stored_user(engine, tmp_path) == (offline, 4, "text")


def test_plain_field_names_are_the_columns(
    service: Service, original: dict[str, Any], engine: str
) -> None:
    config = {**original, "mode": "readonly"}
    handle = service.execute("data/open", {"adapter": engine, "config": config})["dbHandle"]
    user = run(service, "data/read", handle, collection="users", id="u1")["data"]
    assert user["display_name"] == "Joel" and user["created_at"] == T0
    # Without the option, collection names are table names: chatMessages is no table.
    assert run(service, "data/list", handle, collection="chatMessages")["items"] == []
