"""Issue 12: a path too long for the file system is refused up front, naming the limit, through
every door that takes a path, never a vague ``storage_error`` after the fact: a file name that
leaves no room under ``NAME_MAX`` for the adapter's own files named after it (SQLite's
``-journal``), and a full path (a relative name in the caller's data space) that leaves no room
under ``PATH_MAX`` for the files a door makes beside it (docs/security.md, "Paths")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.path_text import NAME_MAX, PATH_MAX
from tests.security_helpers import ALICE, refused, space, two_tenants

#: The longest SQLite file name: room for ``-journal``.
SQLITE_NAME_MAX = NAME_MAX - len("-journal")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with two_tenants(tmp_path) as svc:
        (space(svc, "alice") / "in.jsonl").write_text('{"id": "2", "n": 2}\n')
        yield svc


def _sqlite_name(size: int) -> str:
    return "a" * (size - len(".sqlite")) + ".sqlite"


#: The doors that create an SQLite database by name.
SQLITE_DOORS = {
    "open": lambda name: ("data/open", {"config": {"path": name, "mode": "create"}}),
    "import output": lambda name: (
        "data/import",
        {"input": "in.jsonl", "output": name, "collection": "c"},
    ),
}


@pytest.mark.parametrize("size", [SQLITE_NAME_MAX + 1, NAME_MAX - 1, NAME_MAX])
@pytest.mark.parametrize("door", sorted(SQLITE_DOORS))
def test_an_sqlite_name_with_no_room_for_its_journal_is_refused(
    service: Service, door: str, size: int
) -> None:
    command, params = SQLITE_DOORS[door](_sqlite_name(size))
    error = refused(service, command, params)
    assert error.code == "invalid_config", error.message
    assert f"{size} bytes" in error.message and f"at most {SQLITE_NAME_MAX} bytes" in error.message
    assert error.field in ("config.path", "output")
    assert sorted(p.name for p in space(service, "alice").iterdir()) == ["in.jsonl"]


@pytest.mark.parametrize("door", sorted(SQLITE_DOORS))
def test_the_longest_sqlite_name_works_with_its_journal(service: Service, door: str) -> None:
    name = _sqlite_name(SQLITE_NAME_MAX)
    command, params = SQLITE_DOORS[door](name)
    if command == "data/open":
        params["config"]["wal"] = False  # a rollback journal: the longest side file's name
    handle = service.execute(command, params, context=ALICE)["dbHandle"]
    service.execute("data/create", {"dbHandle": handle, "collection": "c", "id": "9",
                                    "data": {"n": 9}}, context=ALICE)  # fmt: skip
    items = service.execute("data/list", {"dbHandle": handle, "collection": "c"}, context=ALICE)
    assert "9" in {item["id"] for item in items["items"]}


def _deep(service: Service, last: str) -> str:
    """A relative name under ``PATH_MAX`` as given (4,090 bytes) that is past it in alice's space
    with the room a door needs beside a file."""
    size = PATH_MAX - 6
    parts = ["d" * 200] * ((size - 250) // 201)
    head = "/".join(parts) + "/"
    name = head + "e" * (size - len(head) - len(last)) + last
    assert len(name) == size and len(str(space(service, "alice"))) + 1 + len(name) + 16 >= PATH_MAX
    return name


#: Every door that takes a path, by the param it names.
PATH_DOORS: dict[str, Any] = {
    "open sqlite": lambda p: ("data/open", {"config": {"path": p, "mode": "create"}}),
    "open json": lambda p: (
        "data/open",
        {"adapter": "json", "config": {"path": p, "mode": "create"}},
    ),
    "import output": lambda p: (
        "data/import",
        {"input": "in.jsonl", "output": p, "collection": "c"},
    ),
    "import input": lambda p: ("data/import", {"input": p, "dbHandle": "mine", "collection": "c"}),
    "import rejects": lambda p: (
        "data/import",
        {
            "input": "in.jsonl",
            "dbHandle": "mine",
            "collection": "c",
            "onError": "skip",
            "rejects": p,
        },
    ),
    "export output": lambda p: (
        "data/export",
        {"dbHandle": "mine", "collection": "c", "output": p},
    ),
    "export input": lambda p: (
        "data/export",
        {"input": p, "collection": "c", "output": "out.jsonl"},
    ),
}


@pytest.mark.parametrize("door", sorted(PATH_DOORS))
def test_a_full_path_past_path_max_is_refused_naming_the_limit(service: Service, door: str) -> None:
    service.execute("data/open", {"alias": "mine", "config": {"path": "mine.sqlite",
                                  "mode": "create"}}, context=ALICE)  # fmt: skip
    command, params = PATH_DOORS[door](_deep(service, "x.data"))
    error = refused(service, command, params)
    assert error.code in ("invalid_params", "invalid_config"), error.message
    assert "too long" in error.message and f"at most {PATH_MAX - 1} bytes" in error.message
    assert not [p for p in space(service, "alice").iterdir() if p.name.startswith("d")]


@pytest.mark.parametrize("target", ["output", "dbHandle"])
def test_a_default_rejects_name_past_name_max_is_told_as_such(
    service: Service, target: str
) -> None:
    """The longest SQLite name leaves no room for ``.rejects.jsonl``: an import that would write
    that default is refused naming the limit and the way out (give ``rejects``), before anything
    is read or written; with ``rejects`` given it runs."""
    name = _sqlite_name(SQLITE_NAME_MAX)
    params: dict[str, Any] = {"input": "in.jsonl", "collection": "c", "onError": "skip"}
    if target == "output":
        params["output"] = name
    else:
        opened = service.execute("data/open", {"config": {"path": name, "mode": "create"}},
                                 context=ALICE)  # fmt: skip
        params["dbHandle"] = opened["dbHandle"]
    before = sorted(p.name for p in space(service, "alice").iterdir())
    error = refused(service, "data/import", params)
    assert (error.code, error.field) == ("invalid_params", "rejects"), error.message
    assert f"at most {NAME_MAX}" in error.message and "give rejects" in error.message
    assert sorted(p.name for p in space(service, "alice").iterdir()) == before
    done = service.execute("data/import", {**params, "rejects": "bad.jsonl"}, context=ALICE)
    assert done["success"] is True
