"""Issue 12: a row filter of any shape confines what is written through its handle, on every door.

A condition on a field matches an array holding a matching element, whatever its operator, so a
record written through alice's row-filtered handle with ``{"owner": ["alice", "bob"]}`` would show
in bob's view too. Every field path a filter names must hold one value, reached without crossing an
array, in what a write through the handle leaves (docs/security.md §5, ``row_writes.py``); the
``evaluate.py`` oracle decides what matches, and this strictness comes on top of it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.errors import DbHandlesError
from dbhandles.evaluate import matches
from dbhandles.filters import parse_filter
from dbhandles.row_writes import loose_field
from tests.security_helpers import ALICE, BOB, ROOT, refused, space, two_tenants
from tests.test_security_tenants import Tenants, serve_tenants


@dataclass(frozen=True)
class Shape:
    """A row filter for alice, a record it matches that an administrator seeds (``mine``), and a
    record it matches too but leaves loose at ``field`` (``bad``). ``writable``: whether alice
    may write ``seed`` herself (a filter on an array field leaves that field unwritable)."""

    row_filter: dict[str, Any]
    seed: dict[str, Any]
    bad: dict[str, Any]
    field: str
    writable: bool = True


BOTH = ["alice", "bob"]

SHAPES = {
    "elemMatch of a value": Shape({"owner": {"$elemMatch": {"$eq": "alice"}}}, {"owner": ["alice"]},
                                  {"owner": BOTH}, "owner", writable=False),
    "elemMatch of an object": Shape({"owners": {"$elemMatch": {"name": "alice"}}},
                                    {"owners": [{"name": "alice"}]},
                                    {"owners": [{"name": "alice"}, {"name": "bob"}]}, "owners",
                                    writable=False),
    "anchored regex": Shape({"owner": {"$regex": "^alice$"}}, {"owner": "alice"}, {"owner": BOTH},
                            "owner"),
    "range of one value": Shape({"owner": {"$gte": "alice", "$lte": "alice"}}, {"owner": "alice"},
                                {"owner": BOTH}, "owner"),
    "not of ne": Shape({"owner": {"$not": {"$ne": "alice"}}}, {"owner": "alice"}, {"owner": BOTH},
                       "owner"),
    "top-level not": Shape({"$not": {"owner": {"$ne": "alice"}}}, {"owner": "alice"},
                           {"owner": BOTH}, "owner"),
    "all of one": Shape({"owner": {"$all": ["alice"]}}, {"owner": "alice"}, {"owner": BOTH},
                        "owner"),
    "in": Shape({"owner": {"$in": ["alice", "ally"]}}, {"owner": "alice"}, {"owner": BOTH},
                "owner"),
    "ne": Shape({"owner": {"$ne": "carol"}}, {"owner": "alice"}, {"owner": BOTH}, "owner"),
    "contains": Shape({"owner": {"$contains": "alice"}}, {"owner": "alice"}, {"owner": BOTH},
                      "owner"),
    "size": Shape({"owner": {"$size": 1}}, {"owner": ["alice"]}, {"owner": ["bob"]}, "owner",
                  writable=False),
    "index path": Shape({"owner.0": "alice"}, {"owner": ["alice"]}, {"owner": BOTH}, "owner.0",
                        writable=False),
    "exists and eq": Shape({"owner": {"$exists": True, "$eq": "alice"}}, {"owner": "alice"},
                           {"owner": BOTH}, "owner"),
    "across an array": Shape({"meta.owner": {"$regex": "^alice$"}}, {"meta": {"owner": "alice"}},
                             {"meta": [{"owner": "alice"}, {"owner": "bob"}]}, "meta.owner"),
    "and of or": Shape(
        {"$and": [{"team": "t"}, {"$or": [{"owner": {"$regex": "^alice$"}},
                                          {"owner": {"$in": ["ally"]}}]}]},
        {"team": "t", "owner": "alice"}, {"team": "t", "owner": BOTH}, "owner"),
    "other conjunct": Shape({"$and": [{"team": {"$gte": "t", "$lte": "t"}}, {"owner": "alice"}]},
                            {"team": "t", "owner": "alice"},
                            {"team": ["t", "u"], "owner": "alice"}, "team"),
    "or with no strict branch": Shape(
        {"$or": [{"owner": {"$regex": "^alice$"}}, {"team": {"$all": ["t"]}}]},
        {"owner": "alice"}, {"owner": BOTH, "team": ["t", "u"]}, "owner"),
    "nested not of or": Shape({"$not": {"$or": [{"owner": {"$ne": "alice"}}, {"team": "x"}]}},
                              {"owner": "alice"}, {"owner": BOTH}, "owner"),
}  # fmt: skip

#: Alice's doors that write records she gives: each builds its params from (handle, data).
RECORD_DOORS = {
    "create": lambda h, data: ("data/create", {"dbHandle": h, "collection": "notes",
                                               "data": data}),
    "update": lambda h, data: ("data/update", {"dbHandle": h, "collection": "notes", "id": "mine",
                                               "data": data}),
    "batch create": lambda h, data: ("data/batch", {"dbHandle": h, "operations": [
        {"op": "delete", "collection": "notes", "id": "mine"},
        {"op": "create", "collection": "notes", "data": data}]}),
    "batch update": lambda h, data: ("data/batch", {"dbHandle": h, "operations": [
        {"op": "update", "collection": "notes", "id": "mine", "data": data}]}),
}  # fmt: skip


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with two_tenants(tmp_path) as svc:
        yield svc


def _granted(service: Service, tmp_path: Path, shape: Shape) -> dict[str, str]:
    """An administrator's ``shared.sqlite`` whose ``notes`` holds ``mine`` (``shape.seed``) and
    ``b`` ({owner: bob}), granted to alice with ``shape``'s filter and to bob with
    ``{"owner": "bob"}``: the handles by actor (and ``admin``)."""
    path = str(tmp_path / "shared.sqlite")
    admin = service.execute("data/open", {"adapter": "sqlite", "config": {"path": path,
                                          "mode": "create"}}, context=ROOT)["dbHandle"]  # fmt: skip
    for rid, data in (("mine", shape.seed), ("b", {"owner": "bob"})):
        service.execute("data/create", {"dbHandle": admin, "collection": "notes", "id": rid,
                                        "data": data}, context=ROOT)  # fmt: skip
    handles = {"admin": admin}
    for who, row_filter in (("alice", shape.row_filter), ("bob", {"owner": "bob"})):
        service.execute("data/grant", {"dbHandle": admin, "actor": who, "access": "full",
                                       "permissions": {"rowFilter": row_filter}}, context=ROOT)  # fmt: skip
        context = ALICE if who == "alice" else BOB
        handles[who] = service.execute("data/open", {"adapter": "sqlite", "config": {"path": path}},
                                       context=context)["dbHandle"]  # fmt: skip
    return handles


def _rows(service: Service, handle: str) -> list[Any]:
    listed = service.execute("data/list", {"dbHandle": handle, "collection": "notes"},
                             context=ROOT)["items"]  # fmt: skip
    return sorted((item["id"], item.get("owner"), item.get("version")) for item in listed)


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_the_oracle_matches_every_loose_record(shape: Shape) -> None:
    # The refusals below are strictness on top of matching, not a record outside the filter.
    node = parse_filter(shape.row_filter)
    assert node is not None and matches(node, shape.bad) and matches(node, shape.seed)
    assert loose_field(node, shape.bad) == shape.field
    assert (loose_field(node, shape.seed) is None) == shape.writable


@pytest.mark.parametrize("door", RECORD_DOORS)
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_every_record_door_refuses_a_loose_value(
    service: Service, tmp_path: Path, shape: Shape, door: str
) -> None:
    h = _granted(service, tmp_path, shape)
    before = _rows(service, h["admin"])
    name, params = RECORD_DOORS[door](h["alice"], shape.bad)
    error = refused(service, name, params, ALICE)
    assert error.code == "permission_denied", error
    assert f"data.{shape.field}" in str(error.field) and "array" in error.message, error
    # Nothing was written (a batch is all or nothing), and bob's view is his alone.
    assert _rows(service, h["admin"]) == before
    bobs = service.execute("data/list", {"dbHandle": h["bob"], "collection": "notes"},
                           context=BOB)["items"]  # fmt: skip
    assert [item["id"] for item in bobs] == ["b"]


@pytest.mark.parametrize("door", RECORD_DOORS)
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_a_confined_record_is_written_through_every_door(
    service: Service, tmp_path: Path, shape: Shape, door: str
) -> None:
    h = _granted(service, tmp_path, shape)
    name, params = RECORD_DOORS[door](h["alice"], {**shape.seed, "n": 7})
    if shape.writable:
        service.execute(name, params, context=ALICE)
        assert any(row[0] != "b" for row in _rows(service, h["admin"]))
    else:  # a filter on an array field: that field cannot be written through the handle
        error = refused(service, name, params, ALICE)
        assert error.code == "permission_denied" and shape.field in error.message, error


def _start_job(service: Service, command: str, params: dict[str, Any]) -> tuple[str, str]:
    """The code and message of ``command`` run as alice's job: refused at its start, or its
    failed record (polled until it ends; nothing asserts how long it took)."""
    try:
        job = service.execute("data/job-start", {"command": command, "params": params},
                              context=ALICE)  # fmt: skip
    except DbHandlesError as exc:  # refused at its start: as the immediate call is
        return exc.code, exc.message
    for _ in range(6000):
        status = service.execute("data/job-status", {"jobId": job["jobId"]}, context=ALICE)
        if status["status"] not in ("queued", "running"):
            break
        time.sleep(0.01)
    assert status["status"] == "failed", status
    return str(status["error"]["code"]), str(status["error"]["error"])


@pytest.mark.parametrize("as_job", [False, True], ids=["immediate", "job"])
@pytest.mark.parametrize("door", ["import", "copy"])
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_import_and_copy_into_any_filtered_handle_are_refused_whole(
    service: Service, tmp_path: Path, shape: Shape, door: str, as_job: bool
) -> None:
    h = _granted(service, tmp_path, shape)
    before = _rows(service, h["admin"])
    if door == "import":
        (space(service, "alice") / "in.jsonl").write_bytes(
            b'{"owner": ["alice", "bob"], "meta": [{"owner": "alice"}]}\n'
        )
        command, params = "data/import", {"input": "in.jsonl", "dbHandle": h["alice"],
                                          "collection": "notes"}  # fmt: skip
    else:
        source = service.execute("data/open", {"adapter": "memory"}, context=ALICE)["dbHandle"]
        service.execute("data/create", {"dbHandle": source, "collection": "notes",
                                        "data": shape.bad}, context=ALICE)  # fmt: skip
        command, params = "data/copy", {"from": {"dbHandle": source, "collection": "notes"},
                                        "to": {"dbHandle": h["alice"], "collection": "notes"}}  # fmt: skip
    if as_job:
        code, message = _start_job(service, command, params)
    else:
        error = refused(service, command, params, ALICE)
        code, message = error.code, error.message
    assert code == "permission_denied" and "row filter" in message, message
    assert _rows(service, h["admin"]) == before


# -- through a real server ----------------------------------------------------------------------


@pytest.fixture
def tenants(tmp_path: Path) -> Iterator[Tenants]:
    yield from serve_tenants(tmp_path)


def test_a_loose_value_is_refused_over_http(tenants: Tenants) -> None:
    t = tenants
    path = t.space("bob") / "shared.sqlite"
    bobs = t.ok(t.bob, "data/open", adapter="sqlite", config={"path": "shared.sqlite",
                                                              "mode": "create"})["dbHandle"]  # fmt: skip
    t.ok(t.bob, "data/create", dbHandle=bobs, collection="notes", id="b", data={"owner": "bob"})
    t.ok(t.bob, "data/grant", dbHandle=bobs, actor="alice", access="full",
         permissions={"rowFilter": {"owner": {"$regex": "^alice$"}}})  # fmt: skip
    mine = t.ok(t.alice, "data/open", adapter="sqlite", config={"path": str(path)})["dbHandle"]
    message = t.refused(t.alice, "data/create", "permission_denied", dbHandle=mine,
                        collection="notes", data={"owner": BOTH})  # fmt: skip
    assert "owner" in message and "array" in message
    t.ok(t.alice, "data/create", dbHandle=mine, collection="notes", data={"owner": "alice"})
    listed = t.ok(t.bob, "data/list", dbHandle=bobs, collection="notes")["items"]
    assert sorted(str(item["owner"]) for item in listed) == ["alice", "bob"]


# -- a job's record answers a path the caller gave in the words of the immediate call ------------


def _bad_paths(service: Service) -> dict[str, tuple[str, dict[str, Any]]]:
    home = service.settings.home
    bobs = space(service, "bob")
    return {
        "import of the home's token": ("data/import", {"input": str(home / "admin.token")}),
        "import of a missing home file": ("data/import", {"input": str(home / "none.jsonl")}),
        "import through a dotted home": (
            "data/import",
            {"input": f"{home}/../{home.name}/x.jsonl"},
        ),
        "import of another space": ("data/import", {"input": str(bobs / "in.jsonl")}),
        "export into the home": ("data/export", {"output": str(home / "server.json")}),
        "export into another space": ("data/export", {"output": str(bobs / "out.jsonl")}),
    }


@pytest.mark.parametrize("case", range(6))
def test_a_job_record_echoes_a_given_path_as_the_immediate_error_does(
    service: Service, case: int
) -> None:
    label, (command, paths) = list(_bad_paths(service).items())[case]
    mine = service.execute("data/open", {"adapter": "memory"}, context=ALICE)["dbHandle"]
    params = {"dbHandle": mine, "collection": "notes", **paths}
    error = refused(service, command, params, ALICE)
    assert error.code == "path_not_allowed", (label, error)
    given = next(iter(paths.values()))
    assert given in error.message, (label, error.message)  # as given, never masked
    assert _start_job(service, command, params) == (error.code, error.message), label
    listed = service.execute("data/job-list", {}, context=ALICE)["jobs"]
    assert [job["error"]["error"] for job in listed] == [error.message]
    assert [job["params"][next(iter(paths))] for job in listed] == [given]
