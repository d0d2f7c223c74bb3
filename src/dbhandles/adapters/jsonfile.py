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
from dbhandles.adapters.memory import MemoryAdapter, MemorySession
from dbhandles.dbfiles import (
    being_written,
    check_names,
    check_path_text,
    check_plain,
    open_lock_file,
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
    StorageError,
)
from dbhandles.new_files import replace_database_file
from dbhandles.pinned import Pinned, open_folder, real, stays
from dbhandles.values import json_text

__all__ = ["JsonFileAdapter", "JsonFileConfig"]

FORMAT = "dbhandles-json"
FORMAT_VERSION = 1
#: How every file this adapter writes starts (``recognizes``).
_HEAD = re.compile(rb'\A\s*\{\s*"format"\s*:\s*"' + FORMAT.encode() + rb'"')
_HEAD_BYTES = 256


class JsonFileConfig(FileConfig):
    """``path`` of the JSON file; ``pretty`` indents it for people (slower, bigger)."""

    mode: Mode = "readwrite"
    pretty: bool = False

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def _read(path: Path) -> dict[str, Any]:
    try:
        # Through the gate: a JSON file is never one of SQLite's files (see dbhandles.dbfiles).
        with open_plain(path, "rb", "config.path") as file:
            raw = file.read()
    except OSError as exc:
        raise StorageError(f"cannot read {json_text(str(path))}: {exc.strerror}") from exc
    if not raw.strip():
        return {}
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise NotADatabase(
            f"config.path: {json_text(str(path))} is not a dbhandles JSON database (invalid JSON: {exc})",
            field="config.path",
        ) from exc
    if (
        not isinstance(doc, dict)
        or doc.get("format") != FORMAT
        or not isinstance(doc.get("collections"), dict)
    ):
        raise NotADatabase(
            f"config.path: {json_text(str(path))} is not a dbhandles JSON database (expected an object with "
            f'"format": "{FORMAT}")',
            field="config.path",
        )
    collections: dict[str, Any] = doc["collections"]
    for name, records in collections.items():
        if not isinstance(records, list) or not all(
            isinstance(r, dict) and isinstance(r.get("id"), str) for r in records
        ):
            raise NotADatabase(
                f"config.path: {json_text(str(path))}: collection {json_text(name, 80)} is not a list of records "
                "with string ids",
                field="config.path",
            )
    return collections


class JsonFileAdapter(MemoryAdapter):
    """A JSON file on disk, loaded on connect and rewritten atomically on each committed write."""

    name: ClassVar[str] = "json"
    features: ClassVar[Features] = Features(durable=True, vacuum=True, file_based=True)
    config_model: ClassVar[type[AdapterConfig]] = JsonFileConfig

    @classmethod
    def recognizes(cls, path: str) -> bool:
        """Whether ``path`` starts like a file this adapter writes (``{"format": "dbhandles-json"``,
        the first key of every commit, compact or pretty)."""
        try:
            with open_plain(path, "rb", "input") as file:
                head = file.read(_HEAD_BYTES)
        except (OSError, DbHandlesError):
            return False
        return _HEAD.match(head) is not None

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
            _read(path)
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
        self._loaded: tuple[int, int, int] | None = None
        self._held = False

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _refresh(self) -> None:
        """Reload when another process (or handle in another process) rewrote the file."""
        signature = self._signature()
        if signature is None:
            if self.config.mode != "create":
                raise DatabaseNotFound(f"{json_text(str(self.path))} no longer exists")
            self._write(self.store.dump())
        elif signature != self._loaded:
            self.store.load(_read(self.path))
            self._loaded = signature

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
                prefix = f".{self.path.name}."
                for name in names:
                    if name.startswith(prefix) and name.endswith(".tmp"):
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
        with self._lock:
            self.connect()
            self._write(self.store.dump())
