"""``data/list`` and reads of tables dbhandles did not create keep nothing about access between
calls, and see every schema change: an alias re-pointed, a grant narrowed to a row filter or
revoked, a collection dropped and re-created, a foreign table altered or replaced, each through a
second ``Service`` on the same home or a plain ``sqlite3`` connection (another process, as far as
the first knows), is seen by the very next call, after calls that filled every cache (the
compiled filter, the kept point statement, the handle cache)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dbhandles import Context, Service, Settings
from dbhandles.errors import DbHandlesError
from tests.foreign_rows import run_sql
from tests.freshness_helpers import (
    ADMIN,
    ALICE,
    BOB,
    REVOKED,
    created_elsewhere,
    narrow_alice_to_her_rows,
    notes_granted_to_alice,
    one_record,
    open_file,
    two_services,
)

FILTER = {"v": {"$gte": 1}}


def _ids(answer: dict[str, Any]) -> list[Any]:
    return [item["id"] for item in answer["items"]]


def test_a_list_follows_an_alias_re_pointed_elsewhere(tmp_path: Path) -> None:
    with two_services(tmp_path) as (service, other):
        for name in ("a", "b"):
            handle = open_file(service, tmp_path / f"{name}.sqlite", Context())
            service.execute("data/create", {"dbHandle": handle, "collection": "c",
                                            "id": name, "data": {"v": 1}})  # fmt: skip
        open_file(service, tmp_path / "a.sqlite", Context(), alias="train")
        listing = {"dbHandle": "train", "collection": "c", "filter": FILTER}
        for _ in range(3):
            assert _ids(service.execute("data/list", listing)) == ["a"]
        second = open_file(other, tmp_path / "b.sqlite", Context(), alias="train")
        answer = service.execute("data/list", listing)
        assert answer["dbHandle"] == second and _ids(answer) == ["b"]


def test_grants_narrowed_and_revoked_elsewhere_apply_to_the_next_list(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    with two_services(tmp_path) as (service, other):
        _, mine = notes_granted_to_alice(service, path, v=1)

        def listed(handle: str) -> list[Any]:
            return _ids(service.execute("data/list", {"dbHandle": handle, "collection": "notes",
                                                      "filter": FILTER}, context=ALICE))  # fmt: skip

        for _ in range(3):
            assert listed(mine) == ["r1", "r2"]
        other_admin = narrow_alice_to_her_rows(other, path)
        with pytest.raises(DbHandlesError) as closed:  # the narrowing closes her handles
            listed(mine)
        assert closed.value.code == "handle_not_found"
        mine = open_file(service, path, ALICE)
        assert listed(mine) == ["r1"]  # the row filter, at once
        other.execute("data/revoke", {"dbHandle": other_admin, "actor": "alice"}, context=ADMIN)
        with pytest.raises(DbHandlesError) as refused:
            listed(mine)
        assert refused.value.code in REVOKED


def test_a_collection_dropped_and_re_created_elsewhere_is_listed_as_it_now_is(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.sqlite"
    with two_services(tmp_path) as (service, other):
        handle = one_record(service, path)
        listing = {"dbHandle": handle, "collection": "c", "filter": FILTER}
        for _ in range(3):  # the filter is compiled once and kept
            assert _ids(service.execute("data/list", listing)) == ["r"]
        run_sql(path, 'DROP TABLE "c"')
        assert service.execute("data/list", listing)["items"] == []
        created_elsewhere(other, path, "c", "s", {"v": 2})
        answer = service.execute("data/list", listing)
        assert _ids(answer) == ["s"] and answer["items"][0]["v"] == 2


def test_a_foreign_table_altered_then_replaced_elsewhere_is_read_and_listed_as_it_now_is(
    tmp_path: Path,
) -> None:
    path = tmp_path / "legacy.sqlite"
    run_sql(path, "CREATE TABLE people (n INTEGER PRIMARY KEY, v INTEGER, name TEXT)",
         "INSERT INTO people VALUES (1, 1, 'ada')")  # fmt: skip
    with two_services(tmp_path) as (service, other):
        handle = open_file(service, path, Context())
        read = {"dbHandle": handle, "collection": "people", "id": "1"}
        listing = {"dbHandle": handle, "collection": "people", "filter": FILTER}
        for _ in range(3):  # the point statement and the filter are kept from here on
            assert service.execute("data/read", read)["data"]["name"] == "ada"
            assert _ids(service.execute("data/list", listing)) == [1]
        run_sql(path, "ALTER TABLE people ADD COLUMN age INTEGER DEFAULT 36")
        assert service.execute("data/read", read)["data"]["age"] == 36
        assert service.execute("data/list", listing)["items"][0]["age"] == 36
        run_sql(path, "DROP TABLE people")
        created_elsewhere(other, path, "people", "1", {"v": 2, "name": "bo"})
        found = service.execute("data/read", read)["data"]
        assert found["name"] == "bo" and "n" not in found and found["version"] == 1
        answer = service.execute("data/list", listing)
        assert _ids(answer) == ["1"] and answer["items"][0]["v"] == 2


def test_a_grant_revoked_elsewhere_applies_to_the_next_foreign_list(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    run_sql(path, "CREATE TABLE people (n INTEGER PRIMARY KEY, ownerId TEXT, v INTEGER)",
         "INSERT INTO people VALUES (1, 'alice', 1)", "INSERT INTO people VALUES (2, 'bob', 1)")  # fmt: skip
    with two_services(tmp_path) as (service, other):
        admin = open_file(service, path)
        service.execute("data/grant", {"dbHandle": admin, "actor": "alice", "access": "read"},
                        context=ADMIN)  # fmt: skip
        mine = open_file(service, path, ALICE)
        listing = {"dbHandle": mine, "collection": "people", "filter": FILTER}
        for _ in range(3):
            assert _ids(service.execute("data/list", listing, context=ALICE)) == [1, 2]
        other_admin = open_file(other, path)
        other.execute("data/revoke", {"dbHandle": other_admin, "actor": "alice"}, context=ADMIN)
        with pytest.raises(DbHandlesError) as refused:
            service.execute("data/list", listing, context=ALICE)
        assert refused.value.code in REVOKED


def test_handle_names_are_checked_once_and_refused_as_before(tmp_path: Path) -> None:
    """``resolve_for`` checks a name once: a malformed one is ``invalid_params`` for every
    caller, another actor's alias is an unknown handle, an actor's own alias and ``default``
    resolve."""
    with Service(settings=Settings(home=tmp_path / "home")) as service:
        registry = service.registry
        for actor, admin in (("alice", False), ("root", True)):
            with pytest.raises(DbHandlesError) as bad:
                registry.resolve_for("no spaces", actor, admin)
            assert bad.value.code == "invalid_params"
            assert registry.resolve_for("default", actor, admin).is_default
            assert registry.resolve_for(None, actor, admin).is_default
        handle = open_file(service, tmp_path / "bob.sqlite", ADMIN)
        service.execute("data/grant", {"dbHandle": handle, "actor": "bob", "access": "read"},
                        context=ADMIN)  # fmt: skip
        bobs = open_file(service, tmp_path / "bob.sqlite", BOB, alias="mine")
        assert registry.resolve_for("mine", "bob", False).handle == bobs
        assert registry.resolve_for(bobs, "bob", False).handle == bobs
        with pytest.raises(DbHandlesError) as unknown:
            registry.resolve_for("mine", "alice", False)
        assert unknown.value.code == "handle_not_found"
