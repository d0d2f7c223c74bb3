"""Issue 12 left-over 4: a ``data/open`` refused after its checks leaves nothing it made.

``data/open`` records the ownership it decided and creates the database's missing folders before
the handle exists; should the open be refused after that all the same (the handle store cannot
record the handle, a link appeared on the path), the ownership record and the folders go with the
file, each only while it is still the one this call made (``HandleStore.release_database``,
``pinned.remove_made``). See docs/security.md, section 8.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Context, Service
from dbhandles.errors import DbHandlesError, StorageError
from dbhandles.pinned import open_folder, remove_made
from dbhandles.security import paths
from dbhandles.settings import Settings
from dbhandles.store import file_database

ALICE = Context(actor="alice", session_id="s-alice", is_admin=False, trusted_local=False)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with Service(settings=Settings(home=tmp_path / "home")) as svc:
        svc.tokens.create("alice")
        yield svc


def failing_open(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry refuses to open after the checks (as when the handle store cannot record)."""

    def refuse(*args: Any, **kwargs: Any) -> str:
        raise StorageError("handle table: the handle could not be recorded")

    monkeypatch.setattr(service.registry, "open", refuse)


def open_as_alice(service: Service, adapter: str, path: str) -> DbHandlesError:
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/open", {"adapter": adapter, "config": {"path": path,
                                                                       "mode": "create"}},
                        context=ALICE)  # fmt: skip
    return caught.value


@pytest.mark.parametrize(("adapter", "name"), [("sqlite", "x.sqlite"), ("json", "x.json")])
def test_a_refused_open_leaves_no_record_folder_or_file(
    service: Service, monkeypatch: pytest.MonkeyPatch, adapter: str, name: str
) -> None:
    space = paths.actor_space(service.settings, "alice", create=True)
    failing_open(service, monkeypatch)
    assert open_as_alice(service, adapter, f"sub/deeper/{name}").code == "storage_error"
    real = os.path.realpath(space / "sub" / "deeper" / name)
    assert service.registry.store.get_database(file_database(real)) is None
    assert not (space / "sub").exists()
    assert os.listdir(space) == []


def test_a_refused_reopen_keeps_the_record_and_folders_it_did_not_make(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = service.execute("data/open", {"adapter": "sqlite", "config": {
        "path": "keep/x.sqlite", "mode": "create"}}, context=ALICE)  # fmt: skip
    service.execute("data/close", {"dbHandle": opened["dbHandle"]}, context=ALICE)
    space = paths.actor_space(service.settings, "alice")
    real = os.path.realpath(space / "keep" / "x.sqlite")
    before = service.registry.store.get_database(file_database(real))
    assert before is not None and before.owner == "alice"
    failing_open(service, monkeypatch)
    assert open_as_alice(service, "sqlite", "keep/x.sqlite").code == "storage_error"
    assert service.registry.store.get_database(file_database(real)) == before
    assert (space / "keep" / "x.sqlite").is_file()
    # A new folder beside one that stays: only the new one goes.
    assert open_as_alice(service, "sqlite", "keep/new/y.sqlite").code == "storage_error"
    assert sorted(os.listdir(space / "keep")) == ["x.sqlite"]


def test_only_the_folders_made_and_still_empty_are_removed(tmp_path: Path) -> None:
    made: list[tuple[str, int, int]] = []
    os.close(open_folder(str(tmp_path / "a" / "b" / "c"), None, make=True, made=made))
    assert [m[0] for m in made] == [str(tmp_path / p) for p in ("a", "a/b", "a/b/c")]
    (tmp_path / "a" / "b" / "kept.txt").write_text("someone's")
    remove_made(made)
    assert not (tmp_path / "a" / "b" / "c").exists()  # empty: removed
    assert (tmp_path / "a" / "b" / "kept.txt").exists()  # not empty: it and above stay
    # A folder swapped for another of the same name is not the one made: it stays.
    made = []
    os.close(open_folder(str(tmp_path / "s"), None, make=True, made=made))
    (tmp_path / "other").mkdir()  # made while ``s`` exists: another inode
    os.rmdir(tmp_path / "s")
    os.rename(tmp_path / "other", tmp_path / "s")
    remove_made(made)
    assert (tmp_path / "s").is_dir()
