"""The ``json`` adapter: one JSON file per database, rewritten atomically on every committed write.

Reads are served from memory (the reference semantics of ``memory``); a write transaction commits by
writing a temporary file next to the target, fsyncing it, renaming it over the target and fsyncing the
folder, so a crash at any moment leaves either the old or the new file, never a torn one. The file
a commit replaces is emptied when a hard link still names it (``new_files.replace_database_file``),
so a link someone made to the database never becomes a readable copy of what it held. Every file it
makes, renames or removes (the temporary file, the file itself, ``<file>.lock``, orphans) is named
relative to its folder opened without following links (``pinned.Pinned``): a folder swapped for a
link after the open refuses the write instead of writing where the link leads.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import orjson

from dbhandles.adapters.base import AdapterConfig, Features, FileConfig, Mode, Session
from dbhandles.adapters.jsonfile_read import FORMAT, FORMAT_VERSION, read_file
from dbhandles.adapters.memory import MemoryAdapter, MemorySession
from dbhandles.dbfiles import (
    being_written,
    check_names,
    check_path_text,
    check_plain,
    open_plain,
)
from dbhandles.dbfiles import (
    hold as hold_file,
)
from dbhandles.dbfiles import (
    release as release_file,
)
from dbhandles.errors import (
    DatabaseNotFound,
    DbHandlesError,
    InvalidConfig,
    NotADatabase,
    ReadOnly,
    StorageError,
)
from dbhandles.lock_files import open_lock_file
from dbhandles.new_files import replace_database_file
from dbhandles.pinned import Pinned, open_folder, real, stays
from dbhandles.values import json_text

__all__ = ["JsonFileAdapter", "JsonFileConfig"]

#: The most of a file ``recognizes`` parses (bytes): past it, only its first line is read.
_RECOGNIZE_BYTES = 64 << 20
#: JSON's whitespace (RFC 8259), all a database's text may hold around its object.
_WHITESPACE = b" \t\r\n"


def _database_document(raw: bytes) -> bool:
    """Whether ``raw`` parses as ``read_file`` takes a database: a JSON object with ``"format":
    "dbhandles-json"`` and an object of ``"collections"``."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return (
        isinstance(doc, dict)
        and doc.get("format") == FORMAT
        and isinstance(doc.get("collections"), dict)
    )


class JsonFileConfig(FileConfig):
    """``path`` of the JSON file; ``pretty`` indents it for people (slower, bigger)."""

    mode: Mode = "readwrite"
    pretty: bool = False

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class JsonFileAdapter(MemoryAdapter):
    """A JSON file on disk, loaded on connect and rewritten atomically on each committed write."""

    name: ClassVar[str] = "json"
    features: ClassVar[Features] = Features(durable=True, vacuum=True, file_based=True)
    config_model: ClassVar[type[AdapterConfig]] = JsonFileConfig

    recognize_bytes: ClassVar[int] = _RECOGNIZE_BYTES
    #: Its lock file (``_lock_file``); a commit's temporary files are told by their pattern
    #: (``security/database_files.py``).
    own_suffixes: ClassVar[tuple[str, ...]] = (".lock",)

    @classmethod
    def recognizes(cls, path: str) -> bool:
        """Whether ``path`` is a file this adapter would open as a database (``recognizes_head``
        of its first bytes, read through ``open_plain``)."""
        try:
            with open_plain(path, "rb", "input") as file:
                raw = file.read(_RECOGNIZE_BYTES + 1)
        except (OSError, DbHandlesError):
            return False
        return cls.may_recognize(raw[:4096]) and cls.recognizes_head(raw)

    @classmethod
    def may_recognize(cls, start: bytes) -> bool:
        """A JSON object only: ``{`` after JSON's whitespace (or nothing but whitespace yet)."""
        return start.lstrip(_WHITESPACE)[:1] in (b"{", b"")

    @classmethod
    def recognizes_head(cls, raw: bytes) -> bool:
        """By the rule ``jsonfile_read.read_file`` opens a file by (a JSON object whose
        ``"format"`` is ``"dbhandles-json"`` and whose ``"collections"`` is an object, wherever
        the keys are and however the text escapes them), ``raw`` being the whole file up to
        ``_RECOGNIZE_BYTES``.

        A larger file is decided from its head as far as the head can tell, never by its size:
        one that could be a database and is too big to parse here is taken for one (refused
        rather than written over). It is none only when the head proves it: it starts with
        something other than a JSON object, or its first line is a whole JSON value followed by
        more than whitespace (JSON Lines, no one JSON document), or a whole value that is no
        database followed by whitespace only (as far as read: the file is that value or no
        JSON at all)."""
        if len(raw) <= _RECOGNIZE_BYTES:
            return _database_document(raw)
        body = raw.lstrip(_WHITESPACE)
        if not body:
            return True  # whitespace as far as read: a database could follow
        if body[:1] != b"{":
            return False
        first, _, rest = body.partition(b"\n")
        try:
            orjson.loads(first)
        except orjson.JSONDecodeError:
            return True  # an object spanning more than the head (or lines): could be one
        if rest.strip(_WHITESPACE):
            return False  # a whole value, then more: JSON Lines, no one JSON document
        return _database_document(first)

    @classmethod
    def prepare(cls, config: AdapterConfig) -> AdapterConfig:
        assert isinstance(config, JsonFileConfig)
        given = os.path.expanduser(check_path_text(config.path, "config.path"))
        path = Path(real(given, "config.path"))  # a folder swapped meanwhile: refused
        stays(given, str(path), "config.path")  # decided by the path policy: resolved once
        check_plain(path, "config.path")
        if len(os.fsencode(path.name)) > 200:
            # Its lock file and the temporary files of every commit add to the name.
            raise InvalidConfig(
                f"config.path: the file name {json_text(path.name, 40)} is too long for the json adapter "
                "(at most 200 bytes: it needs room for its .lock and temporary files)",
                field="config.path",
            )
        with contextlib.suppress(OSError):
            # As for SQLite files (sqlite_config.check_target): a second name is a way into a
            # database past the checks made on its first one, so only the name it is known by.
            check_names(str(path), path.stat(), "config.path")
        if being_written(str(path)):
            raise NotADatabase(
                f"config.path: {json_text(str(path))} is a data file this service is writing (an import's "
                "rejects, an export), not a database",
                field="config.path",
            )
        if path.exists():
            if not path.is_file():
                raise NotADatabase(
                    f"config.path: {json_text(str(path))} is not a regular file",
                    field="config.path",
                )
            read_file(path)  # a file that cannot be rewritten opens read-only (_unkept)
        elif config.mode != "create":
            raise DatabaseNotFound(
                f'config.path: {json_text(str(path))} does not exist; open it with "mode": "create" to create it',
                field="config.path",
            )
        elif not path.parent.exists():
            try:  # made one by one, each in the one before it, never through a link
                os.close(open_folder(str(path.parent), "config.path", make=True))
            except OSError as exc:
                raise InvalidConfig(
                    f"config.path: cannot create the folder {json_text(str(path.parent))}: {exc.strerror}",
                    field="config.path",
                ) from exc
        return config.model_copy(update={"path": str(path)})

    @classmethod
    def connection_key(cls, config: AdapterConfig) -> str | None:
        assert isinstance(config, JsonFileConfig)
        return f"json:{config.path}:{'ro' if config.readonly else 'rw'}"

    @property
    def path(self) -> Path:
        return Path(self.config.path)  # type: ignore[attr-defined]

    def __init__(self, config: AdapterConfig) -> None:
        super().__init__(config)
        self._loaded: tuple[int, int, int, int] | None = None
        self._held = False
        #: Why the file as loaded must not be rewritten (``_unkept``), or ``None``.
        self._unkept: str | None = None

    def _signature(self) -> tuple[int, int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        # st_ctime_ns too: an edit in place of the same length whose mtime was set back
        # (os.utime) keeps the other three, and no program can set the ctime back, so the next
        # write would have put this handle's stale copy over the edit.
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def _refresh(self) -> None:
        """Reload when another process (or handle in another process) rewrote the file."""
        signature = self._signature()
        if signature is None:
            if self.config.mode != "create":
                raise DatabaseNotFound(f"{json_text(str(self.path))} no longer exists")
            self._unkept = None
            self._write(self.store.dump())
        elif signature != self._loaded:
            loaded = read_file(self.path)
            self._unkept = loaded.unkept
            self.store.load(loaded.served, loaded.unreadable, loaded.counts)
            self._loaded = signature

    def _check_writable(self) -> None:
        """Refuse to rewrite a file edited by hand holding a value a rewrite would lose.

        Raises:
            ReadOnly: ``_unkept`` found one; the message names the record and field.
        """
        if self._unkept is not None:
            raise ReadOnly(
                f"{json_text(str(self.path))} is read-only: {self._unkept}; a write rewrites the "
                "whole file and would change that value, so nothing was written (edit the file "
                'by hand to fix it; docs/filters.md "Values")'
            )

    def _connect(self) -> None:
        self._loaded = None
        self._refresh()
        if not self.readonly:
            self._remove_orphans()
        if not self._held:
            # Known as a live database file, so no plain data-file command reads or replaces it.
            hold_file(str(self.path))
            self._held = True

    def _close(self) -> None:
        if self._held:
            release_file(str(self.path))
            self._held = False
        super()._close()

    @contextmanager
    def _session(self, write: bool) -> Iterator[Session]:
        with self._lock:
            lock_fd = self._lock_file() if write else None
            try:
                self._refresh()
                if write:
                    self._check_writable()
                with super()._session(write) as session:
                    yield session
            finally:
                if lock_fd is not None:
                    os.close(lock_fd)  # closing the descriptor releases the flock

    def _remove_orphans(self) -> None:
        """Delete the temporary files of writers that were killed before their rename. Under the
        writers' lock: a live writer in another process holds it while its temporary file exists."""
        pattern = f".{self.path.name}.*.tmp"
        try:
            if not any(self.path.parent.glob(pattern)):
                return
        except OSError:
            return  # its folder is gone for now: the write that follows says so
        fd = self._lock_file()
        try:
            with Pinned(self.path, "config.path") as folder:
                listing = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC,
                                  dir_fd=folder.at())  # fmt: skip
                try:
                    names = os.listdir(listing)
                finally:
                    os.close(listing)
                # Only the names a commit makes (``new_files``: ``.<name[:200]>.<8 hex>.tmp``, the
                # form ``database_files`` refuses on every door): another file is nobody's orphan.
                own = re.compile(re.escape(f".{self.path.name[:200]}.") + r"[0-9a-f]{8}\.tmp")
                for name in names:
                    if own.fullmatch(name):
                        with contextlib.suppress(OSError):
                            os.unlink(name, dir_fd=folder.at())
        finally:
            os.close(fd)

    def _lock_file(self) -> int:
        """An exclusive lock on ``<file>.lock`` so writers in other processes take turns."""
        try:
            fd = open_lock_file(f"{self.path}.lock", "config.path", pinned=True)
        except OSError as exc:
            raise StorageError(f"cannot lock {json_text(str(self.path))}: {exc.strerror}") from exc
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def release(self) -> None:
        # The file holds everything; dropping the in-memory copy frees memory and rereads on next use.
        with self._lock:
            if self._connected:
                self._connected = False
                super()._close()

    def _commit(self, session: MemorySession) -> None:
        self._write(self.store.dump())

    def _write(self, collections: dict[str, Any]) -> None:
        self._check_writable()
        options = orjson.OPT_INDENT_2 if getattr(self.config, "pretty", False) else 0
        payload = orjson.dumps(
            {"format": FORMAT, "version": FORMAT_VERSION, "collections": collections},
            option=options,
        )
        try:
            # Written aside, synced, renamed over the file and the folder synced; the file
            # replaced is emptied if a hard link still names it: the database's earlier content
            # never stays readable under another name (new_files).
            replace_database_file(str(self.path), payload)
            self._loaded = self._signature()
        except OSError as exc:
            raise StorageError(f"cannot write {json_text(str(self.path))}: {exc.strerror}") from exc

    def size_bytes(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def vacuum(self) -> None:
        """Rewrite the file compactly, under the writers' lock and from the file as it is now: a
        file another process replaced meanwhile is read first (and refused when it cannot be
        rewritten), never overwritten with what this handle loaded before."""
        with self._lock:
            self.connect()
            fd = self._lock_file()
            try:
                self._refresh()
                self._write(self.store.dump())
            finally:
                os.close(fd)
