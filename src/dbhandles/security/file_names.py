"""The book of names: which name each database file is used by, kept in the handle store, and the
check every reopen of a stored handle passes (docs/security.md, "One name per file").

A hard link is a second name for a file, and a name that a stored handle opened may later lead to
another file: the file swapped for a hard link to another actor's database, or for a symbolic link
to the home's default database. A process that starts (a restart, a second process, a job's child
process) knows no name yet, so what it opens must not be decided by which stored name it happens
to meet first. So each file database's identity ``(st_dev, st_ino)`` is recorded with its name
when a handle opens it (``FileNames.record``: after the path policy and ``dbfiles.check_names``
let that name through) in the store's meta table (``file.name:<dev>:<ino>`` -> the canonical
path), and with it each of its SQLite side files that has one name. Every process reads that
record before it decides (``FileNames.seed`` -> ``dbfiles.know(..., vouched=True)``), so the name
a file was opened by stays its name, and every other name is a link.

``FileNames.check_reopen`` is what a stored handle passes before its connection is made again
(``HandleRegistry._acquire``): the name is still its own real path (no symbolic link appeared on
it), lies outside the home and is no side file, and its file is either the one recorded for it or
a file with one name (the JSON adapter's commits, a database deleted and created again: recorded
then); a file with other names that the book records under another name (or under none) is
refused ``path_not_allowed``, and the handle stays, usable again once its file is back.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from dbhandles.dbfiles import SIDE_SUFFIXES, is_side_file, know, known_name
from dbhandles.errors import PathNotAllowed
from dbhandles.security.paths import is_service_state
from dbhandles.security.safe_folders import refuse_changeable
from dbhandles.settings import Settings
from dbhandles.store import HandleStore
from dbhandles.values import json_text

__all__ = ["SIDE_SUFFIXES", "FileNames"]

_KEY = "file.name:"


def _key(info: os.stat_result) -> str:
    return f"{_KEY}{info.st_dev}:{info.st_ino}"


def _stat(path: str) -> os.stat_result | None:
    try:
        info = os.lstat(path)
    except (OSError, ValueError):
        return None
    return info if stat.S_ISREG(info.st_mode) else None


class FileNames:
    """The handle store's book of names of database files (see the module).

    Args:
        store: where the book is kept (its meta table), shared by every process on the home.
    """

    def __init__(self, store: HandleStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        #: What this process last recorded or read, ``key -> name``, to spare the store.
        self._seen: dict[str, str] = {}

    def _book(self, info: os.stat_result) -> str | None:
        key = _key(info)
        with self._lock:
            name = self._seen.get(key)
        if name is None:
            name = self.store.get_meta(key)
            if name is not None:
                with self._lock:
                    self._seen[key] = name
        return name

    def recorded(self, info: os.stat_result) -> str | None:
        """The name the book records for the file ``info`` describes (``None``: none)."""
        return self._book(info)

    def holds_database(self, info: os.stat_result) -> bool:
        """Whether the book records the file ``info`` describes as a database's file now. A
        database file's record holds wherever the file went (a rename keeps its identity); a side
        file's record only while its recorded name still leads to it: SQLite deletes its side
        files (the ``-wal`` and ``-shm`` at the last close, a ``-journal`` at each commit) and the
        file system then gives their numbers to new files, which are nobody's database."""
        booked = self._book(info)
        if booked is None or not is_side_file(booked):
            return booked is not None
        leads = _stat(booked)
        return leads is not None and (leads.st_dev, leads.st_ino) == (info.st_dev, info.st_ino)

    def _write(self, info: os.stat_result, name: str) -> None:
        key = _key(info)
        with self._lock:
            if self._seen.get(key) == name:
                return
        # A name leads to one file at a time: the records of the files it led to before (a JSON
        # commit's rename, a database deleted and made again, a -wal SQLite deleted) go, so the
        # file system's giving their numbers to new files makes no new file a database.
        self.store.set_meta_alone(key, name, _KEY)
        with self._lock:
            self._seen = {k: v for k, v in self._seen.items() if v != name}
            self._seen[key] = name

    def record(self, path: str) -> None:
        """Record the canonical ``path`` as the name of its file, and of each of its side files
        that has one name or that this process knows by its name there (called once the path
        policy and ``dbfiles.check_names`` let a handle open it by that name)."""
        info = _stat(path)
        if info is None:
            return
        self._write(info, path)
        know(path, vouched=True)
        for suffix in SIDE_SUFFIXES:
            name = f"{path}{suffix}"
            side = _stat(name)
            if side is not None and (side.st_nlink == 1 or known_name(side) == name):
                self._write(side, name)
                know(name, vouched=True)

    def confirm(self, path: str, *, settled: bool = False) -> None:
        """Record what this process knows of the database ``path`` (a handle of it uses it) in the
        book once it matters: its file and each side file that has other names now and that this
        process knows by this very name (it made or opened it while it had one name: a
        JSON-adapter commit, a connection), so a later process decides the same, after a crash
        too. While handles use it, files with one name are not written (the book would grow with
        every JSON-adapter commit and every new ``-wal``); when its use is ``settled`` (a handle
        closed, the service stopping), its file is, if it has one name: a link made later is then
        told from it after a restart.
        """
        for name in (path, *(f"{path}{suffix}" for suffix in SIDE_SUFFIXES)):
            info = _stat(name)
            if info is None:
                continue
            mine = info.st_nlink == 1 or known_name(info) == name
            if mine and (info.st_nlink > 1 or (settled and name == path)):
                self._write(info, name)

    def seed(self, path: str) -> bool:
        """Tell this process (``dbfiles.know``, vouched) the names the book records for the file
        at ``path`` and its side files, before anything decides on them; whether the book records
        ``path`` itself as its file's name."""
        own = False
        for name in (path, *(f"{path}{suffix}" for suffix in SIDE_SUFFIXES)):
            info = _stat(name)
            if info is None or info.st_nlink == 1:
                continue
            booked = self._book(info)
            if booked is None:
                continue
            if booked == name:
                own = own or name == path
            else:
                leads = _stat(booked)
                if leads is None or (leads.st_dev, leads.st_ino) != (info.st_dev, info.st_ino):
                    continue  # the recorded name leads elsewhere now: it vouches for nothing
            know(booked, vouched=True)
        return own

    def check_reopen(self, settings: Settings, path: str, *, tenant: bool = False) -> None:
        """Refuse to open a stored handle's file ``path`` (canonical when it was opened) again
        unless it is still that handle's file (see the module), and, for a non-admin actor's
        SQLite handle (``tenant``), unless no other OS user can change its path now
        (``safe_folders.refuse_changeable``: SQLite opens its side files by name again).

        Raises:
            PathNotAllowed: a symbolic link appeared on ``path``; ``path`` lies in the home or is
                an SQLite side file; its file has other names (hard links) and the book records
                another name for it, or none; ``tenant``: a folder on it another OS user can change.
        """
        self._check_name(settings, path)
        if tenant:
            refuse_changeable(Path(path), path, "dbHandle")

    def _check_name(self, settings: Settings, path: str) -> None:
        real = os.path.realpath(path)
        why: str | None = None
        if real != path:
            why = ("is now a symbolic link, or lies under one, to another place; a handle opens "
                   "its database by its own name only")  # fmt: skip
        elif is_service_state(settings, Path(real)) or is_side_file(real):
            why = "is not a place a database may be opened from"
        else:
            info = _stat(path)
            if info is None:
                return  # missing or not a file: the adapter's own open says so
            if info.st_nlink == 1:
                know(path, vouched=True)  # one name: nobody else's file by any name
                self.seed(path)
                return
            if not self.seed(path) and known_name(info) != path:
                why = ("has other names (hard links) and is not the file this handle opened; "
                       "a file is used by one name only")  # fmt: skip
        if why is not None:
            raise PathNotAllowed(
                f"dbHandle: the file of this handle, {json_text(path)}, {why}: restore the file, or "
                "data/close this handle",
                field="dbHandle",
            )
