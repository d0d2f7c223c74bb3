"""Issue 12, with ``"fieldNames": "camel"``: permissions decide on the table a name reaches.

As a non-admin actor (``alice``) against a real ``jtag serve``, on bob's database holding a foreign
table ``chat_messages`` (made with plain ``sqlite3``) that bob granted her with restrictions:

1. ``deniedCollections``/``allowedCollections`` hold whatever spelling reaches the table
   (``chatMessages`` on a camel handle, ``CHAT_MESSAGES`` on a plain one), on every command;
2. a ``rowFilter`` never fails open: a field the table does not serve under the handle's names
   (``room_id`` on a camel handle, ``roomId`` on a plain one) refuses every command on it, and a
   filter written in the handle's names hides the rows it hides in the other direction;
3. SQLite's own tables are not reachable through the camel spelling (``SqliteSchema``).

See docs/security.md (control 5) and docs/foreign-tables.md ("fieldNames").
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.test_security_tenants import Tenants, serve_tenants

HIDDEN = "hidden-row-body-4471"


@pytest.fixture
def t(tmp_path: Path) -> Iterator[Tenants]:
    yield from serve_tenants(tmp_path)


def bobs_chat(t: Tenants) -> tuple[str, Path]:
    """Bob's database with the original system's ``chat_messages`` table; (his handle, its path)."""
    handle = t.ok(t.bob, "data/open", adapter="sqlite",
                  config={"path": "bob.sqlite", "mode": "create"})["dbHandle"]  # fmt: skip
    path = t.space("bob") / "bob.sqlite"
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE chat_messages (id TEXT PRIMARY KEY, room_id TEXT, body TEXT)")
        conn.executemany("INSERT INTO chat_messages VALUES (?, ?, ?)",
                         [("m1", "general", "hello"), ("m2", "secret", HIDDEN)])  # fmt: skip
    conn.close()
    return str(handle), path


def grant(t: Tenants, handle: str, permissions: dict[str, Any]) -> None:
    t.ok(t.bob, "data/grant", dbHandle=handle, actor="alice", access="full",
         permissions=permissions)  # fmt: skip


def open_as_alice(t: Tenants, path: Path, names: str) -> str:
    config: dict[str, Any] = {"path": str(path)}
    if names == "camel":
        config["fieldNames"] = "camel"
    return str(t.ok(t.alice, "data/open", adapter="sqlite", config=config)["dbHandle"])


def every_read(t: Tenants, handle: str, collection: str) -> list[tuple[str, dict[str, Any]]]:
    """Every command that reads ``collection`` through ``handle``, with its params."""
    mine = t.ok(t.alice, "data/open", adapter="sqlite",
                config={"path": "mine.sqlite", "mode": "create"})["dbHandle"]  # fmt: skip
    on = {"dbHandle": handle, "collection": collection}
    return [
        ("data/list", on),
        ("data/count", on),
        ("data/read", {**on, "id": "m2"}),
        ("data/schema", on),
        ("data/query-open", on),
        ("data/export", {**on, "output": "out.jsonl"}),
        ("data/copy", {"from": on, "to": {"dbHandle": mine, "collection": "stolen"}}),
        ("data/batch", {"dbHandle": handle, "operations": [
            {"op": "update", "collection": collection, "id": "m1", "data": {"body": "x"}}]}),
    ]  # fmt: skip


def test_1_a_denied_table_is_denied_in_every_spelling(t: Tenants) -> None:
    handle, path = bobs_chat(t)
    grant(t, handle, {"deniedCollections": ["chat_messages"]})
    for names, spelling in (("camel", "chatMessages"), ("camel", "ChatMessages"),
                            ("plain", "CHAT_MESSAGES"), ("plain", "chat_messages")):  # fmt: skip
        hers = open_as_alice(t, path, names)
        for command, params in every_read(t, hers, spelling):
            error = t.refused(t.alice, command, "permission_denied", **params)
            assert "denied" in error, (command, error)
        assert not (t.space("alice") / "out.jsonl").exists()
    # Bob's rows are intact; alice's own database got nothing.
    assert len(t.ok(t.bob, "data/list", dbHandle=handle, collection="chat_messages")["items"]) == 2


def test_1_an_allowed_list_allows_only_the_table_it_names(t: Tenants) -> None:
    handle, path = bobs_chat(t)
    t.ok(t.bob, "data/create", dbHandle=handle, collection="notes", id="n1", data={"x": 1})
    grant(t, handle, {"allowedCollections": ["notes"]})
    hers = open_as_alice(t, path, "camel")
    for command, params in every_read(t, hers, "chatMessages"):
        assert "allowed list" in t.refused(t.alice, command, "permission_denied", **params)
    assert t.ok(t.alice, "data/read", dbHandle=hers, collection="Notes", id="n1")["found"]
    # Allowed by its stored name, the table is readable under its camel spelling too.
    grant(t, handle, {"allowedCollections": ["chat_messages"]})
    hers = open_as_alice(t, path, "camel")
    items = t.ok(t.alice, "data/list", dbHandle=hers, collection="chatMessages")["items"]
    assert {i["roomId"] for i in items} == {"general", "secret"}
    t.refused(t.alice, "data/list", "permission_denied", dbHandle=hers, collection="notes")


def test_2_a_row_filter_in_the_other_naming_refuses_instead_of_failing_open(t: Tenants) -> None:
    handle, path = bobs_chat(t)
    for written, other in (({"room_id": {"$ne": "secret"}}, "camel"),
                           ({"roomId": {"$ne": "secret"}}, "plain")):  # fmt: skip
        grant(t, handle, {"rowFilter": written})
        hers = open_as_alice(t, path, other)
        collection = "chatMessages" if other == "camel" else "chat_messages"
        on = {"dbHandle": hers, "collection": collection}
        field = "roomId" if other == "camel" else "room_id"
        for command, params in [
            *every_read(t, hers, collection),
            ("data/update", {**on, "id": "m2", "data": {"body": "x"}}),
            ("data/delete", {**on, "id": "m2"}),
            ("data/create", {**on, "data": {field: "secret", "body": "planted"}}),
        ]:
            error = t.refused(t.alice, command, "permission_denied", **params)
            assert "row filter" in error, (command, error)
            # (data/export of a row-filtered handle is refused whatever the filter names)
            assert command == "data/export" or next(iter(written)) in error, (command, error)
        listed = t.ok(t.alice, "data/schema", dbHandle=hers)["collections"]
        assert [c["recordCount"] for c in listed if c["name"] == "chat_messages"] == [None]
        assert HIDDEN not in orjson.dumps(t.audit(actor="alice")).decode()
    # Nothing of bob's changed.
    items = t.ok(t.bob, "data/list", dbHandle=handle, collection="chat_messages")["items"]
    assert sorted((i["id"], i["body"]) for i in items) == [("m1", "hello"), ("m2", HIDDEN)]


def test_2_a_row_filter_in_the_handles_naming_hides_the_rows(t: Tenants) -> None:
    handle, path = bobs_chat(t)
    for written, names in (({"room_id": {"$ne": "secret"}}, "plain"),
                           ({"roomId": {"$ne": "secret"}}, "camel")):  # fmt: skip
        grant(t, handle, {"rowFilter": written})
        hers = open_as_alice(t, path, names)
        collection = "chatMessages" if names == "camel" else "chat_messages"
        field = next(iter(written))
        on = {"dbHandle": hers, "collection": collection}
        listed = t.ok(t.alice, "data/list", **on)["items"]
        assert [i["id"] for i in listed] == ["m1"]
        assert t.ok(t.alice, "data/count", **on)["total"] == 1
        assert t.ok(t.alice, "data/read", **on, id="m2")["found"] is False
        assert t.ok(t.alice, "data/delete", **on, id="m2")["found"] is False
        assert t.call(t.alice, "data/update", **on, id="m2",
                      data={"body": "x"})["code"] == "record_not_found"  # fmt: skip
        assert t.call(t.alice, "data/create", **on,
                      data={field: "secret", "body": "x"})["code"] == "permission_denied"  # fmt: skip
        query = t.ok(t.alice, "data/query-open", **on)["queryHandle"]
        page = t.ok(t.alice, "data/query-next", queryHandle=query)
        assert HIDDEN not in orjson.dumps(page).decode()
        t.ok(t.alice, "data/update", **on, id="m1", data={"body": f"edited {names}"})
    items = t.ok(t.bob, "data/list", dbHandle=handle, collection="chat_messages")["items"]
    assert sorted((i["id"], i["body"]) for i in items) == [("m1", "edited camel"), ("m2", HIDDEN)]


def test_3_sqlite_tables_are_not_reachable_by_their_camel_spelling(t: Tenants) -> None:
    mine = t.ok(t.alice, "data/open", adapter="sqlite",
                config={"path": "a.sqlite", "mode": "create", "fieldNames": "camel"})  # fmt: skip
    on = {"dbHandle": mine["dbHandle"]}
    t.ok(t.alice, "data/create", **on, collection="secretStuff", id="s1", data={"x": HIDDEN})
    for spelling in ("SqliteSchema", "SqliteMaster", "sqliteSchema", "SqliteSequence"):
        body = t.call(t.alice, "data/list", **on, collection=spelling)
        assert body.get("items", []) == [], (spelling, body)
        body = t.call(t.alice, "data/schema", **on, collection=spelling)
        assert "CREATE" not in orjson.dumps(body).decode(), (spelling, body)
