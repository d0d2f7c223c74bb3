"""Phase 2 security at the library's choke point: permissions, isolation, row filters, audit, paths."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from dbhandles import (
    COMMANDS,
    Context,
    Forbidden,
    InvalidParams,
    PathNotAllowed,
    PermissionDenied,
    QuotaExceeded,
    Service,
    Settings,
)
from dbhandles.security.policy import operations_of

ALICE = Context(actor="alice", session_id="s-alice", is_admin=False, trusted_local=False)
BOB = Context(actor="bob", session_id="s-bob", is_admin=False, trusted_local=False)
ADMIN = Context(actor="root", session_id="s-root", is_admin=True, trusted_local=False)

#: One valid call per command (given a handle ``h`` whose collection ``c`` holds record ``r``).
SAMPLE_PARAMS: dict[str, dict[str, Any]] = {
    "data/create": {"collection": "c", "data": {"owner": "alice"}},
    "data/read": {"collection": "c", "id": "r"},
    "data/list": {"collection": "c"},
    "data/count": {"collection": "c", "groupBy": "owner"},
    "data/update": {"collection": "c", "id": "r", "data": {"x": 1}},
    "data/delete": {"collection": "c", "id": "r"},
    "data/batch": {"operations": [{"op": "create", "collection": "c", "data": {"owner": "alice"}}]},
    "data/query-open": {"collection": "c"},
    "data/schema": {"collection": "c"},
    "data/truncate": {"collection": "c"},
    "data/clear": {},
    "data/vacuum": {},
    "data/grant": {"actor": "bob"},
    "data/revoke": {"actor": "bob"},
}
PERMISSION_FLAGS = ("read", "write", "delete", "schema")


def space(service: Service, actor: str) -> Path:
    """Where a remote non-admin actor's relative names resolve: ``<data root>/<actor>``."""
    return service.settings.space_root() / actor


def open_db(
    service: Service, context: Context, tmp_path: Path, name: str = "db.sqlite", **extra: Any
) -> str:
    """Open (creating) ``name``: for a non-admin actor a name in its own data space, for an
    administrator a file in the test's folder."""
    path = name if not context.is_admin else str(tmp_path / name)
    config = {"path": path, "mode": "create"}
    return str(
        service.execute(
            "data/open", {"adapter": "sqlite", "config": config, **extra}, context=context
        )["dbHandle"]
    )


def seed(service: Service, handle: str) -> None:
    """Put record ``r`` in collection ``c`` of the handle's database, through an unrestricted handle."""
    path = service.registry.get_db_path(handle)
    admin = service.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": path}}, context=ADMIN
    )["dbHandle"]
    service.execute(
        "data/create",
        {"dbHandle": admin, "collection": "c", "id": "r", "data": {"owner": "alice"}},
        context=ADMIN,
    )


def test_every_command_declares_its_operation() -> None:
    for command in COMMANDS.values():
        assert command.operation in ("read", "write", "delete", "schema", "admin"), command.name
    # Every command that works on a handle has a sample call in the matrix below, so none can skip it.
    assert {c.name for c in COMMANDS.values() if c.uses_handle} - {
        "data/query-next",
        "data/query-close",
        "data/import",
        "data/export",
    } <= set(SAMPLE_PARAMS)


@pytest.mark.parametrize("flag", PERMISSION_FLAGS)
@pytest.mark.parametrize("name", sorted(SAMPLE_PARAMS))
def test_permission_matrix(service: Service, tmp_path: Path, name: str, flag: str) -> None:
    """Each command against each permission switched off: refused exactly when it needs that permission."""
    handle = open_db(service, ALICE, tmp_path, permissions={flag: False})
    seed(service, handle)
    if name == "data/grant":  # a non-admin grants only to a token holder
        service.tokens.create("bob")
    command = COMMANDS[name]
    params = {"dbHandle": handle, **SAMPLE_PARAMS[name]}
    needed = operations_of(command, command.params.model_validate(params)) & set(PERMISSION_FLAGS)
    envelope = service.dispatch(name, params, context=ALICE)
    if flag in needed:
        assert envelope["code"] == "permission_denied", envelope
        assert f"does not have {flag} access" in envelope["error"]
    else:
        assert envelope["success"] is True, envelope


def test_read_only_preset_refuses_every_write_door(service: Service, tmp_path: Path) -> None:
    handle = open_db(service, ALICE, tmp_path, preset="READ_ONLY")
    seed(service, handle)
    for name in (
        "data/create",
        "data/update",
        "data/delete",
        "data/truncate",
        "data/clear",
        "data/batch",
    ):
        envelope = service.dispatch(
            name, {"dbHandle": handle, **SAMPLE_PARAMS[name]}, context=ALICE
        )
        assert envelope["code"] == "permission_denied", name
    assert service.execute(
        "data/read", {"dbHandle": handle, "collection": "c", "id": "r"}, context=ALICE
    )["found"]


def test_collections_allowed_and_denied(service: Service, tmp_path: Path) -> None:
    handle = open_db(service, ALICE, tmp_path, preset="TRAINING_JOB")
    service.execute(
        "data/create", {"dbHandle": handle, "collection": "checkpoints", "data": {}}, context=ALICE
    )
    with pytest.raises(PermissionDenied, match="not in this handle's allowed list"):
        service.execute(
            "data/create", {"dbHandle": handle, "collection": "users", "data": {}}, context=ALICE
        )
    with pytest.raises(PermissionDenied, match="delete"):
        service.execute(
            "data/delete",
            {"dbHandle": handle, "collection": "checkpoints", "id": "x"},
            context=ALICE,
        )
    denied = open_db(
        service, ALICE, tmp_path, "d.sqlite", permissions={"deniedCollections": ["secrets"]}
    )
    with pytest.raises(PermissionDenied, match="denied"):
        service.execute("data/list", {"dbHandle": denied, "collection": "Secrets"}, context=ALICE)
    with pytest.raises(PermissionDenied):
        service.execute(
            "data/batch",
            {
                "dbHandle": denied,
                "operations": [{"op": "create", "collection": "secrets", "data": {}}],
            },
            context=ALICE,
        )


def test_unknown_preset_and_bad_permissions(service: Service, tmp_path: Path) -> None:
    with pytest.raises(InvalidParams, match="preset"):
        open_db(service, ALICE, tmp_path, preset="SUPERUSER")
    with pytest.raises(InvalidParams, match="permissions"):
        open_db(service, ALICE, tmp_path, permissions={"read": "maybe"})
    with pytest.raises(InvalidParams, match="rowFilter"):
        open_db(service, ALICE, tmp_path, permissions={"rowFilter": {"x": {"$bogus": 1}}})


def test_row_filter_hides_and_protects_rows(service: Service, tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    admin = service.execute(
        "data/open",
        {"adapter": "sqlite", "config": {"path": str(path), "mode": "create"}},
        context=ADMIN,
    )["dbHandle"]
    for who in ("alice", "bob"):
        for i in range(3):
            service.execute(
                "data/create",
                {
                    "dbHandle": admin,
                    "collection": "notes",
                    "id": f"{who}-{i}",
                    "data": {"ownerId": who},
                },
                context=ADMIN,
            )
    # Alice's rights on the administrator's database are a grant: her rows only.
    service.execute(
        "data/grant",
        {"dbHandle": admin, "actor": "alice", "access": "full",
         "permissions": {"rowFilter": {"ownerId": "alice"}}},
        context=ADMIN,
    )  # fmt: skip
    mine = service.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": str(path)}}, context=ALICE
    )["dbHandle"]
    listed = service.execute("data/list", {"dbHandle": mine, "collection": "notes"}, context=ALICE)
    assert sorted(i["id"] for i in listed["items"]) == ["alice-0", "alice-1", "alice-2"]
    assert listed["count"] == 3
    assert (
        service.execute(
            "data/read", {"dbHandle": mine, "collection": "notes", "id": "bob-0"}, context=ALICE
        )["found"]
        is False
    )
    assert (
        service.execute(
            "data/delete", {"dbHandle": mine, "collection": "notes", "id": "bob-0"}, context=ALICE
        )["found"]
        is False
    )
    with pytest.raises(Exception, match="no record"):
        service.execute(
            "data/update",
            {"dbHandle": mine, "collection": "notes", "id": "bob-0", "data": {"x": 1}},
            context=ALICE,
        )
    with pytest.raises(PermissionDenied, match="row filter"):
        service.execute(
            "data/update",
            {"dbHandle": mine, "collection": "notes", "id": "alice-0", "data": {"ownerId": "bob"}},
            context=ALICE,
        )
    with pytest.raises(PermissionDenied, match="row filter"):
        service.execute(
            "data/create",
            {"dbHandle": mine, "collection": "notes", "data": {"ownerId": "bob"}},
            context=ALICE,
        )
    with pytest.raises(PermissionDenied):
        service.execute("data/truncate", {"dbHandle": mine, "collection": "notes"}, context=ALICE)
    cursor = service.execute(
        "data/query-open", {"dbHandle": mine, "collection": "notes"}, context=ALICE
    )
    assert cursor["totalCount"] == 3
    page = service.execute("data/query-next", {"queryHandle": cursor["queryHandle"]}, context=ALICE)
    assert {i["ownerId"] for i in page["items"]} == {"alice"}
    assert (
        service.execute("data/list", {"dbHandle": admin, "collection": "notes"}, context=ADMIN)[
            "count"
        ]
        == 6
    )
    # Opening the database again never widens her rights (issue 12, kind 4).
    again = service.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": str(path)}, "preset": "GOD_MODE"},
        context=ALICE,
    )["dbHandle"]  # fmt: skip
    listed = service.execute("data/list", {"dbHandle": again, "collection": "notes"}, context=ALICE)
    assert listed["count"] == 3
    # ... nor does using the administrator's own handle.
    assert service.dispatch("data/list", {"dbHandle": admin, "collection": "notes"},
                            context=ALICE)["code"] == "access_denied"  # fmt: skip


def test_permissions_only_narrow(service: Service, tmp_path: Path) -> None:
    path = space(service, "alice") / "soft.sqlite"
    open_db(service, ALICE, tmp_path, "soft.sqlite", permissions={"isolationMode": "soft"})
    # Bob asks for everything; soft isolation caps him at read-only.
    bob = service.execute(
        "data/open",
        {"adapter": "sqlite", "config": {"path": str(path)}, "preset": "GOD_MODE"},
        context=BOB,
    )
    assert bob["permissions"]["write"] is False
    with pytest.raises(PermissionDenied):
        service.execute(
            "data/create", {"dbHandle": bob["dbHandle"], "collection": "c", "data": {}}, context=BOB
        )


def test_strict_isolation_refuses_another_actor(service: Service, tmp_path: Path) -> None:
    handle = open_db(service, ALICE, tmp_path, "alice.sqlite", preset="PERSONA_KNOWLEDGE")
    service.execute(
        "data/create",
        {"dbHandle": handle, "collection": "memories", "data": {"fact": "private"}},
        context=ALICE,
    )
    # Ownership is in the handle store, not in a file next to the database.
    path = space(service, "alice") / "alice.sqlite"
    record = service.registry.store.get_database(f"file:{path}")
    assert record is not None and (record.owner, record.isolation) == ("alice", "strict")
    assert not Path(f"{path}.owner").exists()
    # Opening it by path: the answer for any path outside his places (it names nobody).
    with pytest.raises(PathNotAllowed, match="data space") as refused:
        service.execute("data/open", {"adapter": "sqlite", "config": {"path": str(path)}},
                        context=BOB)  # fmt: skip
    assert "alice" not in refused.value.message
    # Bob cannot use Alice's handle either, nor see it listed.
    for name in ("data/list", "data/create", "data/close"):
        params = (
            {"dbHandle": handle, "collection": "memories", "data": {}}
            if name != "data/close"
            else {"dbHandle": handle}
        )
        if name == "data/list":
            params.pop("data")
        # Not shared with him: her handle is as unknown to him as a ghost (names nobody).
        refused = service.dispatch(name, params, context=BOB)
        assert refused["code"] == "handle_not_found" and "alice" not in refused["error"], name
    assert handle not in [
        h["handle"] for h in service.execute("data/list-handles", context=BOB)["handles"]
    ]
    # The ownership survives re-opening by path from a fresh service over the same home.
    with Service(settings=service.settings) as again, pytest.raises(PathNotAllowed):
        again.execute("data/open", {"adapter": "sqlite", "config": {"path": str(path)}},
                      context=BOB)  # fmt: skip
    # Admins are not isolated.
    assert service.execute("data/open", {"adapter": "sqlite", "config": {"path": str(path)}},
                           context=ADMIN)["success"]  # fmt: skip


def test_soft_isolation_lets_others_read_not_write(service: Service, tmp_path: Path) -> None:
    handle = open_db(service, ALICE, tmp_path, "team.sqlite", preset="COLLABORATIVE")
    service.execute(
        "data/create",
        {"dbHandle": handle, "collection": "notes", "id": "n", "data": {"t": 1}},
        context=ALICE,
    )
    assert service.execute(
        "data/read", {"dbHandle": handle, "collection": "notes", "id": "n"}, context=BOB
    )["found"]
    for name, params in (
        ("data/create", {"collection": "notes", "data": {}}),
        ("data/update", {"collection": "notes", "id": "n", "data": {"t": 2}}),
        ("data/delete", {"collection": "notes", "id": "n"}),
    ):
        assert (
            service.dispatch(name, {"dbHandle": handle, **params}, context=BOB)["code"]
            == "access_denied"
        )
    bobs = service.execute(
        "data/open",
        {"adapter": "sqlite", "config": {"path": str(space(service, "alice") / "team.sqlite")}},
        context=BOB,
    )["dbHandle"]
    assert (
        service.dispatch(
            "data/create", {"dbHandle": bobs, "collection": "notes", "data": {}}, context=BOB
        )["code"]
        == "permission_denied"
    )


def test_claiming_someone_else_as_owner_is_refused(service: Service, tmp_path: Path) -> None:
    with pytest.raises(PermissionDenied, match="owner"):
        open_db(service, BOB, tmp_path, permissions={"owner": "alice", "isolationMode": "strict"})


def test_paths_outside_the_roots_are_refused_for_remote_actors(tmp_path: Path) -> None:
    root = tmp_path / "allowed"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside)
    settings = Settings(home=tmp_path / "home", allowed_roots=(root,))
    with Service(settings=settings) as service:
        # A remote administrator: the allowed roots.
        ok = {"adapter": "sqlite", "config": {"path": str(root / "a.sqlite"), "mode": "create"}}
        assert service.execute("data/open", ok, context=ADMIN)["success"]
        # A non-admin actor: its own data space, whatever the roots say.
        mine = {"adapter": "sqlite", "config": {"path": "a.sqlite", "mode": "create"}}
        assert service.execute("data/open", mine, context=ALICE)["success"]
        (space(service, "alice") / "link").symlink_to(outside)
        for who, sneaky in (
            (ADMIN, root / ".." / "outside" / "x.sqlite"),
            (ADMIN, root / "link" / "x.sqlite"),
            (ADMIN, outside / "x.sqlite"),
            (ADMIN, Path("/etc/passwd")),
            (ALICE, root / "b.sqlite"),
            (ALICE, Path("../bob/x.sqlite")),
            (ALICE, Path("../../outside/x.sqlite")),
            (ALICE, Path("link/x.sqlite")),
            (ALICE, outside / "x.sqlite"),
            (ALICE, Path("/etc/passwd")),
        ):
            with pytest.raises(PathNotAllowed):
                service.execute(
                    "data/open",
                    {"adapter": "sqlite", "config": {"path": str(sneaky), "mode": "create"}},
                    context=who,
                )
            assert not (outside / "x.sqlite").exists()
            assert not (root / "b.sqlite").exists()
        # The local user (in-process) is not limited by the roots.
        local = {
            "adapter": "sqlite",
            "config": {"path": str(outside / "mine.sqlite"), "mode": "create"},
        }
        assert service.execute("data/open", local)["success"]


def test_handle_quota(tmp_path: Path) -> None:
    with Service(settings=Settings(home=tmp_path / "home", max_handles_per_actor=2)) as service:
        open_db(service, ALICE, tmp_path, "1.sqlite")
        open_db(service, ALICE, tmp_path, "2.sqlite")
        with pytest.raises(QuotaExceeded, match="2 open handles"):
            open_db(service, ALICE, tmp_path, "3.sqlite")
        open_db(service, BOB, tmp_path, "4.sqlite")


def test_size_quota_refuses_writes_past_it(tmp_path: Path) -> None:
    with Service(settings=Settings(home=tmp_path / "home", max_db_bytes=64 * 1024)) as service:
        handle = open_db(service, ALICE, tmp_path)
        refused = None
        for i in range(200):
            envelope = service.dispatch(
                "data/create",
                {"dbHandle": handle, "collection": "c", "data": {"pad": "x" * 2000, "i": i}},
                context=ALICE,
            )
            if not envelope["success"]:
                refused = envelope
                break
        assert refused is not None
        assert refused["code"] == "quota_exceeded"
        assert service.execute(
            "data/list", {"dbHandle": handle, "collection": "c", "limit": 1}, context=ALICE
        )["success"]


def test_audit_log_records_success_and_refusal(service: Service, tmp_path: Path) -> None:
    handle = open_db(service, ALICE, tmp_path, preset="READ_ONLY")
    service.dispatch(
        "data/create", {"dbHandle": handle, "collection": "c", "data": {}}, context=ALICE
    )
    service.execute("data/list", {"dbHandle": handle, "collection": "c"}, context=ALICE)
    entries = service.execute("data/audit", {"actor": "alice"}, context=ADMIN)["entries"]
    assert [(e["command"], e["success"], e["code"]) for e in entries] == [
        ("data/list", True, None),
        ("data/create", False, "permission_denied"),
        ("data/open", True, None),
    ]
    assert entries[0]["handle"] == handle and entries[0]["sessionId"] == "s-alice"
    assert entries[0]["collection"] == "c"
    recent = service.execute(
        "data/audit", {"since": "1 hour ago", "operation": "write"}, context=ADMIN
    )["entries"]
    assert [e["command"] for e in recent] == ["data/create"]
    assert (
        service.execute("data/audit", {"since": "2999-01-01T00:00:00Z"}, context=ADMIN)["entries"]
        == []
    )
    with pytest.raises(Forbidden):
        service.execute("data/audit", {}, context=ALICE)
    with pytest.raises(InvalidParams, match="since"):
        service.execute("data/audit", {"since": "yesterday-ish"}, context=ADMIN)


def test_audit_table_is_append_only(service: Service) -> None:
    import sqlite3

    service.execute("data/list", {"collection": "c"})
    service.audit.flush()
    db = sqlite3.connect(service.settings.default_path)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("DELETE FROM _dbh_audit")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("UPDATE _dbh_audit SET actor = 'nobody'")
    finally:
        db.close()


def test_cursors_belong_to_their_session(service: Service, tmp_path: Path) -> None:
    handle = open_db(service, ALICE, tmp_path, permissions={"isolationMode": "none"})
    seed(service, handle)
    cursor = service.execute(
        "data/query-open", {"dbHandle": handle, "collection": "c"}, context=ALICE
    )["queryHandle"]
    other_session = Context(
        actor="alice", session_id="s-alice-2", is_admin=False, trusted_local=False
    )
    assert (
        service.dispatch("data/query-next", {"queryHandle": cursor}, context=other_session)["code"]
        == "cursor_not_found"
    )
    assert (
        service.execute("data/query-close", {"queryHandle": cursor}, context=other_session)[
            "closed"
        ]
        is False
    )
    assert service.execute("data/query-next", {"queryHandle": cursor}, context=ALICE)["items"]
    assert service.end_session("s-alice") == 1
    assert (
        service.dispatch("data/query-next", {"queryHandle": cursor}, context=ALICE)["code"]
        == "cursor_not_found"
    )


def test_a_remote_actors_database_is_private_and_has_no_sidecar(
    service: Service, tmp_path: Path
) -> None:
    open_db(service, ALICE, tmp_path, "p.sqlite", preset="PERSONA_KNOWLEDGE")
    path = space(service, "alice") / "p.sqlite"
    assert os.stat(path).st_mode & 0o077 == 0
    assert os.stat(space(service, "alice")).st_mode & 0o077 == 0
    assert not Path(f"{path}.owner").exists()


def test_tokens_create_authenticate_expire_revoke(service: Service) -> None:
    from dbhandles import Unauthorized

    created = service.execute(
        "token/create", {"actor": "helper-ai", "expires": "30d"}, context=ADMIN
    )
    token = created["token"]
    assert token.startswith("dbh_") and created["expiresAt"]
    actor = service.tokens.authenticate(token)
    assert actor.name == "helper-ai" and actor.is_admin is False
    listed = service.execute("token/list", {}, context=ADMIN)["tokens"]
    assert [t["actor"] for t in listed] == ["helper-ai"]
    assert token not in str(listed)
    for bad in (None, "", "garbage", token[:-2] + "xx", "dbh_000000000000_" + "a" * 43):
        with pytest.raises(Unauthorized):
            service.tokens.authenticate(bad)
    service.execute("token/revoke", {"tokenId": created["tokenId"]}, context=ADMIN)
    with pytest.raises(Unauthorized):
        service.tokens.authenticate(token)
    with pytest.raises(Forbidden):
        service.execute("token/create", {"actor": "mallory", "admin": True}, context=ALICE)
    with pytest.raises(InvalidParams, match="duration"):
        service.execute("token/create", {"actor": "x", "expires": "forever"}, context=ADMIN)


def test_expired_token_is_refused(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    from dbhandles import Unauthorized
    from dbhandles.security import tokens as tokens_mod

    token, _ = service.tokens.create("temp", expires="1s")
    monkeypatch.setattr(tokens_mod, "iso_now", lambda: "2999-01-01T00:00:00.000Z")
    with pytest.raises(Unauthorized):
        service.tokens.authenticate(token)


def test_first_start_admin_token_file(service: Service) -> None:
    token = service.tokens.ensure_admin_token()
    assert token is not None
    assert service.tokens.ensure_admin_token() is None
    path = service.settings.home / "admin.token"
    assert path.read_text().strip() == token
    assert os.stat(path).st_mode & 0o077 == 0
    assert service.tokens.authenticate(token).is_admin is True


def test_a_token_revoked_by_another_process_stops_working(service: Service) -> None:
    import subprocess
    import sys

    from dbhandles import Unauthorized

    token, row = service.tokens.create("short-lived")
    assert service.tokens.authenticate(token).name == "short-lived"  # now cached
    home = service.settings.home
    script = f"from dbhandles import Service\nwith Service({str(home)!r}) as s: s.tokens.revoke({row.token_id!r})"
    subprocess.run([sys.executable, "-c", script], check=True)
    with pytest.raises(Unauthorized):
        service.tokens.authenticate(token)


def test_a_refused_audit_read_is_itself_audited(service: Service) -> None:
    assert service.dispatch("data/audit", {}, context=ALICE)["code"] == "forbidden"
    entries = service.execute("data/audit", {"actor": "alice"}, context=ADMIN)["entries"]
    assert [(e["command"], e["code"]) for e in entries] == [("data/audit", "forbidden")]


def test_sessionless_cursors_are_not_visible_to_sessions(service: Service, tmp_path: Path) -> None:
    handle = open_db(service, ADMIN, tmp_path)
    seed(service, handle)
    local = service.execute("data/query-open", {"dbHandle": handle, "collection": "c"})[
        "queryHandle"
    ]
    assert (
        service.dispatch("data/query-next", {"queryHandle": local}, context=ADMIN)["code"]
        == "cursor_not_found"
    )
    assert service.execute("data/query-next", {"queryHandle": local})["items"]


def test_session_end_closes_the_callers_cursors_only(service: Service, tmp_path: Path) -> None:
    handle = "default"  # shared by every actor
    service.execute("data/create", {"collection": "c", "id": "r", "data": {}})
    mine = service.execute(
        "data/query-open", {"dbHandle": handle, "collection": "c"}, context=ALICE
    )["queryHandle"]
    theirs = service.execute(
        "data/query-open", {"dbHandle": handle, "collection": "c"}, context=BOB
    )["queryHandle"]
    assert service.execute("session/end", {}, context=ALICE)["cursorsClosed"] == 1
    assert (
        service.dispatch("data/query-next", {"queryHandle": mine}, context=ALICE)["code"]
        == "cursor_not_found"
    )
    assert service.execute("data/query-next", {"queryHandle": theirs}, context=BOB)["success"]


def test_a_cursor_is_checked_against_its_own_handle(service: Service, tmp_path: Path) -> None:
    """Naming another handle (or none) in query-next cannot sidestep the cursor handle's isolation."""
    handle = open_db(service, ALICE, tmp_path, "iso.sqlite", preset="PERSONA_KNOWLEDGE")
    service.execute(
        "data/create", {"dbHandle": handle, "collection": "m", "data": {}}, context=ALICE
    )
    cursor = service.execute(
        "data/query-open", {"dbHandle": handle, "collection": "m"}, context=ALICE
    )["queryHandle"]
    # Same session id, different actor: the cursor's handle refuses bob.
    impostor = Context(actor="bob", session_id="s-alice", is_admin=False, trusted_local=False)
    assert (
        service.dispatch("data/query-next", {"queryHandle": cursor}, context=impostor)["code"]
        == "handle_not_found"
    )


def test_a_deleted_admin_token_file_is_recreated(service: Service) -> None:
    first = service.tokens.ensure_admin_token()
    assert first is not None
    (service.settings.home / "admin.token").unlink()
    second = service.tokens.ensure_admin_token()
    assert second is not None and second != first
    service.tokens.revoke(second)
    third = service.tokens.ensure_admin_token()
    assert third is not None and service.tokens.authenticate(third).is_admin


def test_revoke_never_echoes_its_input(service: Service) -> None:
    from dbhandles import NotFound

    with pytest.raises(NotFound) as info:
        service.tokens.revoke("dbh_secretlooking_value ")
    assert "secret" not in str(info.value)


def test_the_home_and_default_database_are_private(tmp_path: Path) -> None:
    with Service(settings=Settings(home=tmp_path / "private-home")) as svc:
        assert os.stat(svc.settings.home).st_mode & 0o077 == 0
        assert os.stat(svc.settings.default_path).st_mode & 0o077 == 0
