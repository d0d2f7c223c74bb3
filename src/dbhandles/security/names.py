"""Names an actor gives (memory databases) hold no character that could disguise them when shown.

A name is shown to people (``data/list-handles``, the audit log, ``jtag --format=table``) and compared
by eye: a control character (C0, DEL, C1), a format character (bidirectional controls and marks,
zero-width characters, the byte order mark) or a line or paragraph separator in it could make two
names look alike or reorder what a terminal shows. Names refuse them; data values (record ids, fields)
keep them, and every output format of ``jtag`` escapes them (``cli/output.py``).

Actor names follow one rule wherever a command names an actor to act on (``token/create``,
``data/grant``, ``data/revoke``, ``data/list-grants``' filter, an administrator's
``permissions.owner``): ``check_actor_name``. Filters of the audit log stay lenient (they read).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from dbhandles.context import ACTOR_PATTERN
from dbhandles.errors import InvalidParams
from dbhandles.values import UNSHOWABLE, UNSHOWABLE_BEYOND_C0, UNSHOWABLE_CLASS, json_text

__all__ = [
    "RESERVED_ACTORS",
    "UNSHOWABLE",
    "UNSHOWABLE_BEYOND_C0",
    "UNSHOWABLE_CLASS",
    "check_actor_name",
    "check_memory_name",
    "check_name",
]

#: Actor names only administrators may carry: the in-process local user, the server's own admin
#: token, and the labels the audit log gives refused requests.
RESERVED_ACTORS = frozenset({"local", "admin", "anonymous", "invalid-token"})
_ACTOR = re.compile(ACTOR_PATTERN)
#: What two names that differ only in case are (the reason every check below gives).
_ONE_NAME = ("names that differ only in case are one name to a reader (and one data space on a "
             "case-insensitive file system)")  # fmt: skip

# UNSHOWABLE, UNSHOWABLE_CLASS and UNSHOWABLE_BEYOND_C0 live in dbhandles.values (a lower layer:
# every error message escapes them) and are re-exported here, where names are checked.


def check_name(name: str, field: str) -> str:
    """``name`` if it holds no ``UNSHOWABLE`` character.

    Raises:
        InvalidParams: a control, bidirectional-control or separator character, named by its code
            point and position.
    """
    bad = UNSHOWABLE.search(name)
    if bad is not None:
        raise InvalidParams(
            f"{field}: a name cannot contain control or invisible formatting characters: "
            f"U+{ord(bad.group()):04X} at position {bad.start()}",
            field=field,
        )
    return name


def check_memory_name(name: str, field: str) -> str:
    """``name`` if it may name a memory database (``check_name``, and no ``/``).

    Raises:
        InvalidParams: an ``UNSHOWABLE`` character, or ``/``.
    """
    check_name(name, field)
    if "/" in name:
        # '/' joins an actor and its names: nobody, administrators included, spells another
        # actor's memory database (an administrator's 'bob/notes' is not bob's 'notes').
        raise InvalidParams(
            f"{field}: '/' is reserved in memory database names (each actor's names are its "
            "own); choose a name without it",
            field=field,
        )
    return name


def check_actor_name(
    actor: str,
    field: str = "actor",
    *,
    reserved: bool = False,
    holders: Iterable[str] = (),
) -> str:
    """``actor`` if it may name an actor: the one rule of names (what ``token/create`` checks).

    Args:
        actor: the name as given.
        field: the param it came in, for the error.
        reserved: whether a reserved name (``RESERVED_ACTORS``: an administrator's) may be named,
            spelled exactly.
        holders: the names that hold (or held) a token; a name that equals one of them only
            ignoring case (``str.casefold``) is refused.

    Raises:
        InvalidParams: not ``ACTOR_PATTERN`` (letters, digits, ``_``, ``.``, ``@``, ``-``); a
            reserved name (without ``reserved``) or one that differs from it only in case; a name
            that differs from a token holder's only in case.
    """
    if not _ACTOR.fullmatch(actor):
        raise InvalidParams(
            f"{field}: {json_text(actor, 80)} is not a valid actor name (letters, digits, '_', '.', '@', '-')",
            field=field,
        )
    if actor in RESERVED_ACTORS and not reserved:
        raise InvalidParams(
            f"{field}: {json_text(actor, 80)} is reserved (the local user, the server's administrator, audit "
            "labels); choose another name, or create an administrator token (--admin)",
            field=field,
        )
    folded = actor.casefold()
    if folded in RESERVED_ACTORS and actor not in RESERVED_ACTORS:
        raise InvalidParams(
            f"{field}: {json_text(actor, 80)} differs from the reserved name {json_text(folded, 80)} only in case; "
            f"{_ONE_NAME}: choose another name",
            field=field,
        )
    for other in holders:
        if other != actor and other.casefold() == folded:
            raise InvalidParams(
                f"{field}: {json_text(actor, 80)} differs from the existing actor {json_text(other, 80)} only in case; "
                f"{_ONE_NAME}: use that name, or choose another",
                field=field,
            )
    return actor
