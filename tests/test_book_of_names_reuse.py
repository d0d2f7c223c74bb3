"""The book of names (``security/file_names.py``) and numbers the file system gives again.

SQLite deletes its side files (the ``-wal`` and ``-shm`` at the last close), and the file system
gives a deleted file's inode number to the next new file. A book record of a side file that its
name no longer leads to vouches for nothing: a plain file that got its number is a data file, which
an export may replace and whose planted partial file is answered ``file_exists``, not "is a
database file" (a clean-clone CI run met this by chance). A database file's own record holds
wherever the file went (``tests/test_security_round23.py`` renames databases and checks it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbhandles import Service
from tests.security_helpers import ALICE, refused, space, two_tenants


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with two_tenants(tmp_path) as svc:
        yield svc


def _as_if_reused(service: Service, file: Path, booked: Path) -> None:
    """Book ``file``'s identity under ``booked``, as a deleted file of that name with the same
    inode number left it (the book's own key: ``file.name:<dev>:<ino>``)."""
    info = os.lstat(file)
    service.access.store.set_meta(f"file.name:{info.st_dev}:{info.st_ino}", str(booked))


def _export_handle(service: Service) -> str:
    opened = service.execute("data/open", {"adapter": "memory", "config": {}}, context=ALICE)
    handle = str(opened["dbHandle"])
    service.execute("data/create", {"dbHandle": handle, "collection": "notes",
                    "data": {"a": 1}}, context=ALICE)  # fmt: skip
    return handle


@pytest.mark.parametrize("suffix", ["-wal", "-shm", "-journal"])
def test_a_gone_side_files_number_does_not_make_a_new_file_a_database(
    service: Service, suffix: str
) -> None:
    alice = space(service, "alice")
    handle = _export_handle(service)
    gone = alice / f"old.sqlite{suffix}"  # deleted by SQLite: nothing is there now
    plain = alice / "out.jsonl"
    plain.write_text("an earlier export\n")
    _as_if_reused(service, plain, gone)
    done = service.execute("data/export", {"dbHandle": handle, "collection": "notes",
                           "output": "out.jsonl", "overwrite": True}, context=ALICE)  # fmt: skip
    assert done["exported"] == 1
    partial = alice / ".again.jsonl.partial"
    partial.write_text("someone's half\n")
    _as_if_reused(service, partial, gone)
    error = refused(service, "data/export", {"dbHandle": handle, "collection": "notes",
                    "output": "again.jsonl"})  # fmt: skip
    assert error.code == "file_exists", error.message
    assert partial.read_text() == "someone's half\n"


def test_a_side_file_at_its_booked_name_is_still_a_database_file(service: Service) -> None:
    alice = space(service, "alice")
    handle = _export_handle(service)
    wal = alice / "kept.sqlite-wal"
    wal.write_bytes(b"\x37\x7f\x06\x82" + bytes(28))  # a WAL header's magic number
    other = alice / "other.jsonl"
    os.link(wal, other)  # a second name for a side file the book records by its own name
    _as_if_reused(service, wal, wal)
    error = refused(service, "data/export", {"dbHandle": handle, "collection": "notes",
                    "output": "other.jsonl", "overwrite": True})  # fmt: skip
    assert error.code == "path_not_allowed", error.message
    assert wal.read_bytes()[:4] == b"\x37\x7f\x06\x82"


def test_a_moved_database_files_record_still_holds(service: Service) -> None:
    alice = space(service, "alice")
    handle = _export_handle(service)
    moved = alice / "moved.jsonl"
    moved.write_text("{}\n")  # no adapter recognizes it by its content
    _as_if_reused(service, moved, alice / "was.json")
    error = refused(service, "data/export", {"dbHandle": handle, "collection": "notes",
                    "output": "moved.jsonl", "overwrite": True})  # fmt: skip
    assert (error.code, error.field) == ("path_not_allowed", "output"), error.message
    assert "is a database file" in error.message
    assert moved.read_text() == "{}\n"


def test_a_name_booked_again_drops_the_record_of_the_file_it_led_to_before(
    service: Service,
) -> None:
    """A JSON commit renames a new file over the old; a database is deleted and made again: the
    name leads to a new file, and the old file's number, free now, is nobody's database."""
    alice = space(service, "alice")
    name = alice / "notes.json"
    name.write_text("{}\n")
    old = os.lstat(name)
    service.access.names.record(str(name))
    fresh = alice / ".notes.json.tmp"
    fresh.write_text("{}\n")
    os.replace(fresh, name)
    service.access.names.record(str(name))
    store = service.access.store
    assert store.get_meta(f"file.name:{old.st_dev}:{old.st_ino}") is None
    new = os.lstat(name)
    assert store.get_meta(f"file.name:{new.st_dev}:{new.st_ino}") == str(name)
    assert not service.access.names.holds_database(old)
    # Another name's record stays.
    other = alice / "other.json"
    other.write_text("{}\n")
    service.access.names.record(str(other))
    assert service.access.names.holds_database(os.lstat(other))
    assert service.access.names.holds_database(new)
