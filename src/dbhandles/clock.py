"""Timestamps: ISO-8601 UTC strings for records and envelopes, epoch milliseconds for handles."""

from __future__ import annotations

import time
from datetime import UTC, datetime

__all__ = ["iso_now", "now_ms"]


def iso_now() -> str:
    """ISO-8601 UTC with milliseconds and a ``Z`` (``2026-11-28T00:23:28.123Z``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def now_ms() -> int:
    """Milliseconds since the epoch."""
    return int(time.time() * 1000)
