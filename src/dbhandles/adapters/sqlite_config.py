"""The ``sqlite`` adapter's config and the checks that run on its path before anything is opened."""

from __future__ import annotations

import functools
import os
import stat
import typing
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, WithJsonSchema, model_validator
from pydantic.alias_generators import to_camel

from dbhandles.adapters.base import FileConfig
from dbhandles.dbfiles import (
    PATH_SCHEMA,
    SIDE_SUFFIXES,
    being_written,
    check_names,
    check_path_text,
    is_side_file,
    is_sqlite_database,
    know,
    known_name,
    known_names,
)
from dbhandles.errors import (
    DatabaseNotFound,
    InvalidConfig,
    InvalidParams,
    NotADatabase,
    PathNotAllowed,
    StorageError,
)
from dbhandles.file_kinds import SQLITE_HEADER
from dbhandles.pinned import Pinned, changed, real, stays
from dbhandles.pinned_look import look
from dbhandles.values import json_text

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
    "read_immutable",
    "simple_config",
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
    #: SQLite's longest path (``SQLITE_MAX_PATHNAME``, 512 bytes with its end) less its longest
    #: side-file suffix (``-journal``): a longer full path fails with "unable to open database
    #: file" (504 bytes measured in ``tests/test_security_round20.py``).
    max_path_bytes: ClassVar[int | None] = 504
    #: Its longest side-file suffix, ``-journal`` (a name of 248 bytes opened, then failed at
    #: its first write with a vague ``storage_error``).
    own_suffix_bytes: ClassVar[int] = len("-journal")

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


#: The validators ``simple_config`` knows to change nothing in a config of text values other than
#: the path check it repeats: (the model's ``model_validator``s, its ``field_validator``s).
_KNOWN_VALIDATORS = (
    frozenset({"_integral_numbers", "_filename_is_path"}),  # numbers; ``filename`` (never simple)
    frozenset({"_path_text"}),  # ``FileConfig``'s: ``check_path_text``, repeated here
)


@functools.cache
def _simple_keys() -> Mapping[str, tuple[str, frozenset[str] | None]] | None:
    """What ``simple_config`` reads, off the model itself: each key (a field's wire name and its
    Python name) -> (the field, the values it takes: its ``Literal``'s, ``None`` for ``path``).

    ``None`` when the model has a validator this module does not know (every config then goes to
    the model). ``filename`` (folded into ``path`` by the model), ``wal`` and ``busyTimeout`` are
    no key here: a config naming them is read by the model.
    """
    decorators = SqliteConfig.__pydantic_decorators__
    known = (frozenset(decorators.model_validators), frozenset(decorators.field_validators))
    if known != _KNOWN_VALIDATORS or decorators.validators or decorators.root_validators:
        return None
    keys: dict[str, tuple[str, frozenset[str] | None]] = {}
    for name, info in SqliteConfig.model_fields.items():
        choices: frozenset[str] | None
        if name == "path":
            choices = None
        elif typing.get_origin(info.annotation) is Literal and not info.metadata:
            choices = frozenset(typing.get_args(info.annotation))
        else:
            continue
        for key in (info.alias or name, name):
            keys[key] = (name, choices)
    return keys


def simple_config(raw: Mapping[str, Any]) -> SqliteConfig | None:
    """``SqliteConfig.model_validate(raw)`` for a config of text values that the model takes as they
    are (``{"path": ..., "mode": ...}``: the default database's, at every start), made without
    building the model's validator; ``None`` for any other config, and for one the model would
    refuse, so that the model reads it and every error is still the model's.

    What comes out equals what the model makes: the same fields (defaults included, in declaration
    order) and the same fields set (tests/test_sqlite_simple_config.py checks both).
    """
    keys = _simple_keys()
    if keys is None:
        return None
    values: dict[str, Any] = {}
    for key, value in raw.items():
        spec = keys.get(key)
        if spec is None or type(value) is not str:
            return None
        name, choices = spec
        if name in values:
            return None  # given by its wire name and its Python name: the model decides
        if choices is None:
            try:
                check_path_text(value, "config.path")
            except InvalidParams:
                return None
            if not value:
                return None
        elif value not in choices:
            return None
        values[name] = value
    if "path" not in values:
        return None
    return SqliteConfig.model_construct(**values)


def read_immutable(path: str, *, readonly: bool) -> bool:
    """Whether a read-only handle that SQLite could not open in place reads ``path`` with
    ``immutable=1``: only when read-only and its folder is not writable here (otherwise the open's
    own error stands), and never when a side file holds what that would miss.

    ``immutable=1`` reads the main file alone: committed transactions still in a non-empty
    ``-wal`` (never checkpointed, its ``-shm`` gone) would be silently left out of every read,
    count and export, and a hot ``-journal``'s half-written pages read as they are. Without write
    access to the folder SQLite can use neither, so the only honest answer is an error.

    Raises:
        StorageError: naming the side file and what to do.
    """
    if not readonly or folder_writable(path):
        return False
    if _size(path + "-wal"):
        raise StorageError(
            f"the database {json_text(path)} is in WAL mode and its -wal file holds committed writes "
            "that cannot be read without write access to its folder (SQLite needs to create the "
            "-shm file beside it); reading the main file alone would silently miss them. Copy the "
            "database with its -wal file to a writable folder (or open it once where the folder "
            "is writable, which checkpoints it) and read it there",
            field="config.path",
        )
    # A rollback journal is read in place from a read-only folder unless it is hot (an
    # interrupted transaction SQLite must undo, which needs the folder): reaching here with one
    # that is not empty means that.
    if _size(path + "-journal"):
        raise StorageError(
            f"the database {json_text(path)} has a hot -journal (a transaction interrupted before "
            "it finished) that SQLite must roll back before the file can be read, which needs write "
            "access to its folder; copy the database with its -journal file to a writable folder "
            "and open it there",
            field="config.path",
        )
    return True


def _size(path: str) -> int:
    """The size of the side file ``path``, 0 when there is none (``stat``: opening and closing
    a file of a live database would release this process's locks on it, ``dbfiles``)."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


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
    given = os.path.expanduser(path)
    resolved = real(given, "config.path")  # a folder swapped meanwhile: refused, never a 500
    stays(given, resolved, "config.path")  # decided by the path policy: never resolved again
    return resolved


def check_target(path: str, *, probe: bool = True) -> bool:
    """Whether ``path`` exists; raise if it exists but is not an SQLite database file.

    Only ``stat`` and SQLite itself look at the file (``probe``): never a plain ``open()``, which in a
    process holding a connection to the file would release that connection's locks (see
    ``dbhandles.dbfiles``). Without ``probe`` the content is left for the connection to check.

    Raises:
        InvalidConfig: a parent of ``path`` is not a folder.
        NotADatabase: a folder, a device, or a file SQLite does not recognise; a side file that
            is not this database's own.
        PathNotAllowed: the file has other names (hard links) and ``path`` is not the one this
            service knows it by (``dbfiles.check_names``); a symbolic link appeared on ``path``
            (a canonical path) since it was resolved.
        StorageError: the file cannot be inspected.
    """
    try:
        moved = os.path.realpath(path) != path
    except OSError:  # a folder on the way swapped while realpath walked it
        moved = True
    if moved:
        # ``path`` is canonical (``canonical_path``, a stored handle's name): a symbolic link
        # that appeared on it since (the file or a folder swapped for one) leads to another file,
        # which would be opened past every check made on this name.
        raise PathNotAllowed(
            f"config.path: {json_text(str(path))} is now a symbolic link, or lies under one, to another place; "
            "a database is opened by its own name only: restore the file, or data/close this "
            "handle",
            field="config.path",
        )
    try:
        # In its folder pinned, not by the path: a folder swapped for a link after the check
        # above is refused (``changed``), and what another folder holds is never answered.
        looked = look(path, "config.path")
    except NotADirectoryError as exc:
        raise InvalidConfig(
            f"config.path: {json_text(str(path))}: a parent of this path is not a folder",
            field="config.path",
        ) from exc
    except OSError as exc:
        raise StorageError(f"cannot inspect {json_text(str(path))}: {exc.strerror}") from exc
    if looked is None:
        return False
    folder, info = looked
    with folder:
        if stat.S_ISLNK(info.st_mode):
            raise changed("config.path", path)
        _check_file(path, info, folder, probe=probe)
    return True


def _check_file(path: str, info: os.stat_result, folder: Pinned, *, probe: bool) -> None:
    """``check_target``'s checks of the file ``info`` (``lstat``) found at ``path`` in ``folder``."""
    if stat.S_ISDIR(info.st_mode):
        raise NotADatabase(f"{json_text(str(path))} is a folder, not an SQLite database file")
    if not stat.S_ISREG(info.st_mode):
        raise NotADatabase(
            f"{json_text(str(path))} is a device or special file, not an SQLite database file"
        )
    # Two names for one database file give two sets of side files (two write-ahead logs):
    # SQLite's "How To Corrupt" section 2.4. So a file with other names is opened only by the one
    # name this service knows it by (the home's default database, a registered or opened one):
    # a link planted to it is refused, never the database under its own name.
    check_names(path, info)
    for suffix in SIDE_SUFFIXES:
        # SQLite opens these by itself, by name: a side file that is another database's (a hard
        # link planted next to this one) would make this connection read and write that database.
        try:
            side = os.stat(f"{folder.name}{suffix}", dir_fd=folder.at(), follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(side.st_mode) and side.st_nlink == 1:
            know(f"{path}{suffix}")  # one name: this database's own, whatever links it later
        elif not stat.S_ISREG(side.st_mode) or not _own_side_file(path, suffix, side):
            raise NotADatabase(
                f"{json_text(str(path))}: its side file {json_text(os.path.basename(path) + suffix)} has other names (hard "
                "links) or is not a plain file; SQLite would read and write another database "
                "through it: remove it, or open a database whose side files are its own"
            )
    if being_written(path):
        raise NotADatabase(
            f"{json_text(str(path))} is a data file this service is writing (an import's rejects, an export), "
            "not a database"
        )
    if is_side_file(path):
        raise NotADatabase(
            f"{json_text(str(path))} is one of SQLite's own side files (-wal, -shm, -journal), not a database; "
            "open the database file it belongs to"
        )
    if probe and info.st_size and not is_sqlite_database(path):
        raise NotADatabase(
            f"{json_text(str(path))} is not an SQLite database (it lacks the SQLite header)"
        )


def _own_side_file(path: str, suffix: str, side: os.stat_result) -> bool:
    """Whether the side file ``path + suffix`` (``side`` from ``os.lstat``), which has other names,
    is still this database's own, decided by the first of:

    1. the name its file is known by (``dbfiles.know``: seen with one name next to its database,
       or the handle store's book of names, ``security/file_names.py``): this name or another;
    2. the names this process has it open by (``dbfiles.names_open``: SQLite keeps a
       connection's ``-wal`` and ``-shm`` open by the name it opened them by);
    3. else: the database is known by this very name, and the side file is no side file of
       another database this process knows.

    So a link planted next to one database to another's side file refuses the database it was
    planted next to, and a link made *to* a side file elsewhere is that link's problem, refused
    where it is named; the database whose side file it is keeps working under its own name."""
    own = f"{path}{suffix}"
    named = known_name(side)
    if named is not None:
        return named == own
    holders = names_open(side)
    if holders:
        if own not in holders:
            return False
        know(own, vouched=True)  # what a handle's open records in the book (file_names.py)
        return True
    try:
        info = os.stat(path)
    except OSError:
        return False
    if known_name(info) != path:
        return False
    return not any(name != path and _same_file(f"{name}{suffix}", side) for name in known_names())


def _same_file(path: str, info: os.stat_result) -> bool:
    try:
        other = os.lstat(path)
    except OSError:
        return False
    return (other.st_dev, other.st_ino) == (info.st_dev, info.st_ino)


def names_open(info: os.stat_result) -> set[str]:
    """The names by which this process has the file ``info`` describes open right now (Linux:
    ``/proc/self/fd``; empty elsewhere): SQLite keeps a connection's ``-wal`` and ``-shm`` open
    by the name it opened them by, so this tells whose side file an inode with several names is.
    """
    identity = (info.st_dev, info.st_ino)
    found: set[str] = set()
    try:
        descriptors = os.listdir("/proc/self/fd")
    except OSError:
        return found
    for fd in descriptors:
        link = f"/proc/self/fd/{fd}"
        try:
            opened = os.stat(link)
            if (opened.st_dev, opened.st_ino) == identity:
                found.add(os.readlink(link).removesuffix(" (deleted)"))
        except OSError:
            continue  # closed meanwhile (listdir's own descriptor among them)
    return found


def missing_database(path: str) -> DatabaseNotFound:
    """The error for a database file that is not there (and may only be created on request)."""
    return DatabaseNotFound(
        f"config.path: {json_text(path)} does not exist; open it with "
        '"mode": "create" to create a new database there',
        field="config.path",
    )
