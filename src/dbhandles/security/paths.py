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
- **A file is used by one name.** A file with other names (hard links, ``st_nlink > 1``) is a second
  name for a file wherever it lives (the administrator's token, another actor's data), so its place
  says nothing about whose file it is. Only the name the service knows it by is used
  (``dbfiles.know``: the home's default database, the name the handle store's book of names records
  for the file, ``security/file_names.py``, one a handle of this process opened); every other name
  is a link, for every caller. A remote non-admin actor's link is refused
  with the same words as any path outside its places, or, in its own data space, with words about
  the link (it is the actor's own folder), before and after the open (``confirm_read`` checks the
  opened descriptor, so a link swapped in between is caught too).
- **What a remote non-admin actor is shown** of a path (``shown``, ``shown_result``,
  ``mask_error``): never the home nor the data root (by default next to the home): its own files by
  their names in its space, others as ``<data>/...`` or ``<home>/...``.
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
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dbhandles.context import Context
from dbhandles.dbfiles import check_path_text, is_side_file, known_name, set_file_refusal
from dbhandles.errors import InvalidParams, PathNotAllowed
from dbhandles.file_kinds import set_read_check
from dbhandles.path_text import check_full_path
from dbhandles.pinned import (
    Made,
    begin_decided,
    changed,
    decide,
    end_decided,
    ensure,
    open_folder,
    remove_made,
)
from dbhandles.security.path_shown import (
    _ACTOR,
    DATA_SHOWN,
    FILE_RESULTS,
    HOME_SHOWN,
    _under,
    is_service_state,
    mask_error,
    shown,
    shown_result,
    shown_text,
)
from dbhandles.security.read_races import confirm_found, confirm_missing_at
from dbhandles.settings import Settings
from dbhandles.values import json_text

__all__ = [
    "DATA_SHOWN",
    "FILE_RESULTS",
    "HOME_SHOWN",
    "NOT_SHARED",
    "PRIVATE_MODE",
    "Place",
    "Purpose",
    "Resolved",
    "actor_space",
    "begin_call",
    "confirm_missing",
    "confirm_read",
    "end_call",
    "ensure_parent",
    "escape_target",
    "file_mode",
    "is_service_state",
    "mask_error",
    "note",
    "place_of",
    "real_path",
    "resolve",
    "resolved",
    "shown",
    "shown_result",
    "shown_text",
]

#: The mode of files and folders created for remote callers.
PRIVATE_MODE = 0o600
#: What a path is used for: a database to open, a data set to read, a file to write.
Purpose = Literal["database", "input", "output"]
#: Where a resolved path is, for the caller: ``local`` (in-process caller), ``admin`` (under the
#: administrators' roots), ``own`` (the actor's data space), ``read`` (a read root), ``other``
#: (elsewhere: only a database its owner shared).
Place = Literal["local", "admin", "own", "read", "other"]


@dataclass(frozen=True, slots=True)
class Resolved:
    """A path as given, its real path, and where that is for the caller; for a remote non-admin
    actor's read of an existing file, also that file's ``(st_dev, st_ino)`` when it was checked
    (``confirm_read`` compares the file actually opened with it)."""

    given: str
    path: Path
    place: Place
    identity: tuple[int, int] | None = None
    #: A remote non-admin input in its own space: its open is confirmed there (``read_races``).
    own_input: bool = False


# -- what one call resolved -------------------------------------------------------------------------


class _CallFiles:
    """What one call resolved (``by_field``) and the targets its audit row names (``notes``).

    A plain class with slots: every command makes one (a dataclass's ``default_factory`` fields
    cost a call each, ~0.3 µs of a point read's ~40)."""

    __slots__ = ("by_field", "decided", "notes")

    def __init__(self, decided: contextvars.Token[frozenset[str]]) -> None:
        self.notes: list[str] = []
        self.by_field: dict[str, Resolved] = {}
        self.decided = decided


_CALL: contextvars.ContextVar[_CallFiles | None] = contextvars.ContextVar(
    "dbhandles_call_files", default=None
)


def begin_call() -> contextvars.Token[_CallFiles | None]:
    """Start recording what one command resolves (``Service.execute``; nested calls get their own)."""
    return _CALL.set(_CallFiles(begin_decided()))


def end_call(token: contextvars.Token[_CallFiles | None]) -> str | None:
    """Stop recording; the real targets the call resolved, one per line (``None``: none).

    Each line is exactly one target: a backslash in a target is written ``\\\\`` and a line break
    ``\\n`` (``\\r`` for a carriage return), so no name splits into lines that read as other files.
    A path a caller gives cannot hold control characters (``dbfiles.check_path_text``), but a real
    path is where links lead, and a link may lead to any name."""
    files = _CALL.get()
    _CALL.reset(token)
    if files is None:
        return None
    end_decided(files.decided)
    if not files.notes:
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


def actor_space(settings: Settings, actor: str, *, create: bool = False) -> Path:
    """``<data root>/<actor>``: where a remote non-admin actor's relative names resolve; created
    (mode 0700, the data root too) when ``create``.

    Raises:
        PathNotAllowed: the actor's name cannot name a folder, or its space is a link or lies in
            the home.
    """
    if not _ACTOR.fullmatch(actor) or actor in (".", ".."):
        raise PathNotAllowed(
            f"actor {json_text(actor, 80)} has no data space (its name is not a folder name)"
        )
    root = settings.space_root()
    space = root / actor
    if create and not space.is_dir():
        _private_folders(root)
        with contextlib.suppress(FileExistsError):
            space.mkdir(mode=0o700)
    if os.path.lexists(space) and (space.is_symlink() or Path(os.path.realpath(space)) != space):
        raise PathNotAllowed(
            f"the data space of {json_text(actor, 80)} is a link; an administrator must fix it"
        )
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
    return PathNotAllowed(f"{field_name}: {json_text(shown)} {why}", field=field_name)


def resolve(
    settings: Settings,
    context: Context,
    given: str,
    field_name: str,
    purpose: Purpose,
    *,
    registered: Callable[[Path], bool] | None = None,
) -> Resolved:
    """The real path of ``given`` for ``context``, and where it is; refused if it may not go there.

    For a remote non-admin actor a relative name resolves in its data space (created on first use)
    and ``~`` means nothing; messages show the path as given, not where links lead.

    Args:
        registered: for a database, whether the handle store knows a database by this real path
            (an owner, a stored handle): a file with other names is then used by this name
            (``dbfiles.know``), unless the service already uses it by another.

    Raises:
        InvalidParams: no file system could take the path (``dbfiles.check_path_text``).
        PathNotAllowed: the home; outside every place the caller may reach (checked before the
            side-file rule: a side file's name outside them is answered as any path there); a
            side file; a name on the way changed while it was resolved (an ``OSError`` of the
            lookup).
    """
    text = check_path_text(given, field_name)
    try:
        return _resolve(settings, context, text, field_name, purpose, registered)
    except OSError as exc:  # a folder swapped while realpath walked it, say: never a 500
        raise changed(field_name, text) from exc


def _resolve(
    settings: Settings,
    context: Context,
    text: str,
    field_name: str,
    purpose: Purpose,
    registered: Callable[[Path], bool] | None,
) -> Resolved:
    tenant = not context.trusted_local and not context.is_admin
    if tenant:
        candidate = Path(text)
        if not candidate.is_absolute():
            candidate = actor_space(settings, context.actor, create=True) / candidate
    else:
        candidate = Path(os.path.expanduser(text))
    real = Path(os.path.realpath(candidate))
    # Too long in full (a relative name in a deep data space): the limit named, before any use.
    check_full_path(real, text, field_name)
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
    place = place_of(settings, context, real, purpose)
    if registered is not None and purpose == "database" and place is not None:
        _vouch(real, registered)
    identity = _tenant_read_identity(real, purpose) if tenant and place is not None else None
    if identity is _LINKED:
        if place == "own":
            raise _refuse(field_name, shown, _LINK_WORDS)
        if purpose == "database":
            raise PathNotAllowed(f"{field_name}: {NOT_SHARED}", field=field_name)
        place = None
    if place is None:
        if context.is_admin:
            roots = ", ".join(json_text(str(root)) for root in settings.roots())
            why = (f"is outside the allowed folders ({roots}); an administrator can add folders "
                   "with DBHANDLES_ALLOWED_ROOTS")  # fmt: skip
        else:
            why = _outside(purpose)
        raise _refuse(field_name, shown, why)
    # Only inside the caller's places: outside them a side file's name gets the answer of any
    # other path there, so the words never tell which folder is the home (docs/security.md).
    if not context.trusted_local and is_side_file(real):
        if place == "other":  # no database there can be shared: as any unshared path
            raise PathNotAllowed(f"{field_name}: {NOT_SHARED}", field=field_name)
        raise _refuse(
            field_name, shown, "is one of SQLite's own files (-wal, -shm, -journal) of a "
            "database; data commands never read or write it",
        )  # fmt: skip
    own_input = tenant and purpose == "input" and place == "own"
    found = Resolved(
        text, real, place, identity if isinstance(identity, tuple) else None, own_input
    )
    files = _CALL.get()
    if files is not None:
        files.by_field[field_name] = found
        decide(str(real))  # handed on as is: never resolved again (pinned.stays)
    return found


#: ``_tenant_read_identity``'s answer for a file with other names.
_LINKED = "linked"
#: What an actor is told of a link in its own data space (its own folder: no other actor's secret).
_LINK_WORDS = (
    "has other names (hard links) and is not the name this service uses its file by; a file is "
    "used by one name only: use that name, or remove this link"
)


def _vouch(real: Path, registered: Callable[[Path], bool]) -> None:
    """Let the handle store decide which name a file with other names is used by before anything
    else does: ``registered`` records its answer (``dbfiles.know``, vouched) when the store's book
    of names holds one (``security/file_names.py``)."""
    try:
        info = os.stat(real)
    except (OSError, ValueError):
        return
    if info.st_nlink > 1 and stat.S_ISREG(info.st_mode):
        registered(real)


def _linked(real: Path, info: os.stat_result) -> bool:
    """Whether ``real`` (``info``) is a regular file with other names that is not known by ``real``."""
    return stat.S_ISREG(info.st_mode) and info.st_nlink > 1 and known_name(info) != str(real)


def _tenant_read_identity(real: Path, purpose: Purpose) -> tuple[int, int] | str | None:
    """For a remote non-admin read (``input``, ``database``) of ``real``: ``_LINKED`` if it is a
    regular file with other names (hard links) that the service does not use by this name
    (``dbfiles.known_name``), else its ``(st_dev, st_ino)`` (``None``: not there or not a regular
    file; the command's own open reports that). For an ``output``, the identity of the regular
    file there (``lstat``; what the gate's refusals may speak of, ``_file_refusal``)."""
    try:
        info = os.lstat(real) if purpose == "output" else os.stat(real)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    if purpose == "output":
        return info.st_dev, info.st_ino
    return _LINKED if _linked(real, info) else (info.st_dev, info.st_ino)


def _kind_of(info: os.stat_result) -> str:
    """What a file system entry that is not a regular file is, in words."""
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _file_refusal(path: str, info: os.stat_result, exc: PathNotAllowed) -> PathNotAllowed:
    """The gate's refusal (``dbfiles.check_plain``) of the file ``info`` at ``path`` as the
    running call's caller is told it: words about the file (a database, other names...) only for
    the file this call checked in the caller's places; for a remote non-admin actor, any other
    file behind the name (a link or a folder swapped in after the check) is refused with the words
    of any path outside its places, so the answer never depends on a file it may not use."""
    files = _CALL.get()
    if files is None:
        return exc
    for found in files.by_field.values():
        if found.path != Path(path) or found.place in ("local", "admin"):
            continue
        if found.identity == (info.st_dev, info.st_ino):
            return exc
        field = exc.field or "path"
        if found.place == "own" and not stat.S_ISREG(info.st_mode):
            # Only a name to write is refused for not being a regular file, and then ``info`` is
            # the entry itself (``lstat``), in the caller's own space: told what it is, by the
            # name the caller gave.
            return _refuse(
                field,
                found.given,
                f"is {_kind_of(info)}; dbhandles writes only "
                "regular files it may replace (give a file name, such as out.jsonl)",
            )
        if found.place == "other":
            return PathNotAllowed(f"{field}: {NOT_SHARED}", field=field)
        return _refuse(field, found.given, _outside("output" if field == "output" else "input"))
    return exc


set_file_refusal(_file_refusal)


def confirm_read(fd: int, path: str | os.PathLike[str], field: str) -> None:
    """Check the file just opened (or looked up, ``O_PATH``) on ``fd`` from ``path`` against what this call resolved there:
    still one name (``st_nlink == 1``, or the name the service knows it by), for every remote caller
    (the local user's: ``dbfiles.open_plain``), and, for a non-admin, the very file checked. Nothing to
    check outside a call.

    Raises:
        PathNotAllowed: the opened file has other names or is not the file that was checked (a link
            swapped in after the check); to a remote non-admin actor with the words of any path
            outside its places.
    """
    files = _CALL.get()
    if files is None:
        return
    real = Path(os.fspath(path))
    for found in list(files.by_field.values()):
        if found.path != real:
            continue
        info = os.fstat(fd)
        if found.own_input:  # what was opened may be another folder's
            confirm_found(info, real, field, found.given)
        if not stat.S_ISREG(info.st_mode):
            continue
        if found.place in ("local", "admin"):
            if found.place == "admin" and _linked(real, info):
                raise _refuse(field, str(real), _LINK_WORDS)
            continue
        swapped = found.identity is not None and found.identity != (info.st_dev, info.st_ino)
        if _linked(real, info) or swapped:
            if found.place == "other":
                raise PathNotAllowed(f"{field}: {NOT_SHARED}", field=field)
            if found.place == "own" and not swapped:
                raise _refuse(field, found.given, _LINK_WORDS)
            raise _refuse(field, found.given, _outside("input"))


def confirm_missing(path: str | os.PathLike[str], field: str) -> None:
    """Before a read answers that ``path`` is missing (``not_found``): the name is missing from
    the caller's own folder, not only from one a swapped link led the open to (``read_races``).

    Raises:
        PathNotAllowed: a folder on the way is a link now, or the name is there (``changed``).
    """
    files = _CALL.get()
    real = Path(os.fspath(path))
    for found in list(files.by_field.values()) if files is not None else []:
        if found.path == real and found.own_input:
            confirm_missing_at(real, field, found.given)


# Every read open of a file (``dbfiles.open_plain``) and every SQLite connection
# (``dbfiles.connect_sqlite``) is checked against what the call decided (issue 12, round 22).
set_read_check(confirm_read)


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


def ensure_parent(found: Resolved, field: str = "path") -> list[Made]:
    """Create the missing folders of a path in the caller's own data space (mode 0700), and check
    that its folder is still where it was checked: each folder is opened (and made) in the one
    before it, from ``/``, without following a link (``pinned.open_folder``), so a folder swapped
    for a link meanwhile is refused and nothing is made where the link leads.

    Returns:
        The folders this call made (``pinned.remove_made`` removes them if the call is refused
        later); ``[]`` outside the caller's own space.

    Raises:
        InvalidParams: a parent named by the path is a file (``field`` names the param).
        PathNotAllowed: a link appeared on the way meanwhile, or a folder changed while it was
            walked (any other ``OSError``).
    """
    if found.place != "own":
        return []
    made: list[Made] = []
    try:
        os.close(open_folder(str(found.path.parent), field, found.given, make=True, made=made))
    except NotADirectoryError:
        remove_made(made)
        raise InvalidParams(
            f"{field}: {found.given}: a parent of this path is a file, not a folder",
            field=field,
        ) from None
    except OSError as exc:
        remove_made(made)
        raise changed(field, found.given) from exc
    except PathNotAllowed:
        remove_made(made)  # refused part of the way: what it made on the way goes
        raise
    ensure(str(found.path.parent))
    return made
