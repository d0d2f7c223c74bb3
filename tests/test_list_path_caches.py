"""What the command path of ``data/list`` and ``data/read`` keeps between calls (issues 15 and 17)
holds only what it is keyed by: a table's shape per schema (a change made by another program, or
a file replaced at the path, is seen by the next call), a listing's filter parsed once per call
(never another call's tree), a handle name's syntax (never whether it exists, nor who may use it),
and nothing about access (a grant narrowed or revoked between two listings applies to the next)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Context, Service, Settings
from dbhandles.commands import COMMANDS
from dbhandles.commands.fast_params import parse_filter_once, parse_simple
from dbhandles.errors import DbHandlesError
from dbhandles.filters import parse_filter
from dbhandles.paging import token_shape
from tests.foreign_rows import run_sql

ALICE = Context(actor="alice", session_id="s-alice", is_admin=False, trusted_local=False)
ADMIN = Context(actor="root", session_id="s-root", is_admin=True, trusted_local=False)
CREATE = "CREATE TABLE t (k integer PRIMARY KEY, b integer, c text, ownerId text)"
ROWS = "INSERT INTO t VALUES " + ", ".join(
    f"({i}, {100 - i}, 'c{i}', '{'alice' if i % 2 else 'bob'}')" for i in range(1, 11)
)


def _table(tmp_path: Path) -> Path:
    path = tmp_path / "db.sqlite"
    run_sql(path, CREATE, ROWS)
    return path


def _open(service: Service, path: Path, context: Context | None = None) -> str:
    opened = service.execute("data/open", {"adapter": "sqlite", "config": {"path": str(path)}},
                             context=context)  # fmt: skip
    return str(opened["dbHandle"])


def test_a_kept_shape_gives_way_to_a_schema_change_made_elsewhere(
    service: Service, tmp_path: Path
) -> None:
    path = _table(tmp_path)
    handle = _open(service, path)
    params: dict[str, Any] = {"dbHandle": handle, "collection": "t", "orderBy": "b", "limit": 3}
    first, again = service.execute("data/list", params), service.execute("data/list", params)
    assert first["nextCursor"] == again["nextCursor"]  # the same shape, kept
    second = service.execute("data/list", {**params, "cursor": first["nextCursor"]})
    assert [r["k"] for r in second["items"]] == [7, 6, 5]
    # The sorted column retyped by another program: the kept shape is not taken for the new one.
    run_sql(path, "ALTER TABLE t RENAME TO t_old",
            "CREATE TABLE t (k integer PRIMARY KEY, b text, c text, ownerId text)",
            "INSERT INTO t SELECT * FROM t_old")  # fmt: skip
    with pytest.raises(DbHandlesError) as info:
        service.execute("data/list", {**params, "cursor": second["nextCursor"]})
    assert (info.value.code, info.value.details["reason"]) == ("conflict", "schema_changed")
    fresh = service.execute("data/list", params)
    assert token_shape(fresh["nextCursor"]) != token_shape(first["nextCursor"])
    # The new shape is kept in turn, and pages on.
    following = service.execute("data/list", {**params, "cursor": fresh["nextCursor"]})
    assert following["items"] and following["hasMore"] is True


def test_a_file_replaced_at_the_path_is_another_schema(service: Service, tmp_path: Path) -> None:
    """Two files of one schema history (so the same ``schema_version``): the one replaced at the
    path has a sorted column of another type, which its next listing's cursor must carry."""
    path = _table(tmp_path)
    other = tmp_path / "other.sqlite"
    run_sql(other, CREATE.replace("b integer", "b real"), ROWS)
    assert _schema_version(path) == _schema_version(other)
    handle = _open(service, path)
    params: dict[str, Any] = {"dbHandle": handle, "collection": "t", "orderBy": "b", "limit": 3}
    before = service.execute("data/list", params)["nextCursor"]
    os.replace(other, path)
    after = service.execute("data/list", params)["nextCursor"]
    assert token_shape(after) != token_shape(before)
    with pytest.raises(DbHandlesError) as info:
        service.execute("data/list", {**params, "cursor": before})
    assert info.value.code == "conflict"


def _schema_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA schema_version").fetchone()[0])
    finally:
        conn.close()


def test_the_schema_stamp_moves_with_the_schema(tmp_path: Path) -> None:
    from dbhandles.adapters import get_adapter_class

    path = _table(tmp_path)
    cls = get_adapter_class("sqlite")
    adapter = cls(cls.parse_config({"path": str(path)}))
    try:
        with adapter.session() as session:
            first = adapter.schema_stamp(session)
        with adapter.session() as session:
            assert adapter.schema_stamp(session) == first is not None
        run_sql(path, "ALTER TABLE t ADD COLUMN d integer")
        with adapter.session() as session:
            assert adapter.schema_stamp(session) != first
    finally:
        adapter.close()


def test_a_grant_changed_between_two_listings_applies_to_the_next(tmp_path: Path) -> None:
    path = _table(tmp_path)
    settings = Settings(home=tmp_path / "home")
    with Service(settings=settings) as service, Service(settings=settings) as other:
        admin = _open(service, path, ADMIN)
        service.execute("data/grant", {"dbHandle": admin, "actor": "alice", "access": "read"},
                        context=ADMIN)  # fmt: skip
        mine = _open(service, path, ALICE)
        params = {"dbHandle": mine, "collection": "t", "filter": {"b": {"$gte": 0}}, "limit": 2}
        for _ in range(3):  # the shape, the order, the filter's tree and the name all kept
            page = service.execute("data/list", params, context=ALICE)
            assert page["count"] == 10 and page["hasMore"] is True
        # Narrowed through another service (another process, as far as this one knows).
        other_admin = _open(other, path, ADMIN)
        other.execute("data/grant", {"dbHandle": other_admin, "actor": "alice", "access": "read",
                                     "permissions": {"rowFilter": {"ownerId": "alice"}}},
                      context=ADMIN)  # fmt: skip
        with pytest.raises(DbHandlesError) as closed:  # her handle is closed by the narrowing
            service.execute("data/list", params, context=ALICE)
        assert closed.value.code == "handle_not_found"
        mine = _open(service, path, ALICE)
        narrowed = service.execute("data/list", {**params, "dbHandle": mine}, context=ALICE)
        assert narrowed["count"] == 5 and {r["ownerId"] for r in narrowed["items"]} == {"alice"}
        other.execute("data/revoke", {"dbHandle": other_admin, "actor": "alice"}, context=ADMIN)
        with pytest.raises(DbHandlesError) as refused:
            service.execute("data/list", {**params, "dbHandle": mine}, context=ALICE)
        assert refused.value.code in {"handle_not_found", "permission_denied", "access_denied"}


def test_a_filter_is_parsed_once_and_only_for_its_own_params() -> None:
    model = COMMANDS["data/list"].params
    raw = {"collection": "t", "filter": {"a": {"$gte": 1}}, "limit": 5}
    params = parse_simple(model, raw)
    assert params is not None
    tree = parse_filter_once(params.filter)
    assert tree == parse_filter(raw["filter"])
    # Handed out once: asked again, it is parsed again (the same tree, another object).
    again = parse_filter_once(params.filter)
    assert again == tree and again is not tree
    # Another object, even equal to the one just parsed, is parsed itself.
    parse_simple(model, raw)
    other = {"a": {"$gte": 2}}
    assert parse_filter_once(other) == parse_filter(other) != tree
    assert parse_filter_once(None) is None and parse_filter_once({}) is None


@pytest.mark.parametrize("name", ["bad name!", "", "x" * 300])
def test_a_refused_handle_name_is_refused_every_time(service: Service, name: str) -> None:
    for _ in range(2):
        envelope = service.dispatch("data/list", {"dbHandle": name, "collection": "t"})
        assert (envelope["code"], envelope["field"]) == ("invalid_params", "dbHandle")


def test_a_remembered_name_is_resolved_again(service: Service, tmp_path: Path) -> None:
    """Only a name's syntax is kept: a closed handle is unknown on the next call."""
    handle = _open(service, _table(tmp_path))
    read = {"dbHandle": handle, "collection": "t", "id": "1"}
    listed = {"dbHandle": handle, "collection": "t"}
    assert service.execute("data/read", read)["found"] is True
    assert service.execute("data/list", listed)["count"] == 10
    service.execute("data/close", {"dbHandle": handle})
    for command, params in (("data/read", read), ("data/list", listed)):
        with pytest.raises(DbHandlesError) as info:
            service.execute(command, params)
        assert info.value.code == "handle_not_found"


def test_a_refused_order_is_refused_every_time(service: Service, tmp_path: Path) -> None:
    handle = _open(service, _table(tmp_path))
    for _ in range(2):
        envelope = service.dispatch(
            "data/list", {"dbHandle": handle, "collection": "t", "orderBy": "-"}
        )
        assert envelope["code"] == "invalid_filter" and envelope["field"].startswith("orderBy")
