"""The running counts of one import (or export), shared by the loop, the progress display and events."""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

__all__ = ["MAX_ERRORS_SHOWN", "ImportStats"]

#: How many rejected lines the summary lists (every one goes to the rejects file).
MAX_ERRORS_SHOWN = 10


@dataclass(slots=True)
class ImportStats:
    """Counts so far; ``imported + skipped + failed`` are the records handled.

    ``imported`` were stored by this run, ``skipped`` were already stored (same id: a re-run, a resumed
    run or a duplicate line), ``failed`` were rejected (``onError: skip``). ``duplicates`` counts the
    skipped lines whose id was stored with other fields (``collisions``: not written, so reported by
    line in ``errors`` and the rejects file). Only committed batches count.
    """

    total_bytes: int = 0
    bytes_read: int = 0
    lines: int = 0
    imported: int = 0
    skipped: int = 0
    failed: int = 0
    duplicates: int = 0
    batches: int = 0
    #: Last line of the last committed batch: everything up to it is in the database.
    committed_line: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def processed(self) -> int:
        return self.imported + self.skipped + self.failed

    @property
    def seconds(self) -> float:
        end = self.finished if self.finished is not None else time.monotonic()
        return max(end - self.started, 0.0)

    @property
    def records_per_second(self) -> float:
        seconds = self.seconds
        return self.processed / seconds if seconds > 0 else 0.0

    @property
    def lines_per_second(self) -> float:
        """Lines read (committed or in the open batch): what progress displays, steadier than the
        committed count, which moves a batch at a time."""
        seconds = self.seconds
        return self.lines / seconds if seconds > 0 else 0.0

    def reject(self, line: int, reason: str) -> None:
        """A bad line (counted in ``failed``)."""
        self.failed += 1
        self._shown({"line": line, "reason": reason})

    def duplicate(self, line: int, record_id: str, reason: str) -> None:
        """A skipped line whose id was stored with other fields (it stays counted in ``skipped``)."""
        self.duplicates += 1
        self._shown({"line": line, "id": record_id, "reason": reason})

    def _shown(self, entry: dict[str, Any]) -> None:
        """Keep ``errors`` the first ``MAX_ERRORS_SHOWN`` entries by line, of both kinds: a batch's
        collisions are told at its commit, after its bad lines of later lines were."""
        errors, line = self.errors, entry["line"]
        if len(errors) >= MAX_ERRORS_SHOWN and line > errors[-1]["line"]:
            return
        bisect.insort(errors, entry, key=itemgetter("line"))
        del errors[MAX_ERRORS_SHOWN:]

    def committed(self) -> str:
        """What the database holds from this run, for messages about a stopped import."""
        if self.batches == 0:
            return "no batch had been committed, so this run stored nothing"
        return (
            f"the database holds exactly the {self.batches} batch(es) committed before it "
            f"({self.imported} records imported, {self.skipped} already present, up to line "
            f"{self.committed_line}); nothing after line {self.committed_line} was written"
        )

    def finish(self) -> None:
        if self.finished is None:
            self.finished = time.monotonic()

    def counts(self) -> dict[str, Any]:
        """The wire form of the counts (camelCase), as in summaries and ``import:*`` events."""
        return {
            "imported": self.imported,
            "skipped": self.skipped,
            "failed": self.failed,
            "duplicates": self.duplicates,
            "lines": self.lines,
            "batches": self.batches,
            "bytesRead": self.bytes_read,
            "totalBytes": self.total_bytes,
            "seconds": round(self.seconds, 3),
            "recordsPerSecond": round(self.records_per_second, 1),
        }
