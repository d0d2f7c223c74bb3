"""Timestamps: ISO-8601 UTC strings for records and envelopes, epoch milliseconds for handles."""

from __future__ import annotations

import time

__all__ = ["iso_from_epoch", "iso_now", "now_ms"]

# Formatting the date part is the slow bit of a timestamp; it changes once a second, so cache it.
_cached_second = -1
_cached_prefix = ""


def iso_from_epoch(t: float) -> str:
    """ISO-8601 UTC with milliseconds and a ``Z`` for a ``time.time()`` value."""
    global _cached_second, _cached_prefix
    second = int(t)
    if second != _cached_second:
        _cached_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _cached_second = second
    return f"{_cached_prefix}.{int((t - second) * 1000):03d}Z"


def iso_now() -> str:
    """ISO-8601 UTC with milliseconds and a ``Z`` (``2026-11-28T00:23:28.123Z``)."""
    return iso_from_epoch(time.time())


def now_ms() -> int:
    """Milliseconds since the epoch."""
    return int(time.time() * 1000)
