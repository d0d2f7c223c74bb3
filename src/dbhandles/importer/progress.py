"""Progress on stderr: a redrawn bar on a terminal, a plain line every few seconds otherwise.

Both are throttled by the clock, not by the record count, so calling ``update`` after every batch costs
nothing measurable. ETA comes from the bytes read against the file size (compressed size for ``.gz``).
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import Protocol, TextIO

from dbhandles.importer.stats import ImportStats

__all__ = ["LineProgress", "NullProgress", "Progress", "TerminalBar", "make_progress"]


class Progress(Protocol):
    """Receives the counts after every committed batch, and once at the end."""

    def update(self, stats: ImportStats) -> None: ...

    def close(self, stats: ImportStats) -> None: ...


class NullProgress:
    """Shows nothing (``--quiet``, and the ``data/import`` command, which publishes events instead)."""

    def update(self, stats: ImportStats) -> None:
        pass

    def close(self, stats: ImportStats) -> None:
        pass


def _mb(n: int) -> str:
    return f"{n / 1_000_000:,.1f} MB"


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def eta_seconds(stats: ImportStats) -> float | None:
    """Seconds left, from the byte rate so far; ``None`` while unknown."""
    if stats.bytes_read <= 0 or stats.total_bytes <= 0:
        return None
    left = max(stats.total_bytes - stats.bytes_read, 0)
    return stats.seconds * left / stats.bytes_read


def _fraction(stats: ImportStats) -> float:
    if stats.total_bytes <= 0:
        return 0.0
    return min(stats.bytes_read / stats.total_bytes, 1.0)


class TerminalBar:
    """A one-line bar redrawn in place at most every ``interval`` seconds."""

    def __init__(self, stream: TextIO, label: str = "import", interval: float = 0.1) -> None:
        self.stream, self.label, self.interval = stream, label, interval
        self._last = 0.0

    def _render(self, stats: ImportStats) -> str:
        eta = eta_seconds(stats)
        text = (
            f"{stats.lines:,} lines  {stats.lines_per_second:,.0f}/s  "
            f"{_mb(stats.bytes_read)}/{_mb(stats.total_bytes)}  "
            f"ETA {_duration(eta) if eta is not None else '--:--'}  {stats.processed:,} committed"
        )
        if stats.failed:
            text += f"  {stats.failed:,} rejected"
        fraction = _fraction(stats)
        columns = shutil.get_terminal_size((100, 20)).columns
        width = max(10, min(40, columns - len(text) - len(self.label) - 12))
        filled = int(width * fraction)
        bar = "#" * filled + "-" * (width - filled)
        return f"{self.label} [{bar}] {fraction * 100:3.0f}%  {text}"[: columns - 1]

    def update(self, stats: ImportStats) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        self.stream.write("\r" + self._render(stats) + "\x1b[K")
        self.stream.flush()

    def close(self, stats: ImportStats) -> None:
        self.stream.write("\r" + self._render(stats) + "\x1b[K\n")
        self.stream.flush()


class LineProgress:
    """A plain line every ``interval`` seconds, for logs and pipes."""

    def __init__(self, stream: TextIO, label: str = "import", interval: float = 5.0) -> None:
        self.stream, self.label, self.interval = stream, label, interval
        self._last = time.monotonic()

    def update(self, stats: ImportStats) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        eta = eta_seconds(stats)
        line = (
            f"{self.label}: {stats.lines:,} lines read, {stats.processed:,} committed "
            f"({stats.imported:,} imported, {stats.skipped:,} already present, {stats.failed:,} "
            f"rejected), {stats.lines_per_second:,.0f} lines/s, {_mb(stats.bytes_read)} of "
            f"{_mb(stats.total_bytes)} ({_fraction(stats) * 100:.0f}%)"
        )
        if eta is not None:
            line += f", ETA {_duration(eta)}"
        self.stream.write(line + "\n")
        self.stream.flush()

    def close(self, stats: ImportStats) -> None:
        pass


def make_progress(
    mode: str = "auto", stream: TextIO | None = None, label: str = "import", interval: float = 5.0
) -> Progress:
    """``auto``: a bar when ``stream`` (stderr by default) is a terminal, plain lines otherwise.

    ``bar``, ``lines`` and ``none`` force one kind; ``interval`` is the plain-line period in seconds.
    """
    stream = stream if stream is not None else sys.stderr
    if mode == "none":
        return NullProgress()
    if mode == "bar" or (mode == "auto" and stream.isatty()):
        return TerminalBar(stream, label)
    return LineProgress(stream, label, interval)
