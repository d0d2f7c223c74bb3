"""The ``sqlite`` adapter's config and the checks that run on its path before anything is opened."""

from __future__ import annotations

import os
import stat
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, WithJsonSchema, model_validator
from pydantic.alias_generators import to_camel

from dbhandles.adapters.base import FileConfig
from dbhandles.dbfiles import (
    PATH_SCHEMA,
    being_written,
    check_path_text,
    is_side_file,
    is_sqlite_database,
)
from dbhandles.errors import (
    DatabaseNotFound,
    InvalidConfig,
    InvalidParams,
    NotADatabase,
    StorageError,
)

__all__ = [
    "IMMUTABLE_CAVEAT",
    "MAYBE_IMMUTABLE_CAVEAT",
    "SQLITE_HEADER",
    "SqliteConfig",
    "canonical_path",
    "check_target",
    "folder_writable",
    "missing_database",
    "opened_read_only",
]

#: What a read-only handle says in its config once its connection reads the file with
#: ``immutable=1`` (``opened_read_only``).
IMMUTABLE_CAVEAT = (
    "the folder of this database is not writable here and SQLite could not read it in place (a "
    "database in WAL mode needs its -shm file), so it is read with immutable=1, a snapshot without "
    "locks. Writes other processes make while the handle is open are not seen, nor changes still "
    "in its -wal file (checkpoint it where it is writable)"
)
#: What it says before its first connection, in a folder this process cannot write.
MAYBE_IMMUTABLE_CAVEAT = (
    "the folder of this database is not writable here: if SQLite cannot read it in place (a "
    "database in WAL mode without its -shm file), it is read with immutable=1, a snapshot without "
    "locks that does not see changes still in its -wal file nor writes other processes make "
    "while the handle is open (list the handles again after a read to see which)"
)
#: How the last read-only connection to each database (its canonical path) opened it: ``True``
#: with ``immutable=1``. Read-only connections are shared per path (``connection_key``).
_IMMUTABLE: dict[str, bool] = {}


def opened_read_only(path: str, *, immutable: bool) -> None:
    """Record how a read-only connection opened ``path`` (its canonical path), for the caveat."""
    _IMMUTABLE[path] = immutable


#: The first 16 bytes of every SQLite 3 database file (what SQLite checks; dbhandles never reads them
#: itself, see ``dbhandles.dbfiles``).
SQLITE_HEADER = b"SQLite format 3\x00"


def _path_or_filename(schema: dict[str, Any]) -> None:
    """``path`` or its alias ``filename`` (a null ``path`` gives way to ``filename``)."""
    schema["required"] = [key for key in schema.get("required", ()) if key != "path"]
    if not schema["required"]:
        del schema["required"]
    schema["anyOf"] = [{"required": ["path"], "properties": {"path": {"type": "string"}}},
                       {"required": ["filename"], "properties": {"filename": {"type": "string"}}}]  # fmt: skip


class SqliteConfig(FileConfig):
    """Config of the ``sqlite`` adapter (camelCase on the wire, snake_case accepted too).

    ``path`` is required (``filename``, the original system's name for it, is accepted as an alias;
    ``path`` wins when both are given). ``wal``: ``true`` switches a writable database to WAL
    journaling (a lasting change to the file); omitted, only a database dbhandles creates (new or
    empty file) is put in WAL, and an existing one keeps its journal mode, so opening a database
    changes nothing in it; ``false`` never switches. ``busyTimeout`` is how long (ms) a writer waits
    for another, ``synchronous`` trades durability on power loss for speed. ``fieldNames``:
    ``camel`` serves the snake_case columns of tables dbhandles did not create as camelCase fields,
    with ``created_at``/``updated_at``/``version`` as the reserved fields (docs/foreign-tables.md).
    """

    model_config = ConfigDict(alias_generator=to_camel, json_schema_extra=_path_or_filename)

    filename: Annotated[str, WithJsonSchema(PATH_SCHEMA)] | None = Field(
        default=None, description="deprecated alias of path"
    )
    wal: bool | None = None
    busy_timeout: int = Field(default=5000, ge=0, le=3_600_000)
    synchronous: Literal["normal", "full"] = "normal"
    field_names: Literal["columns", "camel"] = "columns"

    @model_validator(mode="before")
    @classmethod
    def _filename_is_path(cls, data: Any) -> Any:
        # Folding the alias into ``path`` keeps ``public()`` showing the one canonical key.
        if isinstance(data, dict) and "filename" in data:
            data = dict(data)
            filename = data.pop("filename")
            if data.get("path") is None:
                data["path"] = filename
        return data

    def public(self) -> dict[str, Any]:
        """The config as ``list-handles`` shows it, with ``caveat`` when a read-only handle reads
        its file with ``immutable=1`` (``IMMUTABLE_CAVEAT``), or may, not connected yet, since its
        folder is not writable (``MAYBE_IMMUTABLE_CAVEAT``). A connection that read the file in
        place (its -shm and -wal were there to use) sees what others commit: no caveat."""
        shown = super().public()
        if not self.readonly:
            return shown
        immutable = _IMMUTABLE.get(self.path)
        if immutable:
            shown["caveat"] = IMMUTABLE_CAVEAT
        elif immutable is None and not folder_writable(self.path):
            shown["caveat"] = MAYBE_IMMUTABLE_CAVEAT
        return shown


def folder_writable(path: str) -> bool:
    """Whether this process may create files (SQLite's ``-shm`` and ``-wal``) next to ``path``."""
    folder = os.path.dirname(path) or "."
    # SQLite creates files with the effective ids: ask about those where the system can.
    if os.access in os.supports_effective_ids:
        return os.access(folder, os.W_OK, effective_ids=True)
    return os.access(folder, os.W_OK)


def canonical_path(path: str) -> str:
    """``path`` with ``~`` expanded and every symlink resolved (the file need not exist)."""
    try:
        check_path_text(path, "config.path")
    except InvalidParams as exc:
        raise InvalidConfig(exc.message, field="config.path") from exc
    return os.path.realpath(os.path.expanduser(path))


def check_target(path: str, *, probe: bool = True) -> bool:
    """Whether ``path`` exists; raise if it exists but is not an SQLite database file.

    Only ``stat`` and SQLite itself look at the file (``probe``): never a plain ``open()``, which in a
    process holding a connection to the file would release that connection's locks (see
    ``dbhandles.dbfiles``). Without ``probe`` the content is left for the connection to check.

    Raises:
        InvalidConfig: a parent of ``path`` is not a folder.
        NotADatabase: a folder, a device, or a file SQLite does not recognise.
        StorageError: the file cannot be inspected.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return False
    except NotADirectoryError as exc:
        raise InvalidConfig(
            f"config.path: {path}: a parent of this path is not a folder", field="config.path"
        ) from exc
    except OSError as exc:
        raise StorageError(f"cannot inspect {path}: {exc.strerror}") from exc
    if stat.S_ISDIR(info.st_mode):
        raise NotADatabase(f"{path} is a folder, not an SQLite database file")
    if not stat.S_ISREG(info.st_mode):
        raise NotADatabase(f"{path} is a device or special file, not an SQLite database file")
    if info.st_nlink > 1:
        # Two names for one database file give two sets of side files (two write-ahead logs):
        # SQLite's "How To Corrupt" section 2.4. A hard link to a side file lands here too.
        raise NotADatabase(
            f"{path} has other names (hard links); SQLite cannot keep a database with several "
            "names consistent: open it by a name it alone has"
        )
    for suffix in ("-wal", "-shm", "-journal"):
        # SQLite opens these by itself, by name: a side file that is another database's (a hard
        # link planted next to this one) would make this connection read and write that database.
        try:
            side = os.lstat(f"{path}{suffix}")
        except OSError:
            continue
        if not stat.S_ISREG(side.st_mode) or side.st_nlink > 1:
            raise NotADatabase(
                f"{path}: its side file {os.path.basename(path)}{suffix} has other names (hard "
                "links) or is not a plain file; SQLite would read and write another database "
                "through it: remove it, or open a database whose side files are its own"
            )
    if being_written(path):
        raise NotADatabase(
            f"{path} is a data file this service is writing (an import's rejects, an export), "
            "not a database"
        )
    if is_side_file(path):
        raise NotADatabase(
            f"{path} is one of SQLite's own side files (-wal, -shm, -journal), not a database; "
            "open the database file it belongs to"
        )
    if probe and info.st_size and not is_sqlite_database(path):
        raise NotADatabase(f"{path} is not an SQLite database (it lacks the SQLite header)")
    return True


def missing_database(path: str) -> DatabaseNotFound:
    """The error for a database file that is not there (and may only be created on request)."""
    return DatabaseNotFound(
        f'{path} does not exist; open it with "mode": "create" to create a new database there'
    )
