"""Issue 12, round four: a change of a database's isolation reaches handles already open, and the
recorded mode is the one answered (docs/security.md, "Isolation").

``alice`` owns ``iso.sqlite`` and opens it ``soft``; ``bob`` opens it (read-only, as ``soft``
allows). Once alice re-opens it ``strict``, bob's own handle is refused through every door: a
command, a query cursor opened before, a running export's next page and a WebSocket's event filter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dbhandles import Context, Service
from dbhandles.errors import DbHandlesError
from dbhandles.events import Event
from dbhandles.importer.command import ExportHooks
from dbhandles.server.ws_guard import Guard
from dbhandles.store import file_database

ALICE = Context(actor="alice", session_id="s-alice", is_admin=False, trusted_local=False)
BOB = Context(actor="bob", session_id="s-bob", is_admin=False, trusted_local=False)


def open_iso(service: Service, context: Context, path: str, mode: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"adapter": "sqlite", "config": {"path": path, "mode": "create"}}
    if mode is not None:
        params["permissions"] = {"isolationMode": mode}
    return service.execute("data/open", params, context=context)


def stored_mode(service: Service, path: Path) -> str:
    record = service.access.store.get_database(file_database(str(path)))
    assert record is not None
    return record.isolation


@pytest.fixture
def iso(service: Service) -> tuple[Path, str, str]:
    """alice's soft database of 3 records and (alice's handle, bob's handle) on it."""
    alices = open_iso(service, ALICE, "iso.sqlite", "soft")["dbHandle"]
    for n in range(3):
        service.execute("data/create", {"dbHandle": alices, "collection": "c", "id": f"r{n}",
                                        "data": {"n": n}}, context=ALICE)  # fmt: skip
    path = service.settings.space_root() / "alice" / "iso.sqlite"
    bobs = service.execute("data/open", {"adapter": "sqlite", "config": {"path": str(path)}},
                           context=BOB)["dbHandle"]  # fmt: skip
    assert service.execute("data/count", {"dbHandle": bobs, "collection": "c"},
                           context=BOB)["total"] == 3  # fmt: skip
    return path, alices, bobs


def refused(service: Service, name: str, params: dict[str, Any], **options: Any) -> DbHandlesError:
    with pytest.raises(DbHandlesError) as caught:
        service.execute(name, params, context=BOB, **options)
    return caught.value


def test_a_stricter_isolation_refuses_the_other_actors_open_handle(
    service: Service, iso: tuple[Path, str, str]
) -> None:
    _, _, bobs = iso
    cursor = service.execute("data/query-open", {"dbHandle": bobs, "collection": "c", "pageSize": 1},
                             context=BOB)["queryHandle"]  # fmt: skip
    open_iso(service, ALICE, "iso.sqlite", "strict")
    for name, params in [
        ("data/list", {"dbHandle": bobs, "collection": "c"}),
        ("data/read", {"dbHandle": bobs, "collection": "c", "id": "r0"}),
        ("data/count", {"dbHandle": bobs, "collection": "c"}),
        ("data/export", {"dbHandle": bobs, "collection": "c", "output": "leak.jsonl"}),
        ("data/query-next", {"queryHandle": cursor}),
    ]:
        error = refused(service, name, params)
        assert error.code == "access_denied", (name, error)
        assert 'not shared with "bob" any more' in error.message, (name, error)
    assert not (service.settings.space_root() / "bob" / "leak.jsonl").exists()


def test_a_stricter_isolation_stops_a_running_export(
    service: Service, iso: tuple[Path, str, str]
) -> None:
    _, _, bobs = iso
    pages: list[int] = []

    def go_strict(stats: Any) -> None:
        pages.append(stats.exported)
        if len(pages) == 1:
            open_iso(service, ALICE, "iso.sqlite", "strict")

    error = refused(service, "data/export",
                    {"dbHandle": bobs, "collection": "c", "output": "o.jsonl", "pageSize": 1},
                    hooks=ExportHooks(on_page=go_strict))  # fmt: skip
    assert error.code == "access_denied" and "access changed" in error.message, error
    assert pages == [1]
    assert not (service.settings.space_root() / "bob" / "o.jsonl").exists()


def test_a_stricter_isolation_ends_a_websockets_cached_decision(
    service: Service, iso: tuple[Path, str, str]
) -> None:
    _, _, bobs = iso
    guard = Guard(service, BOB, None)
    event = Event("data:c:created", {"dbHandle": bobs, "collection": "c", "id": "r9"})
    assert guard.may_see(event)
    open_iso(service, ALICE, "iso.sqlite", "strict")
    assert not guard.may_see(event)


def test_a_grant_keeps_the_handle_through_a_stricter_isolation(
    service: Service, iso: tuple[Path, str, str]
) -> None:
    path, alices, _ = iso
    service.tokens.create("bob")  # a non-admin grants only to a token holder
    service.execute("data/grant", {"dbHandle": alices, "actor": "bob", "access": "read"},
                    context=ALICE)  # fmt: skip
    # (a grant closes the grantee's handles on the database: bob opens it again under the grant)
    bobs = service.execute("data/open", {"adapter": "sqlite", "config": {"path": str(path)}},
                           context=BOB)["dbHandle"]  # fmt: skip
    open_iso(service, ALICE, "iso.sqlite", "strict")
    assert service.execute("data/count", {"dbHandle": bobs, "collection": "c"},
                           context=BOB)["total"] == 3  # fmt: skip


def test_the_owner_may_loosen_and_the_answer_is_the_stored_mode(
    service: Service, iso: tuple[Path, str, str]
) -> None:
    path, _, bobs = iso
    opened = open_iso(service, ALICE, "iso.sqlite", "none")
    assert opened["permissions"]["isolationMode"] == "none"
    assert stored_mode(service, path) == "none"
    # none: nothing is shared any more, so bob's handle goes too.
    assert refused(service, "data/count", {"dbHandle": bobs, "collection": "c"}).code == (
        "access_denied"
    )
    open_iso(service, ALICE, "iso.sqlite", "strict")
    # A plain reopen keeps the recorded mode and answers it.
    plain = open_iso(service, ALICE, "iso.sqlite", None)
    assert plain["permissions"]["isolationMode"] == "strict" == stored_mode(service, path)
    preset = service.execute("data/open", {"adapter": "sqlite", "preset": "READ_ONLY",
                                           "config": {"path": "iso.sqlite"}}, context=ALICE)  # fmt: skip
    assert preset["permissions"]["isolationMode"] == "strict" == stored_mode(service, path)
