"""Issue 12, round 9 findings 1, 2 and 4: a path checked, then swapped, never leads a write elsewhere.

A non-admin actor (``alice``) may write only in its own data space, and may swap a folder of it
for a symbolic link to the service's home between the check of a path and its use. Every file a
command creates, replaces, renames or removes on a path alice names (an export's output and its
partial file, an import's rejects file, a database ``data/open`` creates, the JSON adapter's file,
its temporary and lock files) is made in its folder opened without following links
(``dbhandles.pinned``), so:

1. the home never receives a file, whatever the timing: tested step by step (the swap made
   exactly between the check and the write) and against a swapping process, over many tries;
2. every failure of such a race is the refusal of a path that changed (``path_not_allowed``),
   never ``internal_error``;
4. a file swapped in behind a checked name is refused with the words of any path outside the
   actor's places, never with words about that file (its other names, its content).

See docs/security.md, section 8.
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Context, Service, Settings, pinned
from dbhandles.adapters.base import Adapter
from dbhandles.dbfiles import check_plain, create_empty
from dbhandles.errors import DbHandlesError, PathNotAllowed
from dbhandles.importer import rejects
from dbhandles.importer.export import run_export
from dbhandles.importer.rejects import RejectsFile
from dbhandles.pinned import Pinned
from dbhandles.security import paths
from dbhandles.store import file_database

ALICE = Context(actor="alice", session_id="s-alice", is_admin=False, trusted_local=False)
BOB = Context(actor="bob", session_id="s-bob", is_admin=False, trusted_local=False)
#: What a decoy in the home holds: a race that reached it would change it.
DECOY = b'{"url": "http://127.0.0.1:1", "pid": 1, "home": "decoy"}\n'


@pytest.fixture
def tenant(tmp_path: Path) -> Iterator[tuple[Service, Path, Path]]:
    """A service with a read root, alice's folder ``d`` (a real folder), and a decoy
    ``server.json`` in the home; (service, alice's space, the home)."""
    home = tmp_path / "home"
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    service = Service(settings=Settings(home=home, read_roots=(datasets,)))
    try:
        space = paths.actor_space(service.settings, "alice", create=True)
        (space / "d").mkdir()
        (home / "server.json").write_bytes(DECOY)
        yield service, space, home
    finally:
        service.close()


def home_names(home: Path) -> set[str]:
    """The names in the home that a data command could have made (not the service's own)."""
    return {n for n in os.listdir(home) if not n.startswith(("default.sqlite", "events.sqlite"))}


def swap_to_home(space: Path, home: Path) -> None:
    """alice's move: ``d`` becomes a link to the home (the real folder kept as ``d.real``)."""
    os.rename(space / "d", space / "d.real")
    os.symlink(home, space / "d")


def swap_back(space: Path) -> None:
    os.unlink(space / "d")
    os.rename(space / "d.real", space / "d")


def handle_with_a_record(service: Service) -> str:
    handle = service.execute("data/open", {"adapter": "sqlite", "config": {
        "path": "a.sqlite", "mode": "create"}}, context=ALICE)["dbHandle"]  # fmt: skip
    service.execute("data/create", {"dbHandle": handle, "collection": "sj", "id": "r1",
                                    "data": {"url": "http://alice.example"}}, context=ALICE)  # fmt: skip
    return str(handle)


# -- 1. step by step: the swap made exactly between the check and the write --------------------------


def checked(service: Service, given: str, field: str) -> paths.Resolved:
    """``given`` resolved (and its folders made) as alice, the check a command makes first."""
    found = paths.resolve(service.settings, ALICE, given, field, "output")
    paths.ensure_parent(found, field)
    return found


def test_an_export_whose_folder_became_a_link_after_the_check_writes_nothing_there(
    tenant: tuple[Service, Path, Path],
) -> None:
    service, space, home = tenant
    handle = handle_with_a_record(service)
    before = home_names(home)
    for name in ("server.json", "pwned.txt"):
        call = paths.begin_call()
        try:
            found = checked(service, f"d/{name}", "output")
            swap_to_home(space, home)
            try:
                with service.registry.lease(handle) as (_, adapter):
                    assert isinstance(adapter, Adapter)
                    with pytest.raises(PathNotAllowed, match="changed while it was checked"):
                        run_export(adapter, "sj", str(found.path), replace=True, mode=0o600)
            finally:
                swap_back(space)
        finally:
            paths.end_call(call)
    assert (home / "server.json").read_bytes() == DECOY
    assert home_names(home) == before  # no output, no .partial file


def test_a_rejects_file_whose_folder_became_a_link_after_the_check_is_refused(
    tenant: tuple[Service, Path, Path],
) -> None:
    service, space, home = tenant
    before = home_names(home)
    for mode in (None, 0o600):  # the local user's way (truncate) and a remote caller's (O_EXCL)
        call = paths.begin_call()
        try:
            found = checked(service, "d/rej.jsonl", "rejects")
            swap_to_home(space, home)
            try:
                with pytest.raises(PathNotAllowed, match="changed while it was checked"):
                    RejectsFile(found.path, mode)
            finally:
                swap_back(space)
        finally:
            paths.end_call(call)
    assert home_names(home) == before


def test_a_database_created_in_a_folder_that_became_a_link_is_refused(
    tenant: tuple[Service, Path, Path],
) -> None:
    service, space, home = tenant
    before = home_names(home)
    found = checked(service, "d/new.sqlite", "config.path")
    swap_to_home(space, home)
    try:
        with pytest.raises(PathNotAllowed, match="changed while it was checked"):
            create_empty(str(found.path), 0o600, pinned=True)
    finally:
        swap_back(space)
    assert home_names(home) == before


@pytest.mark.parametrize("adapter", ["sqlite", "json"])
def test_an_open_whose_folder_is_swapped_before_the_driver_opens_it_is_path_not_allowed(
    tenant: tuple[Service, Path, Path], monkeypatch: pytest.MonkeyPatch, adapter: str
) -> None:
    """The swap made between the file's creation and the adapter's open: whatever SQLite or the
    file system answers (``unable to open database file``, ``disk I/O error``, ``No such file or
    directory``), the answer is ``path_not_allowed``, and the home receives nothing."""
    service, space, home = tenant
    before = home_names(home)
    opening = service.registry.open

    def swapped_open(*args: Any, **kwargs: Any) -> str:
        os.rename(space / "d", space / "d.real")
        os.symlink(home, space / "d")
        return opening(*args, **kwargs)

    monkeypatch.setattr(service.registry, "open", swapped_open)
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/open", {"adapter": adapter, "config": {
            "path": "d/new/x.db", "mode": "create"}}, context=ALICE)  # fmt: skip
    os.unlink(space / "d")
    os.rename(space / "d.real", space / "d")
    assert caught.value.code == "path_not_allowed", caught.value
    assert "changed while it was checked" in caught.value.message
    assert home_names(home) == before
    # Its record is undone; its file and folder stay, since they were not where it made them
    # when it was refused (a swapped folder is never followed to remove anything).
    made = os.path.realpath(space / "d" / "new" / "x.db")
    assert service.registry.store.get_database(file_database(made)) is None


def test_ensure_parent_makes_no_folder_where_a_swapped_link_leads(
    tenant: tuple[Service, Path, Path],
) -> None:
    service, space, home = tenant
    before = home_names(home)
    found = paths.resolve(service.settings, ALICE, "d/sub/deeper/out.jsonl", "output", "output")
    swap_to_home(space, home)
    try:
        with pytest.raises(PathNotAllowed, match="changed while it was checked"):
            paths.ensure_parent(found, "output")
    finally:
        swap_back(space)
    assert home_names(home) == before  # no sub/ made in the home
    paths.ensure_parent(found, "output")  # unswapped: made, private
    assert (space / "d" / "sub" / "deeper").is_dir()
    assert (space / "d" / "sub").stat().st_mode & 0o777 == 0o700


def test_a_json_database_whose_folder_became_a_link_after_the_open_writes_nothing_there(
    tenant: tuple[Service, Path, Path],
) -> None:
    service, space, home = tenant
    handle = service.execute("data/open", {"adapter": "json", "config": {
        "path": "d/j.json", "mode": "create"}}, context=ALICE)["dbHandle"]  # fmt: skip
    service.execute("data/create", {"dbHandle": handle, "collection": "c", "id": "a",
                                    "data": {"n": 1}}, context=ALICE)  # fmt: skip
    before = home_names(home)
    swap_to_home(space, home)
    try:
        with pytest.raises(DbHandlesError) as caught:
            service.execute("data/create", {"dbHandle": handle, "collection": "c", "id": "b",
                                            "data": {"n": 2}}, context=ALICE)  # fmt: skip
        assert caught.value.code == "path_not_allowed"
    finally:
        swap_back(space)
    assert home_names(home) == before  # no j.json, no .j.json.*.tmp, no j.json.lock


@pytest.mark.parametrize("swap", ["moved away", "a link to the home"])
def test_a_rejects_folder_swapped_while_it_is_checked_is_a_changed_path(
    tenant: tuple[Service, Path, Path], monkeypatch: pytest.MonkeyPatch, swap: str
) -> None:
    """The swap made right after ``check_rejects`` pinned the folder: the check asks the pinned
    folder, and a path that leads elsewhere by then is ``path_not_allowed`` ("changed while it was
    checked"), never "cannot create" (the words of a folder that may not be written); the import
    creates nothing (its output database) and the home receives nothing."""
    service, space, home = tenant
    (space / "in.jsonl").write_bytes(b'{"a": 1}\n')
    before = home_names(home)

    class SwappedOnceChecked(Pinned):
        __slots__ = ()

        def __init__(self, path: str | os.PathLike[str], field: str | None) -> None:
            super().__init__(path, field)
            os.rename(space / "d", space / "d.real")
            if swap == "a link to the home":
                os.symlink(home, space / "d")

    monkeypatch.setattr(rejects, "Pinned", SwappedOnceChecked)
    try:
        with pytest.raises(PathNotAllowed, match=r"rejects: .* changed while it was checked"):
            service.execute("data/import", {"output": "out.sqlite", "collection": "q",
                                            "input": "in.jsonl", "onError": "skip",
                                            "rejects": "d/rej.jsonl"}, context=ALICE)  # fmt: skip
    finally:
        if (space / "d").is_symlink():
            os.unlink(space / "d")
        os.rename(space / "d.real", space / "d")
    assert not (space / "out.sqlite").exists()
    assert home_names(home) == before


@pytest.mark.parametrize(
    ("command", "params", "field"),
    [
        ("data/import", {"collection": "q", "input": "in.jsonl", "onError": "skip",
                         "rejects": "d/rej.jsonl"}, "rejects"),
        ("data/export", {"collection": "sj", "output": "d/out.jsonl"}, "output"),
        ("data/open", {"adapter": "sqlite", "config": {"path": "d/x.sqlite", "mode": "create"}},
         "config.path"),
    ],
    ids=["import rejects", "export output", "open config.path"],
)  # fmt: skip
def test_a_folder_that_was_a_link_for_an_instant_is_a_changed_path_not_a_file(
    tenant: tuple[Service, Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    params: dict[str, Any],
    field: str,
) -> None:
    """``d`` fails to open as a folder (a link at that instant: ``ENOTDIR``) and is a folder again
    when looked at: the path changed while it was walked (``path_not_allowed``), on every command
    that makes sure of a folder (``paths.ensure_parent``); a parent that is still a file keeps
    "a parent of this path is a file" (``invalid_params``)."""
    service, space, home = tenant
    handle = handle_with_a_record(service)
    (space / "in.jsonl").write_bytes(b'{"a": 1}\n')
    before = home_names(home)
    stepping = pinned._step
    failed: list[str] = []

    def a_link_for_an_instant(name: str, folder: int, make: bool) -> tuple[int, bool]:
        if name == "d" and not failed:
            failed.append(name)
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        return stepping(name, folder, make)

    if command != "data/open":
        params = {"dbHandle": handle, **params}
    monkeypatch.setattr(pinned, "_step", a_link_for_an_instant)
    with pytest.raises(PathNotAllowed, match="changed while it was checked") as caught:
        service.execute(command, params, context=ALICE)
    assert failed == ["d"] and caught.value.field == field
    assert home_names(home) == before
    monkeypatch.undo()
    (space / "f").write_bytes(b"")
    on_a_file = {key: value.replace("d/", "f/") if isinstance(value, str) else value
                 for key, value in params.items()}  # fmt: skip
    if command == "data/open":
        on_a_file["config"] = {"path": "f/x.sqlite", "mode": "create"}
    with pytest.raises(DbHandlesError, match="a parent of this path is a file") as caught_file:
        service.execute(command, on_a_file, context=ALICE)
    assert caught_file.value.code == "invalid_params"


# -- 2. a lookup that fails mid-race is a refusal, never internal_error ------------------------------


def test_an_oserror_while_resolving_is_path_not_allowed(
    tenant: tuple[Service, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``os.path.realpath`` raises when a folder is swapped while it walks (``readlink`` of what
    is no longer a link: ``EINVAL``; a name gone: ``ENOENT``)."""
    service, _, _ = tenant
    for error in (OSError(22, "Invalid argument"), FileNotFoundError(2, "gone")):

        def racing(path: Any, *args: Any, error: OSError = error, **kwargs: Any) -> str:
            raise error

        with monkeypatch.context() as patch:
            patch.setattr(paths.os.path, "realpath", racing)
            with pytest.raises(PathNotAllowed, match="changed while it was checked"):
                paths.resolve(service.settings, ALICE, "d/x.jsonl", "output", "output")


# -- 4. the words never depend on a file swapped in behind a checked name ----------------------------


def test_a_file_swapped_behind_a_checked_name_is_refused_with_the_generic_words(
    tenant: tuple[Service, Path, Path],
) -> None:
    service, _, _ = tenant
    datasets = service.settings.resolved_read_roots()[0]
    bob = paths.actor_space(service.settings, "bob", create=True)
    (bob / "bob.json").write_bytes(b'{"secret": 1}\n')
    os.link(bob / "bob.json", bob / "bob-2.json")  # a file with other names
    race = datasets / "race.jsonl"
    os.symlink(bob / "bob.json", race)
    with pytest.raises(PathNotAllowed) as plain:  # the answer without a race
        paths.resolve(service.settings, ALICE, str(race), "input", "input")
    generic = str(plain.value)
    assert "other names" not in generic
    race.unlink()
    race.write_bytes(b'{"a": 1}\n')
    call = paths.begin_call()
    try:
        found = paths.resolve(service.settings, ALICE, str(race), "input", "input")
        tmp = datasets / "t"
        os.symlink(bob / "bob.json", tmp)
        os.replace(tmp, race)  # swapped after the check
        with pytest.raises(PathNotAllowed) as raced:
            check_plain(found.path, "input")
    finally:
        paths.end_call(call)
    assert str(raced.value) == generic


def test_a_file_of_ones_own_that_was_checked_keeps_the_words_about_it(
    tenant: tuple[Service, Path, Path],
) -> None:
    """The generic words are for files behind a name the caller may not use: a database in its
    own space, checked and unchanged, is still named as one."""
    service, space, _ = tenant
    handle_with_a_record(service)
    call = paths.begin_call()
    try:
        found = paths.resolve(service.settings, ALICE, "a.sqlite", "input", "input")
        with pytest.raises(PathNotAllowed, match=r"is an SQLite database|database file"):
            check_plain(found.path, "input")
    finally:
        paths.end_call(call)
    assert (space / "a.sqlite").exists()


# -- 1 and 2 against a swapping process, over many tries ----------------------------------------------

SWAPPER = """
import os, sys
space, home, stop = sys.argv[1], sys.argv[2], sys.argv[3]
d, real = os.path.join(space, "d"), os.path.join(space, "d.real")


def restore(n):
    # The service may make a new d meanwhile (its folders are made when missing): moved aside.
    if os.path.islink(d):
        os.unlink(d)
    if os.path.lexists(real):
        if os.path.lexists(d):
            os.rename(d, d + f".made{n}")
        os.rename(real, d)


for n in range(int(sys.argv[4])):
    if os.path.exists(stop):
        break
    try:
        os.rename(d, real)
        os.symlink(home, d)
        os.unlink(d)
        os.rename(real, d)
    except OSError:
        for _ in range(100):
            try:
                restore(n)
                break
            except OSError:
                pass
"""

#: What a race may answer: the refusal of a path that changed while it was checked (also when
#: SQLite's or the file system's own I/O finds the folder gone or swapped for a moment: a
#: ``disk I/O error`` or ``No such file or directory`` in a folder the call pinned is that
#: refusal, never ``storage_error``, ``read_only`` nor ``invalid_params``), an export's refusal
#: to replace a partial file it did not make; or (the file written in alice's own folder) success.
RACE_CODES = {"path_not_allowed", "file_exists"}

#: The side files SQLite itself opens by name beside a database this test opens (``db{n}.sqlite``).
SQLITE_SIDE = re.compile(r"db[0-9]+\.sqlite-(wal|shm|journal)")


def test_racing_exports_imports_and_opens_never_reach_the_home(
    tenant: tuple[Service, Path, Path], tmp_path: Path
) -> None:
    service, space, home = tenant
    handle = handle_with_a_record(service)
    (space / "in.jsonl").write_bytes(b'{"a": 1}\nnot json\n')
    before = home_names(home)
    stop = tmp_path / "stop"
    swapper = subprocess.Popen(
        [sys.executable, "-c", SWAPPER, str(space), str(home), str(stop), "2000000"]
    )
    codes: list[str] = []
    messages: list[str] = []
    calls: list[tuple[str, dict[str, Any]]] = []
    for n in range(40):
        calls += [
            ("data/export", {"dbHandle": handle, "collection": "sj", "output": "d/server.json",
                             "overwrite": True}),
            ("data/export", {"dbHandle": handle, "collection": "sj", "output": f"d/p{n}.txt"}),
            ("data/import", {"dbHandle": handle, "collection": "q", "input": "in.jsonl",
                             "onError": "skip", "rejects": f"d/rej{n}.jsonl"}),
            ("data/open", {"adapter": "sqlite", "config": {"path": f"d/db{n}.sqlite",
                                                          "mode": "create"}}),
            ("data/open", {"adapter": "json", "config": {"path": f"d/j{n}.json",
                                                        "mode": "create"}}),
        ]  # fmt: skip
    try:
        for name, params in calls:
            try:
                result = service.execute(name, params, context=ALICE)
            except DbHandlesError as exc:
                codes.append(exc.code)
                messages.append(f"{name}: {exc.code}: {exc.message}")
                continue
            codes.append("ok")
            if name == "data/open":
                service.execute("data/close", {"dbHandle": result["dbHandle"]}, context=ALICE)
    finally:
        stop.write_bytes(b"")
        swapper.wait()
    assert swapper.returncode == 0
    assert (space / "d").is_dir() and not (space / "d").is_symlink()
    assert (home / "server.json").read_bytes() == DECOY
    # SQLite opens (and on close removes) a database's ``-wal``/``-shm``/``-journal`` by name after
    # the check, which no call can pin (docs/security.md, "Decided once", Left): a side file of a
    # database this test opened may appear where the swapped folder led at that instant. Nothing
    # dbhandles itself creates ever does.
    stray = {n for n in home_names(home) - before if SQLITE_SIDE.fullmatch(n)}
    assert home_names(home) - stray == before
    unexpected = [m for m in messages if m.split(": ")[1] not in RACE_CODES]
    assert not unexpected and set(codes) <= RACE_CODES | {"ok"}, unexpected
