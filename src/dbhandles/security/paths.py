"""The one path policy: where a data command may read, write or open a file, for whom.

Every file a command names (``data/open``'s ``config.path``, ``data/import``'s ``input``, ``output``
and ``rejects``, ``data/export``'s ``input`` and ``output``) is resolved here, once, to its real path
(``..`` and every symbolic link resolved), and decided on that real path. Its text is first held to
the one rule every door applies (``dbfiles.check_path_text``, also the params' ``Path`` type and every
file adapter's ``config.path``): no NUL and no other control character (C0, DEL, C1, U+2028, U+2029),
so no path name can break an audit row's ``target`` into lines that name other files.

- **The service's own state is never a target**, whoever asks: nothing inside the home (``default.sqlite``
  and its ``-wal``, ``admin.token``, ``server.json``, the CLI's session file), and for remote callers no
  ``-wal``/``-shm``/``-journal`` of any database (``dbfiles`` refuses those for every plain open too).
- **The local user** (in-process, ``Context.trusted_local``) may name any other path, as before.
- **A remote administrator** may name paths under ``DBHANDLES_ALLOWED_ROOTS`` (default: the data root
  and the temp folder).
- **A remote non-admin actor** never reads a file that has other names (hard links, ``st_nlink > 1``):
  a hard link is a second name for a file wherever it lives (the administrator's token, another
  actor's data), so its place says nothing about whose file it is. It is refused with the same words
  as any path outside the actor's places, before and after the open (``confirm_read`` checks the
  opened descriptor, so a link swapped in between is caught too).
- **A remote non-admin actor** works in its own data space, ``<data root>/<actor>/``: a relative name
  resolves there (``notes.sqlite`` is ``<data root>/alice/notes.sqlite``), and it is the only place the
  actor may create or write files. It may read data sets (import inputs, databases opened ``readonly``)
  under ``DBHANDLES_READ_ROOTS``, and open databases elsewhere only when their owner shared them
  (``place == "other"``: ``policy.AccessPolicy`` asks the handle store for an owner or a grant).

Files a command creates for a remote caller are private (``PRIVATE_MODE``); creation itself goes through
``dbfiles`` (``O_EXCL | O_NOFOLLOW``). What a command resolved is also kept for the length of the call
(``begin_call``/``resolved``), so the handler uses the very path that was checked, and the audit row
names it (``end_call``), refused attempts included.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from dbhandles.context import ACTOR_PATTERN, Context
from dbhandles.dbfiles import check_path_text, is_side_file
from dbhandles.errors import InvalidParams, PathNotAllowed
from dbhandles.settings import Settings

__all__ = [
    "NOT_SHARED",
    "PRIVATE_MODE",
    "Place",
    "Purpose",
    "Resolved",
    "actor_space",
    "begin_call",
    "confirm_read",
    "end_call",
    "ensure_parent",
    "escape_target",
    "file_mode",
    "is_service_state",
    "note",
    "place_of",
    "real_path",
    "resolve",
    "resolved",
]

#: The mode of files and folders created for remote callers.
PRIVATE_MODE = 0o600
#: What a path is used for: a database to open, a data set to read, a file to write.
Purpose = Literal["database", "input", "output"]
#: Where a resolved path is, for the caller: ``local`` (in-process caller), ``admin`` (under the
#: administrators' roots), ``own`` (the actor's data space), ``read`` (a read root), ``other``
#: (elsewhere: only a database its owner shared).
Place = Literal["local", "admin", "own", "read", "other"]
_ACTOR = re.compile(ACTOR_PATTERN)


@dataclass(frozen=True, slots=True)
class Resolved:
    """A path as given, its real path, and where that is for the caller; for a remote non-admin
    actor's read of an existing file, also that file's ``(st_dev, st_ino)`` when it was checked
    (``confirm_read`` compares the file actually opened with it)."""

    given: str
    path: Path
    place: Place
    identity: tuple[int, int] | None = None


# -- what one call resolved -------------------------------------------------------------------------


@dataclass(slots=True)
class _CallFiles:
    notes: list[str] = field(default_factory=list)
    by_field: dict[str, Resolved] = field(default_factory=dict)


_CALL: contextvars.ContextVar[_CallFiles | None] = contextvars.ContextVar(
    "dbhandles_call_files", default=None
)


def begin_call() -> contextvars.Token[_CallFiles | None]:
    """Start recording what one command resolves (``Service.execute``; nested calls get their own)."""
    return _CALL.set(_CallFiles())


def end_call(token: contextvars.Token[_CallFiles | None]) -> str | None:
    """Stop recording; the real targets the call resolved, one per line (``None``: none).

    Each line is exactly one target: a backslash in a target is written ``\\\\`` and a line break
    ``\\n`` (``\\r`` for a carriage return), so no name splits into lines that read as other files.
    A path a caller gives cannot hold control characters (``dbfiles.check_path_text``), but a real
    path is where links lead, and a link may lead to any name."""
    files = _CALL.get()
    _CALL.reset(token)
    if files is None or not files.notes:
        return None
    return "\n".join(map(escape_target, dict.fromkeys(files.notes)))


def escape_target(target: str) -> str:
    """``target`` as one line of an audit row's ``target``: ``\\`` → ``\\\\``, then line breaks
    (``\\n``, ``\\r``, U+2028, U+2029, U+0085) as backslash escapes."""
    return target.translate(_TARGET_ESCAPES)


_TARGET_ESCAPES = str.maketrans(
    {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\x85": "\\x85", "\u2028": "\\u2028",
     "\u2029": "\\u2029"}
)  # fmt: skip


def note(target: str) -> None:
    """Name a real target of the running call in its audit row."""
    files = _CALL.get()
    if files is not None:
        files.notes.append(target)


def resolved(field_name: str, given: str) -> Resolved | None:
    """What this call already resolved for ``field_name`` from the text ``given``, if it did."""
    files = _CALL.get()
    found = files.by_field.get(field_name) if files is not None else None
    return found if found is not None and found.given == given else None


# -- places ----------------------------------------------------------------------------------------


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def is_service_state(settings: Settings, real: Path) -> bool:
    """Whether ``real`` is the home or inside it (the default database and its side files, the
    tokens, ``server.json``, session files)."""
    home = Path(os.path.realpath(settings.home))
    return _under(real, home) or _under(real, Path(os.path.abspath(settings.home)))


def actor_space(settings: Settings, actor: str, *, create: bool = False) -> Path:
    """``<data root>/<actor>``: where a remote non-admin actor's relative names resolve; created
    (mode 0700, the data root too) when ``create``.

    Raises:
        PathNotAllowed: the actor's name cannot name a folder, or its space is a link or lies in
            the home.
    """
    if not _ACTOR.fullmatch(actor) or actor in (".", ".."):
        raise PathNotAllowed(f"actor {actor!r} has no data space (its name is not a folder name)")
    root = settings.space_root()
    space = root / actor
    if create and not space.is_dir():
        _private_folders(root)
        with contextlib.suppress(FileExistsError):
            space.mkdir(mode=0o700)
    if os.path.lexists(space) and (space.is_symlink() or Path(os.path.realpath(space)) != space):
        raise PathNotAllowed(f"the data space of {actor!r} is a link; an administrator must fix it")
    if is_service_state(settings, space):
        raise PathNotAllowed("the data root lies in the home; set DBHANDLES_DATA_ROOT elsewhere")
    return space


def _private_folders(folder: Path) -> None:
    """Create ``folder`` and each missing parent with mode 0700 (``mkdir(parents=True)`` gives the
    parents the umask's mode, usually 0755, whatever ``mode`` says).

    Raises:
        FileExistsError, NotADirectoryError: a part of the path is a file.
        OSError: a folder cannot be created.
    """
    missing: list[Path] = []
    while not folder.is_dir():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for part in reversed(missing):
        with contextlib.suppress(FileExistsError):
            part.mkdir(mode=0o700)
        if not part.is_dir():
            raise NotADirectoryError(str(part))


def place_of(settings: Settings, context: Context, real: Path, purpose: Purpose) -> Place | None:
    """Where the real path ``real`` is for ``context`` (``None``: nowhere it may go)."""
    if context.trusted_local:
        return "local"
    if context.is_admin:
        return "admin" if any(_under(real, root) for root in settings.roots()) else None
    if _under(real, actor_space(settings, context.actor)):
        return "own"
    if purpose != "output" and any(_under(real, r) for r in settings.resolved_read_roots()):
        return "read"
    return "other" if purpose == "database" else None


def file_mode(context: Context) -> int:
    """The mode of a file created for ``context``: private for remote callers, the umask's for the
    local user (as before)."""
    return 0o666 if context.trusted_local else PRIVATE_MODE


#: What a remote non-admin actor is told of a database path outside its places that nobody shared
#: with it: the same whether a file is there or not, whoever owns it (``policy``), or the home.
NOT_SHARED = (
    "this path is outside your data space and the read roots, and no database there is shared "
    "with you (its owner can share one, with data/grant)"
)


def _outside(purpose: Purpose) -> str:
    """Why a remote non-admin actor may not name a path: the same words wherever it points."""
    if purpose == "output":
        return ("is outside your data space: files are written only there (give a relative "
                "name, such as out.jsonl)")  # fmt: skip
    return ("is outside your data space and the folders an administrator allowed for reading "
            "(DBHANDLES_READ_ROOTS)")  # fmt: skip


def _refuse(field_name: str, shown: str, why: str) -> PathNotAllowed:
    return PathNotAllowed(f"{field_name}: {shown} {why}", field=field_name)


def resolve(
    settings: Settings, context: Context, given: str, field_name: str, purpose: Purpose
) -> Resolved:
    """The real path of ``given`` for ``context``, and where it is; refused if it may not go there.

    For a remote non-admin actor a relative name resolves in its data space (created on first use)
    and ``~`` means nothing; messages show the path as given, not where links lead.

    Raises:
        InvalidParams: no file system could take the path (``dbfiles.check_path_text``).
        PathNotAllowed: the home or a side file; outside every place the caller may reach.
    """
    text = check_path_text(given, field_name)
    tenant = not context.trusted_local and not context.is_admin
    if tenant:
        candidate = Path(text)
        if not candidate.is_absolute():
            candidate = actor_space(settings, context.actor, create=True) / candidate
    else:
        candidate = Path(os.path.expanduser(text))
    real = Path(os.path.realpath(candidate))
    note(str(real))
    shown = text if tenant else str(real)
    if is_service_state(settings, real) and not tenant:
        raise _refuse(
            field_name, shown, "is part of the service's own state (its home: the default "
            "database, tokens, server.json); data commands never read or write it",
        )  # fmt: skip
    if is_service_state(settings, real):
        # Never inside a tenant's places: answered as any other path outside them, so that the
        # answer does not tell where the home is.
        if purpose == "database":
            raise PathNotAllowed(f"{field_name}: {NOT_SHARED}", field=field_name)
        raise _refuse(field_name, shown, _outside(purpose))
    if not context.trusted_local and is_side_file(real):
        raise _refuse(
            field_name, shown, "is one of SQLite's own files (-wal, -shm, -journal) of a "
            "database; data commands never read or write it",
        )  # fmt: skip
    place = place_of(settings, context, real, purpose)
    identity = _tenant_read_identity(real, purpose) if tenant and place is not None else None
    if identity is _LINKED:
        if purpose == "database":
            raise PathNotAllowed(f"{field_name}: {NOT_SHARED}", field=field_name)
        place = None
    if place is None:
        if context.is_admin:
            roots = ", ".join(map(str, settings.roots()))
            why = (f"is outside the allowed folders ({roots}); an administrator can add folders "
                   "with DBHANDLES_ALLOWED_ROOTS")  # fmt: skip
        else:
            why = _outside(purpose)
        raise _refuse(field_name, shown, why)
    found = Resolved(text, real, place, identity if isinstance(identity, tuple) else None)
    files = _CALL.get()
    if files is not None:
        files.by_field[field_name] = found
    return found


#: ``_tenant_read_identity``'s answer for a file with other names.
_LINKED = "linked"


def _tenant_read_identity(real: Path, purpose: Purpose) -> tuple[int, int] | str | None:
    """For a remote non-admin read (``input``, ``database``) of ``real``: ``_LINKED`` if it is a
    regular file with other names (hard links), else its ``(st_dev, st_ino)`` (``None``: not there
    or not a regular file; the command's own open reports that)."""
    if purpose == "output":
        return None
    try:
        info = os.stat(real)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return _LINKED if info.st_nlink > 1 else (info.st_dev, info.st_ino)


def confirm_read(fd: int, path: str | os.PathLike[str], field: str) -> None:
    """Check the file just opened on ``fd`` from ``path`` against what this call resolved there for
    a remote non-admin read: still one name (``st_nlink == 1``) and the same file (device, inode)
    that was checked. Nothing to check for other callers, or outside a call.

    Raises:
        PathNotAllowed: the opened file has other names or is not the file that was checked (a link
            swapped in after the check), with the words of any path outside the caller's places.
    """
    files = _CALL.get()
    if files is None:
        return
    real = Path(os.fspath(path))
    for found in list(files.by_field.values()):
        if found.path != real or found.place not in ("own", "read", "other"):
            continue
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            continue
        swapped = found.identity is not None and found.identity != (info.st_dev, info.st_ino)
        if info.st_nlink > 1 or swapped:
            if found.place == "other":
                raise PathNotAllowed(f"{field}: {NOT_SHARED}", field=field)
            raise _refuse(field, found.given, _outside("input"))


def real_path(settings: Settings, context: Context, given: object) -> Path | None:
    """Where ``resolve`` would find ``given`` for ``context``, without deciding, creating or noting
    anything (``None``: not a path text, or an actor without a data space): what the audit log uses
    to name the database a refused call named by its file.
    """
    try:
        text = check_path_text(given, "path") if isinstance(given, str) else None
        if text is None:
            return None
        if context.trusted_local or context.is_admin:
            return Path(os.path.realpath(os.path.expanduser(text)))
        candidate = Path(text)
        if not candidate.is_absolute():
            candidate = actor_space(settings, context.actor) / candidate
        return Path(os.path.realpath(candidate))
    except (InvalidParams, PathNotAllowed, OSError, ValueError):
        return None


def ensure_parent(found: Resolved, field: str = "path") -> None:
    """Create the missing folders of a path in the caller's own data space (mode 0700), and check
    that the path still resolves where it was checked.

    Raises:
        InvalidParams: a parent named by the path is a file (``field`` names the param).
        PathNotAllowed: a link appeared on the way meanwhile.
    """
    if found.place != "own":
        return
    parent = found.path.parent
    if not parent.is_dir():
        try:
            _private_folders(parent)
        except (FileExistsError, NotADirectoryError):
            raise InvalidParams(
                f"{field}: {found.given}: a parent of this path is a file, not a folder",
                field=field,
            ) from None
    if Path(os.path.realpath(found.path)) != found.path:
        raise PathNotAllowed(f"{found.given} changed while it was checked", field=None)
