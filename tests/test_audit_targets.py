"""Every command's audit row names the database it really touched, for successes, refusals and crashes.

Generated from the command table: a command without a recipe here fails the test, so a new command
cannot skip the question "what is its target?" (issue 11, part 2).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Context, Service
from dbhandles.commands import builtin_commands

ADMIN = Context(actor="admin", is_admin=True, session_id="s-admin")
ALICE = Context(actor="alice", is_admin=False, session_id="s-alice", trusted_local=False)


@dataclass
class World:
    service: Service
    tmp: Path
    handle: str  # a SQLite database that is not the default one
    cursor: str  # a query cursor of ADMIN's session on ``handle``

    def audit(self, command: str) -> list[dict[str, Any]]:
        """The audit rows of ``command``, newest first."""
        entries = self.service.execute("data/audit", {"limit": 10_000}, context=ADMIN)["entries"]
        return [e for e in entries if e["command"] == command]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with Service(home=tmp_path / "home") as service:
        handle = service.execute(
            "data/open",
            {
                "adapter": "sqlite",
                "config": {"path": str(tmp_path / "t.sqlite"), "mode": "create"},
                "permissions": {"isolationMode": "strict"},  # other actors are refused
            },
            context=ADMIN,
        )["dbHandle"]
        service.execute(
            "data/create", {"dbHandle": handle, "collection": "c", "id": "r1", "data": {"n": 1}},
            context=ADMIN,
        )  # fmt: skip
        cursor = service.execute(
            "data/query-open", {"dbHandle": handle, "collection": "c"}, context=ADMIN
        )["queryHandle"]
        (tmp_path / "in.jsonl").write_text('{"id": "j1", "n": 2}\n')
        yield World(service, tmp_path, handle, cursor)


#: command -> (params for a call that touches ``world.handle`` (or nothing), the handle expected in
#: its audit row: "target" for world.handle, "created" for the handle in the result, None for none).
Recipe = Callable[[World], tuple[dict[str, Any], str | None]]
RECIPES: dict[str, Recipe] = {
    "data/create": lambda w: ({"dbHandle": w.handle, "collection": "c", "data": {}}, "target"),
    "data/read": lambda w: ({"dbHandle": w.handle, "collection": "c", "id": "r1"}, "target"),
    "data/update": lambda w: (
        {"dbHandle": w.handle, "collection": "c", "id": "r1", "data": {"n": 2}},
        "target",
    ),
    "data/delete": lambda w: ({"dbHandle": w.handle, "collection": "c", "id": "r1"}, "target"),
    "data/batch": lambda w: (
        {"dbHandle": w.handle, "operations": [{"op": "create", "collection": "c", "data": {}}]},
        "target",
    ),
    "data/list": lambda w: ({"dbHandle": w.handle, "collection": "c"}, "target"),
    "data/count": lambda w: (
        {"dbHandle": w.handle, "collection": "c", "groupBy": "n"},
        "target",
    ),
    "data/query-open": lambda w: ({"dbHandle": w.handle, "collection": "c"}, "target"),
    # No dbHandle: the cursor's own handle is the target, never 'default'.
    "data/query-next": lambda w: ({"queryHandle": w.cursor}, "target"),
    "data/query-close": lambda w: ({"queryHandle": w.cursor}, "target"),
    "data/schema": lambda w: ({"dbHandle": w.handle}, "target"),
    "data/truncate": lambda w: ({"dbHandle": w.handle, "collection": "c"}, "target"),
    "data/clear": lambda w: ({"dbHandle": w.handle}, "target"),
    "data/vacuum": lambda w: ({"dbHandle": w.handle}, "target"),
    "data/close": lambda w: ({"dbHandle": w.handle}, "target"),
    "data/import": lambda w: (
        {"input": str(w.tmp / "in.jsonl"), "output": str(w.tmp / "t.sqlite"), "collection": "c"},
        "created",
    ),
    "data/export": lambda w: (
        {"input": str(w.tmp / "t.sqlite"), "output": str(w.tmp / "out.jsonl"), "collection": "c"},
        "created",
    ),
    # Two handles: the dispatcher's row names the target (the source gets a row of its own).
    "data/copy": lambda w: (
        {
            "from": {"dbHandle": w.handle, "collection": "c"},
            "to": {"dbHandle": w.handle, "collection": "c2"},
        },
        "target",
    ),
    "data/open": lambda w: (
        {"adapter": "sqlite", "config": {"path": str(w.tmp / "other.sqlite"), "mode": "create"}},
        "created",
    ),
    "data/grant": lambda w: ({"dbHandle": w.handle, "actor": "bob"}, "target"),
    "data/revoke": lambda w: ({"dbHandle": w.handle, "actor": "bob"}, "target"),
    "data/list-grants": lambda w: ({"dbHandle": w.handle}, "target"),
    "data/list-handles": lambda w: ({}, None),
    # Jobs name no database themselves: the command a job runs writes its own row with its target.
    "data/job-start": lambda w: (
        {"command": "data/vacuum", "params": {"dbHandle": w.handle}},
        None,
    ),
    "data/job-status": lambda w: ({"jobId": "no-such-job"}, None),
    "data/job-list": lambda w: ({}, None),
    "data/job-cancel": lambda w: ({"jobId": "no-such-job"}, None),
    "data/audit": lambda w: ({}, None),
    "session/end": lambda w: ({}, None),
    "token/create": lambda w: ({"actor": "bob"}, None),
    "token/list": lambda w: ({}, None),
    "token/revoke": lambda w: ({"tokenId": "no-such-token"}, None),
}


def test_every_command_has_a_recipe() -> None:
    assert sorted(RECIPES) == sorted(builtin_commands())


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_the_audit_row_names_the_handle_really_touched(world: World, name: str) -> None:
    params, expected = RECIPES[name](world)
    envelope = world.service.dispatch(name, params, context=ADMIN)
    rows = world.audit(name)
    if name == "data/audit":
        assert envelope["success"]
        assert rows == []  # reading the log is not itself logged (a refusal is, below)
        return
    assert rows, f"{name} left no audit row: {envelope}"
    row = rows[0]
    if expected == "target":
        want: str | None = world.handle
    elif expected == "created":
        want = envelope.get("dbHandle")
        assert want not in (None, "default")
    else:
        want = None
    assert row["handle"] == want, (name, envelope, row)
    assert row["actor"] == "admin"


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_a_refused_command_is_audited_too(world: World, name: str) -> None:
    """Alice (no administrator, remote) on admin's handle: refused, and the refusal is in the log
    with the handle it was refused on."""
    params, expected = RECIPES[name](world)
    if name in ("data/query-next", "data/query-close"):
        return  # another session's cursor is invisible, not refused: covered below
    envelope = world.service.dispatch(name, params, context=ALICE)
    if envelope["success"]:
        # Commands open to every actor, on nothing of the admin's: still logged under alice.
        assert expected in (None, "created") and name not in ("data/audit",), envelope
    rows = [r for r in world.audit(name) if r["actor"] == "alice"]
    assert rows, f"{name} by alice left no audit row: {envelope}"
    if not envelope["success"]:
        assert rows[0]["code"] == envelope["code"]
        if expected == "target":
            assert rows[0]["handle"] == world.handle


def test_another_sessions_cursor_is_audited_without_a_handle(world: World) -> None:
    envelope = world.service.dispatch(
        "data/query-next", {"queryHandle": world.cursor}, context=ALICE
    )
    assert envelope["code"] == "cursor_not_found"
    row = next(r for r in world.audit("data/query-next") if r["actor"] == "alice")
    assert row["handle"] is None and row["code"] == "cursor_not_found"


def test_a_command_that_crashes_is_audited(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    from dbhandles.adapters.sqlite import SqliteAdapter

    monkeypatch.setattr(SqliteAdapter, "read_one", boom)
    envelope = world.service.dispatch(
        "data/read", {"dbHandle": world.handle, "collection": "c", "id": "r1"}, context=ADMIN
    )
    assert envelope["code"] == "internal_error"
    row = world.audit("data/read")[0]
    assert (row["handle"], row["code"]) == (world.handle, "internal_error")


def test_the_cli_import_and_export_go_through_the_dispatcher(tmp_path: Path) -> None:
    from io import StringIO

    from dbhandles.cli.jsonl import export_main, import_main

    (tmp_path / "in.jsonl").write_text('{"id": "a"}\n')
    with Service(home=tmp_path / "home") as service:
        out = StringIO()
        argv = [f"--input={tmp_path / 'in.jsonl'}", f"--output={tmp_path / 'o.sqlite'}",
                "--progress=none"]  # fmt: skip
        assert import_main(argv, service=service, stdout=out, stderr=StringIO()) == 0
        argv = [f"--input={tmp_path / 'o.sqlite'}", f"--output={tmp_path / 'o.jsonl'}"]
        assert export_main(argv, service=service, stdout=StringIO(), stderr=StringIO()) == 0
        entries = service.execute("data/audit", {}, context=ADMIN)["entries"]
        commands = {e["command"]: e["handle"] for e in entries}
        assert commands["data/import"] not in (None, "default")
        assert commands["data/export"] == commands["data/import"]
