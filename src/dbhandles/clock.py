"""Timestamps: ISO-8601 UTC strings for records and envelopes, epoch milliseconds for handles."""

from __future__ import annotations

import time

__all__ = ["iso_from_epoch", "iso_now", "now_ms"]

# Formatting is the slow bit of a timestamp: the date part changes once a second and the whole text
# once a millisecond, while a busy process asks many times a millisecond (an envelope and an audit
# row per command). The last text of each is kept as one tuple, so that a thread that reads it
# while another replaces it sees an old pair or a new pair, never a key with another's text.
_last_second: tuple[int, str] = (-1, "")
_last_milli: tuple[int, str] = (-1, "")


def iso_from_epoch(t: float) -> str:
    """ISO-8601 UTC with milliseconds and a ``Z`` for a ``time.time()`` value."""
    global _last_second, _last_milli
    second = int(t)
    fraction = int((t - second) * 1000)
    milli = second * 1000 + fraction  # the text's own parts: the same key, the same text
    known = _last_milli
    if known[0] == milli:
        return known[1]
    day = _last_second
    if day[0] != second:
        day = _last_second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    text = f"{day[1]}.{fraction:03d}Z"
    _last_milli = (milli, text)
    return text


def iso_now() -> str:
    """ISO-8601 UTC with milliseconds and a ``Z`` (``2026-11-28T00:23:28.123Z``)."""
    return iso_from_epoch(time.time())


def now_ms() -> int:
    """Milliseconds since the epoch."""
    return int(time.time() * 1000)
