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
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

__all__ = [
    "BOUNDS",
    "LEAST_REQUEST_BYTES",
    "MAX_NUMBER",
    "MAX_QUERY_TIMEOUT_MS",
    "MAX_SECONDS",
    "Bound",
    "allowed_text",
    "check_number",
    "parse_setting",
]

#: The largest number any setting takes (2**53: every integer up to it is exact as a float too).
MAX_NUMBER = 2**53
#: The longest duration in seconds (about 31 years): every use takes it, where 2**53 s did not all
#: (``threading``'s waits overflow past about 9.2e9 s, a cursor's expiry is kept in milliseconds in a
#: 64-bit integer, a timestamp past the year 9999 cannot be written).
MAX_SECONDS = 10**9
#: The longest query budget: PostgreSQL's ``statement_timeout`` takes at most 2**31 - 1 ms (about
#: 24.8 days). ``DBHANDLES_QUERY_TIMEOUT_MS=99999999999999999999999`` was refused, but 2**53 was
#: taken, and every SQLite write then failed with ``OverflowError`` waiting for its lock (issue 13).
MAX_QUERY_TIMEOUT_MS = 2**31 - 1
#: The one number grammar of every number setting: ASCII digits, an optional leading ``-`` (``-0``
#: is 0; any other negative is refused by its bound), and for a ``float`` setting an optional
#: fraction and exponent. No ``+``, no ``_``, no spaces, no other script's digits: Python's ``int``
#: and ``float`` take ``1_000``, `` 7``, ``+5`` and ``\u0661\u0662`` (issue 13), which a reader of the
#: variable would not take for the number it starts.
_WHOLE = re.compile(r"-?[0-9]+", re.ASCII)
_DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]-?[0-9]+)?", re.ASCII)
#: A number's text is read only this long (``_exact``): longer, it is refused before ``Decimal`` or
#: ``int`` reads it. ``int`` of 5,000 digits raised Python's own "Exceeds the limit (4300 digits)"
#: without naming the variable, and ``Decimal("1e99999999999999999999999")`` raised
#: ``decimal.InvalidOperation``: a traceback at ``jtag serve`` (issue 13).
_MOST_CHARACTERS = 400
#: Digits of a number's exponent read at most: ``1e99999`` is past every bound already, and
#: ``1e-99999`` (not 0) below every least value.
_MOST_EXPONENT_DIGITS = 5
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True, slots=True)
class Bound:
    """What a number setting allows: 0 when ``zero`` says what it means, else at least ``minimum``
    (more than ``minimum`` when ``exclusive``: a duration that must not be 0) and at most
    ``maximum``."""

    minimum: float = 0
    zero: str | None = None
    exclusive: bool = False
    #: The largest value, when less than ``MAX_NUMBER`` (a share: at most 1; a duration:
    #: ``MAX_SECONDS``; the query budget: ``MAX_QUERY_TIMEOUT_MS``).
    maximum: float = MAX_NUMBER


_COUNT = Bound(1)
_NO_LIMIT = Bound(1, "no limit")
#: A deadline or a rate below a tenth (of a second, a request a second) is no setting anyone means:
#: ``DBHANDLES_HEADER_TIMEOUT_SECONDS=1e-9`` cut every request before its head was read,
#: ``DBHANDLES_PUBLIC_RATE=1e-320`` refused every request without a token for good, and
#: ``DBHANDLES_KEEP_ALIVE_SECONDS=1e-320`` closed every connection after one answer (issue 13).
_DEADLINE = Bound(0.1, maximum=MAX_SECONDS)
_LEAST_RATE = 0.1
#: A duration where 0 means "none" (not kept, no wait): otherwise at least a tenth of a second.
_SECONDS_OR_NONE = Bound(0.1, "none", maximum=MAX_SECONDS)

#: A size every request or message must fit in: ``DBHANDLES_MAX_HEADER_BYTES=1`` answered every
#: command 431 and ``DBHANDLES_MAX_BODY_BYTES=1`` every one 413 (issue 13). A KiB holds a request
#: head with a token, a command's body, a cursor's spec and a socket's answer.
LEAST_REQUEST_BYTES = 1024
_REQUEST_BYTES = Bound(LEAST_REQUEST_BYTES)

#: Every number setting's bound, by field name.
BOUNDS: dict[str, Bound] = {
    "default_limit": _COUNT,
    "max_limit": _COUNT,
    "query_page_size": _COUNT,
    "cursor_ttl_seconds": _DEADLINE,
    # Released a hundredth of a second after its last use: a database is then reopened by nearly
    # every command, which is the most a test means (a smaller value only adds reconnects).
    "idle_release_seconds": Bound(0.01, maximum=MAX_SECONDS),
    "max_open_databases": Bound(1, "a sixth of the open-files limit"),
    "max_body_bytes": _REQUEST_BYTES,
    "query_timeout_ms": Bound(1, "no limit", maximum=MAX_QUERY_TIMEOUT_MS),
    "max_handles_per_actor": _COUNT,
    "job_threads": _COUNT,
    "job_threads_per_actor": _COUNT,
    "max_jobs_per_actor": _COUNT,
    "job_process_bytes": Bound(1, "every job in a child process"),
    "job_retention_seconds": _SECONDS_OR_NONE,
    "shutdown_grace_seconds": _SECONDS_OR_NONE,
    "max_cursors_per_actor": _COUNT,
    "max_cursor_spec_bytes": _REQUEST_BYTES,
    "body_timeout_seconds": _DEADLINE,
    "max_connections": _COUNT,
    "max_connections_per_address": _COUNT,
    "header_timeout_seconds": _DEADLINE,
    "max_header_bytes": Bound(LEAST_REQUEST_BYTES, "no limit"),
    "keep_alive_seconds": _DEADLINE,
    "public_requests_per_address": _COUNT,
    "public_rate": Bound(_LEAST_RATE, "no limit"),
    "public_burst": _COUNT,
    "public_write_timeout_seconds": Bound(_DEADLINE.minimum, "no limit", maximum=MAX_SECONDS),
    # A socket's bursts are a quarter of its rates (server/ws_wire.py): at least one frame, and 1 KiB.
    "ws_frames_per_second": Bound(4, "the default, 2000"),
    "ws_bytes_per_second": Bound(4096, "the default, 16 MiB"),
    "max_unsent_bytes_per_actor": Bound(LEAST_REQUEST_BYTES, "no limit"),
    "max_uploads_per_actor": _COUNT,
    "max_requests_per_actor": _COUNT,
    "max_sockets_per_actor": _COUNT,
    "max_subscriptions_per_actor": _COUNT,
    "ws_outbox_bytes": _REQUEST_BYTES,
    "ws_overflow_cooldown_seconds": Bound(0.1, "never", maximum=MAX_SECONDS),
    "max_db_bytes": _NO_LIMIT,
    "max_memory_db_bytes": _NO_LIMIT,
    "memory_per_actor_bytes": _NO_LIMIT,
    # A job paused 99 times as long as it ran is the least share anyone means: at 1e-9 every job
    # slept the longest pause after each batch (issue 13).
    "job_duty": Bound(0.01, maximum=1),
    # Past a second a switch waits longer than any request should; under 10 us the switching is
    # all the threads do.
    "switch_interval_ms": Bound(0.01, maximum=1000),
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
    if bound.maximum < MAX_NUMBER:
        return f"{text}, at most {_number_text(bound.maximum)}"
    return f"{text}, at most {MAX_NUMBER}" if most else text


def check_number(
    env: str,
    name: str,
    value: Any,
    shown: str | None = None,
    *,
    whole: bool = False,
    exact: Decimal | None = None,
) -> None:
    """Refuse a number setting's value that ``BOUNDS[name]`` does not allow.

    Args:
        exact: the value as written (read from ``shown``), compared with the bounds in its place:
            ``1.0000000000000001`` is more than 1, though its float is 1.

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
        ok = _within(bound, value if exact is None else exact)
    if not ok:
        if shown is not None:  # the text as given
            shown = _quoted(shown)
        else:
            shown = (
                json.dumps(value) if isinstance(value, int | float | str) else _quoted(str(value))
            )
        raise ValueError(f"{env}: {shown} is not allowed: {allowed_text(name, integral)}")


def _within(bound: Bound, value: float | Decimal) -> bool:
    """Whether ``value`` is in ``bound``; a ``Decimal`` is compared with the bounds as the docs
    write them (``0.1``, not the float nearest to it)."""
    if value == 0 and bound.zero is not None:
        return True
    least: float | Decimal = bound.minimum
    most: float | Decimal = bound.maximum
    if isinstance(value, Decimal):
        least, most = Decimal(str(bound.minimum)), Decimal(str(bound.maximum))
    above = value > least if bound.exclusive else value >= least
    return above and value <= most


def _exact(raw: str) -> Decimal | None:
    """The number ``raw`` (``_DECIMAL``'s) writes, exactly; None when it is too long to read
    (``_MOST_CHARACTERS``) or its exponent is past ``_MOST_EXPONENT_DIGITS`` digits while it is not
    0 (``0e99999999999`` is 0): no setting allows such a number."""
    if len(raw) > _MOST_CHARACTERS:
        return None
    mantissa, _, exponent = raw.lower().partition("e")
    if not mantissa.lstrip("-").replace(".", "").strip("0"):
        return Decimal(0)
    if len(exponent.lstrip("-").lstrip("0")) > _MOST_EXPONENT_DIGITS:
        return None
    try:
        return Decimal(raw)
    except InvalidOperation:  # not reached for ``_DECIMAL``'s texts within the limits above
        return None


def parse_setting(env: str, name: str, kind: object, raw: str) -> object:
    """The value of a ``DBHANDLES_*`` variable's text ``raw`` for the field ``name`` of type
    ``kind`` (a ``Settings`` annotation, as text): a path, folders separated by ``os.pathsep``, a
    list separated by ``,``, a boolean, a whole number, a number or text.

    A number is read by one grammar (``_WHOLE``, ``_DECIMAL``) and compared with its bounds as the
    exact decimal it writes: ``9007199254740993.0`` (past ``MAX_NUMBER``) would be rounded to it as
    a float, and taken.

    Raises:
        ValueError: ``raw`` is not a value of ``kind`` (``nan``, ``1.5`` for a whole number,
            ``1e400``, ``1_000``, `` 7``, ``+5``, ``maybe`` for a boolean); the message names ``env``,
            ``raw`` and what is allowed.
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
        if not _WHOLE.fullmatch(raw):
            raise ValueError(
                f"{env}: {_quoted(raw)} is not allowed: {allowed_text(name, integral=True)}"
            )
        digits = raw.lstrip("-").lstrip("0")
        if len(raw) > _MOST_CHARACTERS or len(digits) > len(str(MAX_NUMBER)):
            check_number(env, name, math.nan, raw, whole=True)  # past every bound: not read
        whole = int(raw)
        check_number(env, name, whole, raw)
        return whole
    if kind in ("float", float):
        exact = _exact(raw) if _DECIMAL.fullmatch(raw) else None
        if exact is None:
            raise ValueError(
                f"{env}: {_quoted(raw)} is not allowed: {allowed_text(name, integral=False)}"
            )
        # Compared with its bounds as written, not as rounded: ``1e-400`` (whose float is 0, and 0
        # means "no limit" for some), ``9007199254740993`` (whose float is MAX_NUMBER),
        # ``1.0000000000000001`` for a share of at most 1 (whose float is 1).
        number = float(exact) + 0.0  # -0 is 0
        check_number(env, name, number, raw, exact=exact)
        return number
    return text if name == "default_access" else raw
