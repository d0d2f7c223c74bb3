"""Issue 12, round twenty-two: a name swapped between its check and its open.

A process that may rename files in alice's own data folder swapped ``races.sqlite`` (or
``race.json``) between her file and a link to bob's private database: the path was checked (real
path, no link) and then opened by its name again, so an open, or an existing handle's next
connection or read, served bob's records. Now the file opened is the file that was checked: a read
open looks the name up once without following a link (``O_PATH | O_NOFOLLOW``) and opens through
that look (``file_kinds.open_read``), and an SQLite connection must hold the file its name named
just before SQLite opened it (``file_kinds.sqlite_opened``); otherwise ``path_not_allowed``.

Every swap here happens at the point between the last check and the open (a hook on the name that
function looks up), so no test depends on timing. See docs/security.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service, dbfiles
from dbhandles.context import Context
from dbhandles.errors import DbHandlesError
from tests.security_helpers import ALICE, BOB, refused, space

pytestmark = pytest.mark.two_tenants

#: What bob keeps in his private database: no answer to alice may hold it.
BOBS_SECRET = "bob-private-row"


def _database(service: Service, context: Context, adapter: str, name: str, record: str) -> Path:
    """A database ``name`` of ``adapter`` in ``context``'s space holding one note ``record``
    (made through the service, then closed); its path."""
    opened = service.execute(
        "data/open",
        {"adapter": adapter, "config": {"path": name, "mode": "create"}},
        context=context,
    )
    handle = opened["dbHandle"]
    service.execute(
        "data/create",
        {"dbHandle": handle, "collection": "notes", "id": record, "data": {"text": record}},
        context=context,
    )
    service.execute("data/close", {"dbHandle": handle}, context=context)
    return space(service, context.actor) / name


def _swap(name: Path, other: Path, how: str) -> None:
    """Put a link to ``other`` where ``name`` is, in one rename (``how``: ``symlink``, ``hardlink``)."""
    aside = name.with_name(name.name + ".swap")
    if how == "symlink":
        os.symlink(other, aside)
    else:
        os.link(other, aside)
    os.replace(aside, name)


def _swap_at(
    monkeypatch: pytest.MonkeyPatch, function: str, name: Path, other: Path, how: str
) -> list[bool]:
    """Swap ``name`` for a link to ``other`` the first time ``dbfiles.<function>`` is called for
    it, after that function ran: the point between the last check by name and the open."""
    original: Callable[..., Any] = getattr(dbfiles, function)
    done: list[bool] = []

    def hooked(path: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(path, *args, **kwargs)
        if not done and os.fspath(path) == str(name):
            _swap(name, other, how)
            done.append(True)
        return result

    monkeypatch.setattr(dbfiles, function, hooked)
    return done


def _during(
    monkeypatch: pytest.MonkeyPatch, owner: object, function: str, name: Path, other: Path,
    how: str,
) -> list[bool]:  # fmt: skip
    """Make ``name`` a link to ``other`` only while ``owner.<function>`` runs for it the first
    time, then give it back its own file: the tester's swap back and forth, caught at the open
    itself, so every check by name before and after sees alice's file."""
    original: Callable[..., Any] = getattr(owner, function)
    done: list[bool] = []

    def hooked(target: Any, *args: Any, **kwargs: Any) -> Any:
        text = os.fspath(target) if isinstance(target, (str, os.PathLike)) else ""
        if done or text not in (str(name), f"file:{name}?mode=ro", f"file:{name}?mode=rw"):
            return original(target, *args, **kwargs)
        done.append(True)
        kept = name.with_name(name.name + ".kept")
        os.link(name, kept)
        _swap(name, other, how)
        try:
            return original(target, *args, **kwargs)
        finally:
            os.replace(kept, name)

    monkeypatch.setattr(owner, function, hooked)
    return done


def _no_secret(value: object) -> None:
    assert BOBS_SECRET not in repr(value)


def _sqlite_pair(service: Service) -> tuple[Path, Path]:
    """``(alice's races.sqlite, bob's bobs.sqlite holding BOBS_SECRET)``, made by :func:`_database`."""
    races = _database(service, ALICE, "sqlite", "races.sqlite", "alice-row")
    return races, _database(service, BOB, "sqlite", "bobs.sqlite", BOBS_SECRET)


def _refused_for_the_swap(error: DbHandlesError, done: list[bool]) -> None:
    """Fails unless the swap hook ran (``done``, from :func:`_during` or :func:`_swap_at`) and
    ``error`` is ``path_not_allowed`` without bob's secret."""
    assert done, "the swap point was never reached"
    assert error.code == "path_not_allowed", error
    _no_secret(error.message)


LINKS = ["symlink", "hardlink"]
SQLITE_MODES = ["readonly", "readwrite"]


# -- SQLite: the connection holds the file its name named --------------------------------------


@pytest.mark.parametrize("how", LINKS)
@pytest.mark.parametrize("mode", SQLITE_MODES)
def test_an_sqlite_open_refuses_a_link_swapped_in_while_sqlite_opens(
    service: Service, monkeypatch: pytest.MonkeyPatch, how: str, mode: str
) -> None:
    races, bobs = _sqlite_pair(service)
    done = _during(monkeypatch, dbfiles.sqlite3, "connect", races, bobs, how)
    error = refused(
        service,
        "data/open",
        {"adapter": "sqlite", "config": {"path": "races.sqlite", "mode": mode}},
    )
    _refused_for_the_swap(error, done)
    assert "races.sqlite" not in repr(service.registry.list_handles())


@pytest.mark.parametrize("how", LINKS)
def test_an_existing_sqlite_handle_refuses_a_link_swapped_in_before_it_reconnects(
    service: Service, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    races, bobs = _sqlite_pair(service)
    handle = service.execute(
        "data/open",
        {"adapter": "sqlite", "config": {"path": "races.sqlite", "mode": "readonly"}},
        context=ALICE,
    )["dbHandle"]
    listed = service.execute(
        "data/list", {"dbHandle": handle, "collection": "notes"}, context=ALICE
    )
    assert "alice-row" in repr(listed)
    with service.registry.lease(handle) as (_, adapter):
        adapter.release()  # the idle release: the next command connects again, by the name
    done = _during(monkeypatch, dbfiles.sqlite3, "connect", races, bobs, how)
    error = refused(service, "data/list", {"dbHandle": handle, "collection": "notes"})
    _refused_for_the_swap(error, done)


@pytest.mark.parametrize("how", LINKS)
def test_an_sqlite_connect_refuses_a_link_already_in_place(
    service: Service, tmp_path: Path, how: str
) -> None:
    """Below the adapter's checks: ``connect_sqlite`` itself refuses a name that is a link, or
    another actor's file by a second name, before SQLite opens it."""
    races, bobs = _sqlite_pair(service)
    _swap(races, bobs, how)
    with pytest.raises(dbfiles.PathNotAllowed):
        dbfiles.connect_sqlite(str(races), "ro").close()


def test_an_sqlite_connect_by_its_own_name_still_opens(service: Service) -> None:
    races = _database(service, ALICE, "sqlite", "races.sqlite", "alice-row")
    conn = dbfiles.connect_sqlite(str(races), "ro")
    try:
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
    finally:
        conn.close()


@pytest.mark.parametrize("how", LINKS)
def test_an_export_from_a_database_file_refuses_a_link_swapped_in(
    service: Service, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    races, bobs = _sqlite_pair(service)
    done = _during(monkeypatch, dbfiles.sqlite3, "connect", races, bobs, how)
    error = refused(
        service,
        "data/export",
        {"input": "races.sqlite", "collection": "notes", "output": "out.jsonl"},
    )
    _refused_for_the_swap(error, done)
    out = space(service, "alice") / "out.jsonl"
    assert not out.exists() or BOBS_SECRET not in out.read_text()


# -- JSON adapter and every plain read: opened through the name's one look -------------------


@pytest.mark.parametrize("swapped", ["after-check", "at-open"])
@pytest.mark.parametrize("how", LINKS)
def test_a_json_open_refuses_a_link_swapped_in_after_the_check(
    service: Service, monkeypatch: pytest.MonkeyPatch, how: str, swapped: str
) -> None:
    race = _database(service, ALICE, "json", "race.json", "alice-row")
    bobj = _database(service, BOB, "json", "bobj.json", BOBS_SECRET)
    if swapped == "at-open":
        done = _during(monkeypatch, os, "open", race, bobj, how)
    else:
        done = _swap_at(monkeypatch, "check_plain", race, bobj, how)
    params = {"adapter": "json", "config": {"path": "race.json", "mode": "readonly"}}
    if (how, swapped) == ("hardlink", "at-open"):
        # The look found bob's file, and the name led back to alice's by the time it was
        # checked: looked up again, alice's own file is what opens.
        handle = service.execute("data/open", params, context=ALICE)["dbHandle"]
        listed = service.execute(
            "data/list", {"dbHandle": handle, "collection": "notes"}, context=ALICE
        )
        assert done and "alice-row" in repr(listed)
        _no_secret(listed)
        return
    error = refused(service, "data/open", params)
    _refused_for_the_swap(error, done)


@pytest.mark.parametrize("swapped", ["between", "at-open", "before"])
@pytest.mark.parametrize("how", LINKS)
def test_an_existing_json_handle_refuses_a_link_swapped_in_before_it_reads_again(
    service: Service, monkeypatch: pytest.MonkeyPatch, how: str, swapped: str
) -> None:
    race = _database(service, ALICE, "json", "race.json", "alice-row")
    bobj = _database(service, BOB, "json", "bobj.json", BOBS_SECRET)
    handle = service.execute(
        "data/open", {"adapter": "json", "config": {"path": "race.json"}}, context=ALICE
    )["dbHandle"]
    listed = service.execute(
        "data/list", {"dbHandle": handle, "collection": "notes"}, context=ALICE
    )
    assert "alice-row" in repr(listed)
    if swapped == "between":
        # The handle reads its file again once it changed (``_refresh``): a touch, then the
        # swap between the check by name and the open.
        later = race.stat().st_mtime_ns + 10**9
        os.utime(race, ns=(later, later))
        done = _swap_at(monkeypatch, "check_plain", race, bobj, how)
    elif swapped == "at-open":  # a link only while the file is opened
        later = race.stat().st_mtime_ns + 10**9
        os.utime(race, ns=(later, later))
        done = _during(monkeypatch, os, "open", race, bobj, how)
    else:
        _swap(race, bobj, how)  # the link is there when the handle looks
        done = [True]
    if (how, swapped) == ("hardlink", "at-open"):  # looked up again: alice's own file
        listed = service.execute(
            "data/list", {"dbHandle": handle, "collection": "notes"}, context=ALICE
        )
        assert done and "alice-row" in repr(listed)
        _no_secret(listed)
        return
    error = refused(service, "data/list", {"dbHandle": handle, "collection": "notes"})
    _refused_for_the_swap(error, done)
    # Writes held before and hold now: bob's file is as bob left it.
    assert BOBS_SECRET in bobj.read_text()


def test_open_plain_reads_through_the_look_not_the_name_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lowest door: a data file swapped for a symbolic link after ``check_plain`` passed is
    refused, for every caller (here the local user, outside any call)."""
    mine, theirs = tmp_path / "mine.jsonl", tmp_path / "theirs.jsonl"
    mine.write_text('{"id": "1"}\n')
    theirs.write_text(f'{{"id": "{BOBS_SECRET}"}}\n')
    done = _swap_at(monkeypatch, "check_plain", mine, theirs, "symlink")
    with pytest.raises(dbfiles.PathNotAllowed) as caught:
        dbfiles.open_plain(mine, "rb", "input").close()
    assert done and "changed while it was being opened" in caught.value.message


def test_open_plain_still_reads_a_plain_file(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text('{"id": "1"}\n')
    with dbfiles.open_plain(data, "rb", "input") as file:
        assert file.read() == b'{"id": "1"}\n'
