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
import json
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
    ReadOnly,
    StorageError,
)
from dbhandles.new_files import replace_database_file
from dbhandles.pinned import Pinned, open_folder, real, stays
from dbhandles.values import MAX_DEPTH, item_path, json_text, member_path

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


def _read(path: Path) -> tuple[dict[str, Any], str | None]:
    """The collections of the file at ``path``, and why it must not be rewritten (``_unkept``), or
    ``None``.

    Raises:
        StorageError: the file cannot be read.
        NotADatabase: it is no JSON, or no dbhandles JSON database.
    """
    try:
        # Through the gate: a JSON file is never one of SQLite's files (see dbhandles.dbfiles).
        with open_plain(path, "rb", "config.path") as file:
            raw = file.read()
    except OSError as exc:
        raise StorageError(f"cannot read {json_text(str(path))}: {exc.strerror}") from exc
    if not raw.strip():
        return {}, None
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
    return collections, _twice_or_deep(path, collections) or _unkept(raw, doc)


#: How deep below a record a value of a file may nest and still be served read-only: orjson writes
#: at most 254 levels, and a record is written inside a file (4 levels) or a response (about 4).
_SERVED_DEPTH = 200


def _twice_or_deep(path: Path, collections: dict[str, Any]) -> str | None:
    """Why the file's records cannot be written back, whatever the file's form (compact, pretty or
    by hand): a record id given twice in a collection (a write keeps one of them) or a value nested
    deeper than ``MAX_DEPTH`` below a record (``data/create`` refuses it); else ``None``.

    Raises:
        NotADatabase: a value nests deeper than ``_SERVED_DEPTH`` below a record, which no read
            could send back (orjson refuses it; it once answered ``internal_error``).
    """
    for name, records in collections.items():
        seen: set[str] = set()
        for record in records:
            if record["id"] in seen:
                return (
                    f"collection {json_text(name, 80)} holds the record id "
                    f"{json_text(record['id'], 80)} twice, of which a write keeps one"
                )
            seen.add(record["id"])
    for name, records in collections.items():
        for record in records:
            depth = _deepest(record, _SERVED_DEPTH)
            if depth > _SERVED_DEPTH:
                raise NotADatabase(
                    f"config.path: {json_text(str(path))}: record {json_text(record['id'], 80)} of "
                    f"collection {json_text(name, 80)} nests a value deeper than {_SERVED_DEPTH} "
                    f"levels, which dbhandles cannot send back (records nest at most {MAX_DEPTH})",
                    field="config.path",
                )
            if depth > MAX_DEPTH:
                found = _lost(record, "", 0)
                where = f"{found[0]}: " if found and found[0] else ""
                return (
                    f"record {json_text(record['id'], 80)} of collection {json_text(name, 80)}: "
                    f"{where}nests deeper than {MAX_DEPTH} levels"
                )
    return None


def _deepest(record: dict[str, Any], cap: int) -> int:
    """The nesting of the deepest value of ``record`` (a field's value is level 1), counted up to
    just past ``cap``. Without recursion: a file may nest 1024 levels (orjson's bound)."""
    deepest = 0
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(record, 0)]
    while stack:
        container, depth = stack.pop()
        if not container:
            continue
        if depth + 1 > deepest:
            deepest = depth + 1
            if deepest > cap:
                return deepest
        for item in container.values() if isinstance(container, dict) else container:
            if isinstance(item, dict | list):
                stack.append((item, depth + 1))
    return deepest


class _Lost:
    """What ``_unkept``'s second reading puts where orjson's reading loses a value: an integer
    outside [-2**63, 2**64) (orjson reads it as an inexact float) or a key's earlier value."""

    def __init__(self, why: str) -> None:
        self.why = why


def _exact_int(literal: str) -> int | _Lost:
    if len(literal) <= 20 and -(2**63) <= int(literal) < 2**64:
        return int(literal)
    return _Lost(
        f"holds the integer {literal[:40]}, past 64 bits, which dbhandles reads as an inexact "
        "float (store big numbers as strings)"
    )


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        obj[key] = _Lost(f"repeats the key {json_text(key, 40)}") if key in obj else value
    return obj


def _unkept(raw: bytes, doc: dict[str, Any]) -> str | None:
    """Why the file ``raw`` (read by orjson as ``doc``) cannot be written back as it is, naming the
    record and field, or ``None``: every value of it survives a rewrite (docs/filters.md "Values").

    Called after ``_twice_or_deep``, which checks ids and nesting whatever the file's form. A file
    dbhandles wrote is exactly orjson's text of ``doc`` (compact or ``pretty``), which one
    ``orjson.dumps`` confirms; only a file edited by hand is read a second time, by ``json``, for
    what orjson reads inexactly or drops: an integer past 64 bits, a key twice. U+0000 and integers
    in [2**63, 2**64) are kept exactly by a rewrite."""
    if raw in (orjson.dumps(doc), orjson.dumps(doc, option=orjson.OPT_INDENT_2)):
        return None
    try:
        again = json.loads(raw, object_pairs_hook=_pairs, parse_int=_exact_int)
    except RecursionError:
        return f"nests a value deeper than {MAX_DEPTH} levels"
    except ValueError:  # pragma: no cover - orjson read it
        return None
    collections = again["collections"]
    if isinstance(collections, _Lost):  # the whole key given twice
        return f"the file {collections.why}"
    for name, records in collections.items():
        if isinstance(records, _Lost):
            return f"collection {json_text(name, 80)} is given twice"
        for index, record in enumerate(records):
            found = _lost(record, "", 0)
            if found is not None:
                where, why = found
                place = f"{where}: " if where else ""
                record_id = doc["collections"][name][index]["id"]  # as orjson read it: one id
                return (
                    f"record {json_text(record_id, 80)} of collection "
                    f"{json_text(name, 80)}: {place}{why}"
                )
    return None


def _lost(value: Any, where: str, depth: int) -> tuple[str, str] | None:
    """The path (``member_path``) and why of the first value ``value`` (at nesting ``depth``, 0 for
    a record) loses in a rewrite, or ``None``."""
    if isinstance(value, _Lost):
        return where, value.why
    if depth > MAX_DEPTH:
        return where, f"nests deeper than {MAX_DEPTH} levels"
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, _Lost) and item.why.startswith("repeats"):
                return where, item.why
            found = _lost(item, member_path(where, key), depth + 1)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _lost(item, item_path(where, index), depth + 1)
            if found is not None:
                return found
    return None


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
            _read(path)  # a file that cannot be rewritten opens read-only (_unkept)
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
        #: Why the file as loaded must not be rewritten (``_unkept``), or ``None``.
        self._unkept: str | None = None

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
            self._unkept = None
            self._write(self.store.dump())
        elif signature != self._loaded:
            collections, self._unkept = _read(self.path)
            self.store.load(collections)
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
        with self._lock:
            self.connect()
            self._write(self.store.dump())
