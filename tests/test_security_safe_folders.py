"""Issue 12: a remote non-admin actor's SQLite database is opened only where no other OS user can
change its path (``security/safe_folders.py``).

SQLite opens (and on its last close removes) a database's ``-wal``/``-shm``/``-journal`` by name,
after every check; whoever may rename a folder on the way can point those at a file of the same
name elsewhere (the CI of this round once found ``db24.sqlite-shm`` in the home). As OpenSSH's
``StrictModes``: every folder from ``/`` down is owned by root or the service's user, none writable
by group or others but for a sticky one above the database's own folder.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.adapters import jsonfile, sqlite
from dbhandles.context import Context
from dbhandles.security.safe_folders import changeable_folder
from tests.security_helpers import ALICE, BOB, ROOT, refused, space, two_tenants

LOCAL = Context(actor="me", session_id="s-me", is_admin=True, trusted_local=True)
#: An OS user that is neither root nor the service's (``nobody`` on Debian).
OTHER_UID = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with two_tenants(tmp_path, read_roots=[str(tmp_path / "sets")]) as svc:
        yield svc


def _folder(base: Path, name: str, mode: int, uid: int | None = None) -> Path:
    folder = base / name
    folder.mkdir(parents=True)
    os.chmod(folder, mode)
    if uid is not None:
        os.chown(folder, uid, -1)
    return folder


def _open(service: Service, path: str, context: Context = ALICE, **config: object) -> str:
    opened = service.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": path, **config}}, context=context
    )
    return str(opened["dbHandle"])


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777, 0o722])
def test_a_folder_others_can_write_refuses_a_tenants_database(service: Service, mode: int) -> None:
    _folder(space(service, "alice"), "open", mode)
    for config in ({"mode": "create"}, {}):
        error = refused(service, "data/open", {"adapter": "sqlite",
                                               "config": {"path": "open/a.sqlite", **config}})  # fmt: skip
        assert error.code == "path_not_allowed", error.message
        assert "another OS user" in error.message and error.field == "config.path"
        assert str(service.settings.home) not in error.message
    assert not (space(service, "alice") / "open" / "a.sqlite").exists()


def test_a_sticky_folder_above_is_safe_but_not_as_the_databases_own(service: Service) -> None:
    shared = _folder(space(service, "alice"), "shared", 0o1777)
    _folder(shared, "mine", 0o700)
    handle = _open(service, "shared/mine/a.sqlite", mode="create")
    service.execute("data/create", {"dbHandle": handle, "collection": "c", "data": {"x": 1}},
                    context=ALICE)  # fmt: skip
    assert refused(service, "data/open", {"adapter": "sqlite", "config": {
        "path": "shared/b.sqlite", "mode": "create"}}).code == "path_not_allowed"  # fmt: skip


@as_root
def test_a_folder_of_another_os_user_refuses_it(service: Service, tmp_path: Path) -> None:
    _folder(space(service, "alice"), "theirs", 0o755, OTHER_UID)
    assert refused(service, "data/open", {"adapter": "sqlite", "config": {
        "path": "theirs/a.sqlite", "mode": "create"}}).code == "path_not_allowed"  # fmt: skip
    # A read root's folder owned by another user: a read-only open is refused the same.
    sets = _folder(tmp_path, "sets", 0o755)
    theirs = _folder(sets, "by-nobody", 0o755, OTHER_UID)
    _open(service, str(tmp_path / "made.sqlite"), LOCAL, mode="create")
    os.replace(tmp_path / "made.sqlite", theirs / "t.sqlite")
    error = refused(service, "data/open", {"adapter": "sqlite", "config": {
        "path": str(theirs / "t.sqlite"), "mode": "readonly"}})  # fmt: skip
    assert error.code == "path_not_allowed" and "another OS user" in error.message
    _open(service, str(sets / "t2.sqlite"), LOCAL, mode="create")
    _open(service, str(sets / "t2.sqlite"), mode="readonly")  # the root's own folder: served


@pytest.mark.parametrize("context", [ROOT, LOCAL], ids=["admin", "local"])
def test_administrators_and_the_local_user_keep_opening_there(
    service: Service, tmp_path: Path, context: Context
) -> None:
    folder = _folder(tmp_path, "open", 0o777)
    _open(service, str(folder / "a.sqlite"), context, mode="create")


def test_the_json_adapter_pins_its_folders_and_is_not_refused(service: Service) -> None:
    _folder(space(service, "alice"), "open", 0o777)
    service.execute("data/open", {"adapter": "json", "config": {"path": "open/a.json",
                                                                "mode": "create"}}, context=ALICE)  # fmt: skip


def test_a_path_nobody_shared_is_answered_as_before(service: Service, tmp_path: Path) -> None:
    """The rule runs after the access decision: it tells nothing of folders outside the places."""
    folder = _folder(tmp_path, "elsewhere", 0o777)
    _open(service, str(folder / "b.sqlite"), LOCAL, mode="create")
    for path in (folder / "b.sqlite", folder / "missing.sqlite"):
        error = refused(service, "data/open", {"adapter": "sqlite", "config": {"path": str(path)}},
                        BOB)  # fmt: skip
        assert "another OS user" not in error.message and error.code == "path_not_allowed"


def test_changeable_folder_walks_from_the_root(tmp_path: Path) -> None:
    safe = _folder(tmp_path, "a/b", 0o700)
    assert changeable_folder(safe / "x.sqlite") is None
    open_ = _folder(tmp_path, "a/w", 0o757)
    _folder(open_, "deep", 0o700)
    assert changeable_folder(open_ / "deep" / "x.sqlite") == (open_, False)
    # Missing folders are the service's to make (pinned, private): nothing to refuse.
    assert changeable_folder(tmp_path / "gone" / "deeper" / "x.sqlite") is None
    # A name on the way that is a link now: the resolved path changed since (a race).
    os.symlink(safe, tmp_path / "link")
    assert changeable_folder(tmp_path / "link" / "x.sqlite") == (tmp_path / "link", True)


def test_a_stored_handle_is_held_to_the_rule_at_every_reopen(tmp_path: Path) -> None:
    """A folder made changeable after the open: the next connection (a restart here; an idle
    release or a job's child process alike) is refused, the handle stays (restore, or close)."""
    with two_tenants(tmp_path) as first:
        sub = _folder(space(first, "alice"), "sub", 0o700)
        handle = _open(first, "sub/a.sqlite", mode="create")
        first.execute("data/create", {"dbHandle": handle, "collection": "c", "data": {"x": 1}},
                      context=ALICE)  # fmt: skip
    os.chmod(sub, 0o777)
    with Service(settings=first.settings) as again:
        error = refused(again, "data/list", {"dbHandle": handle, "collection": "c"})
        assert error.code == "path_not_allowed" and error.field == "dbHandle"
        assert "another OS user" in error.message
        os.chmod(sub, 0o700)
        listed = again.execute("data/list", {"dbHandle": handle, "collection": "c"}, context=ALICE)
        assert [r["x"] for r in listed["items"]] == [1]


def test_a_database_named_by_path_reusing_a_handle_is_decided_as_an_open(service: Service) -> None:
    sub = _folder(space(service, "alice"), "sub", 0o700)
    _open(service, "sub/m.sqlite", mode="create")
    (space(service, "alice") / "in.jsonl").write_bytes(b'{"a": 1}\n')
    os.chmod(sub, 0o777)
    error = refused(service, "data/import", {"input": "in.jsonl", "output": "sub/m.sqlite",
                                             "collection": "q"})  # fmt: skip
    assert error.code == "path_not_allowed" and "another OS user" in error.message


# -- a folder made by another OS user between the check and ensure_parent (review of issue 12) --


@pytest.mark.parametrize(
    ("mode", "uid"),
    [
        (0o777, None),  # the database's own folder, writable by everyone
        pytest.param(0o755, OTHER_UID, marks=as_root),  # another OS user's folder
    ],
    ids=["writable", "another-user"],
)
def test_a_folder_made_by_someone_else_after_the_check_refuses_the_open(
    service: Service, monkeypatch: pytest.MonkeyPatch, mode: int, uid: int | None
) -> None:
    """The check before the open stops at the first missing folder; another OS user makes it
    (inside a sticky shared folder) before the service does: the open is checked again once every
    folder exists, refused, and nothing is created in that folder."""
    from dbhandles.security import paths

    shared = _folder(space(service, "alice"), "shared", 0o1777)
    original = paths.ensure_parent

    def made_first(*args: Any, **kwargs: Any) -> Any:
        _folder(shared, "new", mode, uid)  # the other user's mkdir wins the race
        return original(*args, **kwargs)

    monkeypatch.setattr(paths, "ensure_parent", made_first)
    error = refused(service, "data/open", {"adapter": "sqlite", "config": {
        "path": "shared/new/a.sqlite", "mode": "create"}})  # fmt: skip
    assert error.code == "path_not_allowed" and "another OS user" in error.message
    assert os.listdir(shared / "new") == []  # no database, no side file in their folder


def test_a_folder_the_service_makes_itself_in_a_sticky_folder_is_served(service: Service) -> None:
    _folder(space(service, "alice"), "shared", 0o1777)
    _open(service, "shared/mine/a.sqlite", mode="create")
    assert (space(service, "alice") / "shared" / "mine" / "a.sqlite").is_file()


# -- the rule follows the adapter's feature flag, not its name --------------------------------------


def test_the_rule_follows_the_side_files_by_name_flag(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Features.side_files_by_name`` decides at all three places (an open, the reuse of a
    handle named by path, a stored handle's reopen): with it off, a changeable folder is served."""
    assert sqlite.SqliteAdapter.features.side_files_by_name
    assert not jsonfile.JsonFileAdapter.features.side_files_by_name
    features = dataclasses.replace(sqlite.SqliteAdapter.features, side_files_by_name=False)
    monkeypatch.setattr(sqlite.SqliteAdapter, "features", features)
    sub = _folder(space(service, "alice"), "sub", 0o777)
    handle = _open(service, "sub/m.sqlite", mode="create")  # data/open (security/policy.py)
    (space(service, "alice") / "in.jsonl").write_bytes(b'{"a": 1}\n')
    service.execute(
        "data/import",
        {"input": "in.jsonl", "output": "sub/m.sqlite", "collection": "q"},
        context=ALICE,
    )  # fmt: skip  (reuse)
    assert sub.is_dir()
    with Service(settings=service.settings) as again:  # a stored handle's reopen (leases.py)
        listed = again.execute("data/list", {"dbHandle": handle, "collection": "q"}, context=ALICE)
        assert [r["a"] for r in listed["items"]] == [1]
