"""uvicorn's warnings of a client's mistakes (one line per request) as at most one line every 10 s.

A flood of malformed requests logged uvicorn's ``WARNING: Invalid HTTP request received.`` once per
request: 18,526 lines in 6 s from 50 clients, a log that grows without bound (issue 13).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable

__all__ = [
    "CLIENT_WARNINGS",
    "CLIENT_WARNING_SECONDS",
    "ClientWarningSummary",
    "summarize_client_warnings",
]

#: uvicorn's warnings (logger ``uvicorn.error``) of a client's mistake, one per request: summarized
#: by ``ClientWarningSummary``, at most one line each per ``CLIENT_WARNING_SECONDS``.
CLIENT_WARNINGS = frozenset({"Invalid HTTP request received.", "Unsupported upgrade request."})
CLIENT_WARNING_SECONDS = 10.0


class ClientWarningSummary(logging.Filter):
    """Let through one of each of ``CLIENT_WARNINGS`` per ``CLIENT_WARNING_SECONDS``, saying how
    many there were since the last one let through; drop the others. Every other record passes.

    Args:
        clock: ``time.monotonic`` (tests give their own).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.clock = clock
        #: Each warning's count since it was last told, and when that was (on ``clock``).
        self.counts: Counter[str] = Counter()
        self.told_at: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg
        if not isinstance(message, str) or message not in CLIENT_WARNINGS:
            return True
        self.counts[message] += 1
        now = self.clock()
        if now - self.told_at.get(message, -math.inf) < CLIENT_WARNING_SECONDS:
            return False
        self.told_at[message] = now
        record.msg = "%s: %d since the last such line (one line at most every %g s)"
        record.args = (message.rstrip("."), self.counts.pop(message), CLIENT_WARNING_SECONDS)
        return True


def summarize_client_warnings(name: str = "uvicorn.error") -> None:
    """Add a ``ClientWarningSummary`` (once) to the logger ``name``, where uvicorn and
    ``connections.limited_protocol`` log ``CLIENT_WARNINGS``."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, ClientWarningSummary) for f in logger.filters):
        logger.addFilter(ClientWarningSummary())
