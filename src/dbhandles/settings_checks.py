"""How a setting's text is read, and which values each number setting allows (``Settings``).

One rule for every setting: a value that cannot be read, or that the setting does not allow, is a
``ValueError`` whose message names the variable, the value as given and what is allowed
(``DBHANDLES_PUBLIC_BURST: "nan" is not allowed: a whole number, at least 1``). Every number
setting has a ``Bound`` here (a test checks none is missing): its smallest useful value, and what 0
means when 0 is allowed below it (``no limit``, ``automatic``...): never a value that starts a server
that then refuses or stalls everything.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BOUNDS",
    "MAX_NUMBER",
    "Bound",
    "allowed_text",
    "check_number",
    "parse_setting",
]

#: The largest number any setting takes (2**53: every integer up to it is exact as a float too).
MAX_NUMBER = 2**53
_WHOLE = re.compile(r"[+]?[0-9]+(_[0-9]+)*")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True, slots=True)
class Bound:
    """What a number setting allows: 0 when ``zero`` says what it means, else at least ``minimum``
    (more than ``minimum`` when ``exclusive``: a duration that must not be 0)."""

    minimum: float = 0
    zero: str | None = None
    exclusive: bool = False


_COUNT = Bound(1)
_NO_LIMIT = Bound(1, "no limit")
_POSITIVE_SECONDS = Bound(0, exclusive=True)
_SECONDS = Bound(0)
#: A deadline or a rate below a tenth (of a second, a request a second) is no setting anyone means:
#: ``DBHANDLES_HEADER_TIMEOUT_SECONDS=1e-9`` cut every request before its head was read, and
#: ``DBHANDLES_PUBLIC_RATE=1e-320`` refused every request without a token for good (issue 13).
_DEADLINE = Bound(0.1)
_LEAST_RATE = 0.1

#: Every number setting's bound, by field name.
BOUNDS: dict[str, Bound] = {
    "default_limit": _COUNT,
    "max_limit": _COUNT,
    "query_page_size": _COUNT,
    "cursor_ttl_seconds": _DEADLINE,
    "idle_release_seconds": _POSITIVE_SECONDS,
    "max_open_databases": Bound(1, "a sixth of the open-files limit"),
    "max_body_bytes": _COUNT,
    "query_timeout_ms": _NO_LIMIT,
    "max_handles_per_actor": _COUNT,
    "job_threads": _COUNT,
    "max_jobs_per_actor": _COUNT,
    "job_process_bytes": Bound(1, "every job in a child process"),
    "job_retention_seconds": _SECONDS,
    "shutdown_grace_seconds": _SECONDS,
    "max_cursors_per_actor": _COUNT,
    "max_cursor_spec_bytes": _COUNT,
    "body_timeout_seconds": _DEADLINE,
    "max_connections": _COUNT,
    "max_connections_per_address": _COUNT,
    "header_timeout_seconds": _DEADLINE,
    "max_header_bytes": _NO_LIMIT,
    "keep_alive_seconds": _SECONDS,
    "public_requests_per_address": _COUNT,
    "public_rate": Bound(_LEAST_RATE, "no limit"),
    "public_burst": _COUNT,
    "public_write_timeout_seconds": Bound(_DEADLINE.minimum, "no limit"),
    # A socket's bursts are a quarter of its rates (server/ws_wire.py): at least one frame, and 1 KiB.
    "ws_frames_per_second": Bound(4, "the default, 2000"),
    "ws_bytes_per_second": Bound(4096, "the default, 16 MiB"),
    "max_unsent_bytes_per_actor": _NO_LIMIT,
    "max_uploads_per_actor": _COUNT,
    "max_sockets_per_actor": _COUNT,
    "max_subscriptions_per_actor": _COUNT,
    "ws_outbox_bytes": _COUNT,
    "ws_overflow_cooldown_seconds": Bound(0, "never", exclusive=True),
    "max_db_bytes": _NO_LIMIT,
    "max_memory_db_bytes": _NO_LIMIT,
    "memory_per_actor_bytes": _NO_LIMIT,
    "job_duty": Bound(0, exclusive=True),  # and at most 1: Settings.__post_init__
}


def _quoted(text: str) -> str:
    """``text`` as JSON, cut at 40 characters: a setting's value may be anything."""
    return json.dumps(text if len(text) <= 40 else f"{text[:40]}...")


def _number_text(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def allowed_text(name: str, integral: bool, *, most: bool = True) -> str:
    """What setting ``name`` allows, in words (``a whole number: 0 (no limit) or at least 1``;
    ``most``: with the largest number any setting takes, which the docs leave out)."""
    bound = BOUNDS[name]
    kind = "a whole number" if integral else "a number"
    least = "more than" if bound.exclusive else "at least"
    zero = f"0 ({bound.zero}) or " if bound.zero is not None else ""
    text = f"{kind}: {zero}{least} {_number_text(bound.minimum)}"
    return f"{text}, at most {MAX_NUMBER}" if most else text


def check_number(
    env: str, name: str, value: Any, shown: str | None = None, *, whole: bool = False
) -> None:
    """Refuse a number setting's value that ``BOUNDS[name]`` does not allow.

    Raises:
        ValueError: ``value`` is not a finite number in its bound (a ``bool``, or a fraction for a
            ``whole``-number setting, included); the message names ``env``, the value (``shown``: the
            text it was read from) and what is allowed.
    """
    bound = BOUNDS[name]
    integral = whole or isinstance(value, int)
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    ok = ok and (isinstance(value, int) or math.isfinite(value))
    if ok and whole and isinstance(value, float) and not value.is_integer():
        ok = False  # a fraction of a count
    if ok:
        if value == 0 and bound.zero is not None:
            return
        above = value > bound.minimum if bound.exclusive else value >= bound.minimum
        ok = above and value <= MAX_NUMBER
    if not ok:
        if shown is not None:  # the text as given
            shown = _quoted(shown)
        else:
            shown = (
                json.dumps(value) if isinstance(value, int | float | str) else _quoted(str(value))
            )
        raise ValueError(f"{env}: {shown} is not allowed: {allowed_text(name, integral)}")


def parse_setting(env: str, name: str, kind: object, raw: str) -> object:
    """The value of a ``DBHANDLES_*`` variable's text ``raw`` for the field ``name`` of type
    ``kind`` (a ``Settings`` annotation, as text): a path, folders separated by ``os.pathsep``, a
    list separated by ``,``, a boolean, a whole number, a number or text.

    Raises:
        ValueError: ``raw`` is not a value of ``kind`` (``nan``, ``1.5`` for a whole number,
            ``1e400``, ``maybe`` for a boolean); the message names ``env``, ``raw`` and what is allowed.
    """
    text = raw.strip()
    if kind in ("Path", "Path | None", Path):
        return Path(raw).expanduser()
    if kind in ("tuple[Path, ...] | None", "tuple[Path, ...]"):
        return tuple(Path(p).expanduser() for p in raw.split(os.pathsep) if p)
    if kind == "tuple[str, ...]":
        return tuple(p.strip() for p in raw.split(",") if p.strip())
    if kind in ("bool", bool):
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError(
            f"{env}: {_quoted(raw)} is not allowed: one of {', '.join(_TRUE + _FALSE)}"
        )
    if kind in ("int", int):
        if not _WHOLE.fullmatch(text):
            raise ValueError(
                f"{env}: {_quoted(raw)} is not allowed: {allowed_text(name, integral=True)}"
            )
        whole = int(text)
        check_number(env, name, whole, raw)
        return whole
    if kind in ("float", float):
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):  # text, nan, inf and 1e400 (inf once read)
            raise ValueError(
                f"{env}: {_quoted(raw)} is not allowed: {allowed_text(name, integral=False)}"
            )
        check_number(env, name, number, raw)
        return number
    return text if name == "default_access" else raw
