"""Whether a file a command reads or writes is a database of any adapter, and the one refusal of a
database as a file to write (an export's output and partial file, an import's rejects file).

A database is known three ways, none of them limited to this process (an export runs in a job
process that opened no handle): the handle store records it (an owner, from any ``data/open``
ever made of it), a handle open in this process is on it (by path or by any of its names), or its
content says so (a file adapter's own header, ``Adapter.recognizes_head``: the JSON adapter's
``"format": "dbhandles-json"``; SQLite's header is ``dbfiles.check_plain``'s). An empty JSON
database, which has no header until its first commit, is known by the first two.

Every file is looked up in its folder pinned (``pinned_look.look``), never by its path, and its
bytes are read through a descriptor opened there: with a folder on the way swapped for a link to
another actor's space, the answer is ``changed`` whatever that space holds. The cheap checks come
first (this process's open databases, two lookups in the store, the book of names); the content
is read last, and parsed only by an adapter it could belong to (``Adapter.may_recognize``).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from dbhandles.adapters import (
    Adapter,
    FileConfig,
    adapter_names,
    get_adapter_class,
    ready_adapter_classes,
)
from dbhandles.dbfiles import is_side_file, live_conflict
from dbhandles.errors import DbHandlesError, PathNotAllowed
from dbhandles.pinned import Pinned, changed
from dbhandles.pinned_look import head_at, look, names_in, sqlite_header_at
from dbhandles.store import file_database
from dbhandles.values import json_text

if TYPE_CHECKING:
    from dbhandles.service import Service

__all__ = [
    "check_adapter_file",
    "check_database_output",
    "check_own_files_free",
    "is_database_file",
    "is_open_handle_database",
    "is_registered",
]


def is_registered(service: Service, real: Path) -> bool:
    """Whether the handle store or this process knows ``real`` (a real path) as a database, whether
    or not a file is there now: an owner record, a stored handle (of any process) or a handle open
    here on that path. A database whose file was deleted is still one: its handle answers again
    once the file is back, and a data file written under its name would answer in its place.
    Looks nothing up on the file system: two store lookups by the path (``has_handle_on``) and
    this process's handles the store does not keep (``local_handles``)."""
    if service.access.store.get_database(file_database(str(real))) is not None:
        return True
    for entry in service.registry.local_handles():
        if isinstance(entry.config, FileConfig) and entry.config.path == str(real):
            return True
    return service.access.store.has_handle_on(str(real))


def is_database_file(
    service: Service,
    real: Path,
    folder: Pinned,
    info: os.stat_result,
    field: str,
    *,
    registered: bool | None = None,
) -> bool:
    """Whether the regular file ``real`` (a real path; ``info``: its ``lstat`` in ``folder``, its
    folder pinned by ``pinned_look.look``) is a database of any adapter: registered
    (``is_registered``), its identity recorded in the handle store's book of names as a
    database's file now (``security/file_names.FileNames.holds_database``), or recognized by a
    file adapter by its content (``Adapter.recognizes_head``), read through ``folder``.

    ``registered``: ``is_registered``' answer when the caller has it already (it costs store lookups).

    Raises:
        PathNotAllowed: the name led to another file than ``info`` when it was opened
            (``changed_while_opened``).
    """
    if registered is None:
        registered = is_registered(service, real)
    if registered or service.access.names.holds_database(info):
        return True
    return _recognized(real, folder, info, field)


#: How much of a file ``Adapter.may_recognize`` is shown.
_START = 4096


def _recognized(real: Path, folder: Pinned, info: os.stat_result, field: str) -> bool:
    """Whether a file adapter recognizes the file by its first bytes, read in ``folder``."""
    open_here: list[bool] = []

    def busy(seen: os.stat_result) -> bool:
        open_here.append(live_conflict(str(real), seen, writing=True) is not None)
        return open_here[-1]

    try:
        start = head_at(folder, info, field, busy, _START)
        if start is None:
            return False  # held open for writing only here: a data file being written
        readers = [cls for cls in _file_adapters() if cls.may_recognize(start)]
        if not readers:
            return False
        size = max(cls.recognize_bytes for cls in readers) + 1
        head = start if len(start) < _START else head_at(folder, info, field, busy, size)
    except PathNotAllowed:
        if open_here and open_here[-1]:
            return True  # a database this process has open (SQLite's own, opened meanwhile)
        raise
    except OSError:
        return False  # unreadable: the caller's own open reports why
    return head is not None and any(cls.recognizes_head(head) for cls in readers)


def _file_adapters() -> list[type[Adapter]]:
    """The file adapters that recognize files by content (an optional driver that is missing
    opened nothing here)."""
    found = []
    for name in adapter_names():
        try:
            cls = get_adapter_class(name)
        except DbHandlesError:
            continue
        if cls.features.file_based and cls.recognize_bytes > 0:
            found.append(cls)
    return found


def is_open_handle_database(
    service: Service, real: Path, info: os.stat_result | None = None
) -> bool:
    """Whether the regular file ``real`` (``info``: its ``stat``, else taken here) is (by any of
    its names) the database of an open handle of a file adapter (SQLite, JSON, ...).

    Raises:
        OSError: ``real`` cannot be looked at (gone).
    """
    info = info if info is not None else real.stat()
    for entry in service.registry.list_handles():
        if isinstance(entry.config, FileConfig):
            try:
                other = os.stat(entry.config.path)
            except OSError:
                continue  # deleted since it was opened: not this file
            if (other.st_dev, other.st_ino) == (info.st_dev, info.st_ino):
                return True
    return False


def check_database_output(service: Service, real: Path, given: str, field: str) -> None:
    """Refuse ``real`` (a real path the path policy let the caller write, given as ``given``) as
    a file to write or replace when it is a database of any adapter (module docstring), or this
    process has it open as one (``dbfiles.live_conflict``). A missing file, a link or anything
    but a regular file passes: ``dbfiles.check_plain`` answers those (an SQLite file too, by its
    header, read there through the same pinned folder).

    One answer for every such database, the caller's own or another actor's in the caller's
    space, open or closed, SQLite or JSON: the words never depend on whose it is or whether it
    is shared, so they tell a caller nothing about another actor's database that a read of the
    same name does not (docs/security.md, "One code per kind of refusal").

    A missing file is refused too when its path is a registered database (``is_registered``).

    Raises:
        PathNotAllowed: ``real`` is a database file; it changed while it was looked at (a folder
            on the way swapped: ``changed``).
    """
    # By name first: the JSON adapter's own files are told as such, whatever their inode was
    # once (a replaced database file's inode number may be reused by a new empty file).
    check_adapter_file(service, real, given, field)
    try:
        looked = look(str(real), field)  # a folder on the way that is a link now: changed
    except OSError:
        looked = None  # a file or an unsearchable folder on the way: check_plain words it
    if looked is None:
        database = is_registered(service, real)
    else:
        folder, info = looked
        with folder:
            if not stat.S_ISREG(info.st_mode):
                return
            try:
                database = _is_database(service, real, folder, info, field)
            except OSError as exc:
                raise changed(field, given) from exc  # gone between two looks: swapped
    if database:
        raise PathNotAllowed(
            f"{field}: {json_text(given, 80)} is a database file; dbhandles never writes or "
            "replaces a database as a data file: choose another name",
            field=field,
        )


#: A JSON-adapter commit's temporary file: ``.<database name, 200 bytes at most>.<8 hex>.tmp``
#: (``new_files.replace_database_file``).
_JSON_TEMP = re.compile(r"\A\.(?P<name>.+)\.[0-9a-f]{8}\.tmp\Z", re.DOTALL)


#: ``_own_suffixes``' answer and the ``ready_adapter_classes`` tuple it was built from.
_suffixes_of: tuple[tuple[type[Adapter], ...], tuple[str, ...]] | None = None


def _own_suffixes() -> tuple[str, ...]:
    """Every file adapter's ``own_suffixes``, sorted (``ready_adapter_classes``: no optional driver
    is imported for it, and those adapters are no file adapters). Built again only when that tuple
    is another one (``register_adapter`` added an adapter)."""
    global _suffixes_of
    classes = ready_adapter_classes()
    known = _suffixes_of
    if known is not None and known[0] is classes:
        return known[1]
    found: set[str] = set()
    for cls in classes:
        if cls.features.file_based:
            found.update(cls.own_suffixes)
    _suffixes_of = (classes, tuple(sorted(found)))
    return _suffixes_of[1]


def _adapter_file_of(real: Path, field: str) -> list[Path]:
    """The databases ``real`` would be an adapter's own file of, by its name: ``X`` for ``X`` and
    one of an adapter's ``own_suffixes`` (the JSON adapter's lock file ``X.lock``, SQLite's
    ``X-wal``), and for a JSON commit's temporary file ``.X.<hex>.tmp``. The folder is listed
    through its pinned descriptor, never by its path.

    Raises:
        PathNotAllowed: a folder on the way is a link now (``changed``).
    """
    name = real.name
    found = [
        real.with_name(name.removesuffix(suffix))
        for suffix in _own_suffixes()
        if name.endswith(suffix) and len(name) > len(suffix)
    ]
    temp = _JSON_TEMP.match(name)
    if temp is not None:
        stem = temp.group("name")
        found += [real.with_name(stem)] if len(stem) < 200 else []
        # A name past 200 bytes is cut in the temporary file's name: any database it begins.
        found += [real.with_name(n) for n in names_in(real.parent, field) if n.startswith(stem)]
    return found


def _own_file_refusal(field: str, given: str) -> PathNotAllowed:
    return PathNotAllowed(
        f"{field}: {json_text(given, 80)} is one of a database's own files (its lock, journal or "
        "temporary file: the JSON adapter's .lock and .<name>.<hex>.tmp, SQLite's -wal, -shm, "
        "-journal); those belong to the database and are never opened, created or replaced "
        "through another door: choose another name",
        field=field,
    )


def _known_database(service: Service, database: Path, field: str) -> bool:
    """Whether ``database`` (a real path) is a database of any adapter (registered, open,
    recognized, ``is_database_file``, or an SQLite file by its header; a missing one registered), looked up in its folder pinned;
    a file that changed while it was looked at counts as one (it is not written over).

    Raises:
        PathNotAllowed: a folder on the way is a link now (``changed``).
    """
    try:
        looked = look(str(database), field)  # PathNotAllowed: the caller words it
    except PathNotAllowed:
        raise
    except OSError:
        looked = None  # a file or an unsearchable folder on the way: nothing is there
    try:
        registered = is_registered(service, database)
        if looked is None:
            return registered
        folder, info = looked
        with folder:
            if registered or not stat.S_ISREG(info.st_mode):
                return registered

            def busy(seen: os.stat_result) -> bool:
                return live_conflict(str(database), seen, writing=True) is not None

            return (
                busy(info)
                or is_database_file(service, database, folder, info, field, registered=False)
                or sqlite_header_at(folder, info, field, busy)  # SQLite's, by its header
            )
    except OSError:
        return True  # changed while looked at: not written over


def check_adapter_file(service: Service, real: Path, given: str, field: str) -> None:
    """Refuse ``real`` when it is, by its name, one of an adapter's own files of a database beside
    it (the JSON adapter's ``.lock`` file and a commit's temporary file, SQLite's side files),
    whatever door names it: a data file to read or write, or a database to open or create.
    Replacing the lock file breaks the writers' turns of every process on that database, and an
    SQLite database made there breaks its every writer, whoever's it is. Each database is looked
    up in its folder pinned.

    Raises:
        PathNotAllowed: ``real`` is named as such a file of a database (``_known_database``); a
            folder on the way is a link now (``changed``).
    """
    for database in _adapter_file_of(real, field):
        try:
            known = _known_database(service, database, field)
        except PathNotAllowed:
            raise changed(field, given) from None  # the words of the name the caller gave
        if known:
            raise _own_file_refusal(field, given)


def check_own_files_free(
    service: Service, cls: type[Adapter], real: Path, given: str, field: str
) -> None:
    """Refuse opening ``real`` with the adapter ``cls`` when one of the files that adapter keeps
    beside it by name (``own_suffixes``: the JSON adapter's ``X.lock``) is a database of any
    adapter already (``_known_database``): the adapter would open, lock or replace it as its own
    file and break both. SQLite's side files are checked by ``sqlite_config.check_target``.

    Raises:
        PathNotAllowed: such a file is a database; a folder on the way is a link now.
    """
    for suffix in cls.own_suffixes:
        other = real.with_name(real.name + suffix)
        if is_side_file(other):
            continue  # SQLite's, with its rules of side files (``sqlite_config.check_target``)
        try:
            known = _known_database(service, other, field)
        except PathNotAllowed:
            raise changed(field, given) from None
        if known:
            raise PathNotAllowed(
                f"{field}: {json_text(given, 80)} cannot be a {cls.name} database: its own file "
                f"{json_text(other.name, 80)} (which the {cls.name} adapter keeps beside it) is a "
                "database already; choose another name",
                field=field,
            )


def _is_database(
    service: Service, real: Path, folder: Pinned, info: os.stat_result, field: str
) -> bool:
    """``check_database_output``'s checks of a regular file, cheapest first, each made once."""
    if live_conflict(str(real), info, writing=True) is not None:
        return True
    if is_open_handle_database(service, real, info):
        return True
    return is_database_file(service, real, folder, info, field)
