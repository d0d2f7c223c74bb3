"""The hooks of a job's command (``Call.hooks``): after every batch they copy its counts into the
job, write its progress and stop it once it was cancelled (``jobs.JobRunner``, ``server/job_child.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from dbhandles.commands.copy import CopyHooks
from dbhandles.commands.copy_run import CopyStats
from dbhandles.errors import JobCancelled
from dbhandles.importer.command import ExportHooks, ImportHooks
from dbhandles.importer.export import ExportStats
from dbhandles.importer.stats import ImportStats

if TYPE_CHECKING:
    from dbhandles.jobs import Job

__all__ = ["ImportProgress", "job_hooks"]


def _why(job: Job) -> str:
    return f" ({job.cancel_reason})" if job.cancel_reason else ""


class ImportProgress:
    """The job's view of an import: counts after every chunk, and the cancellation point."""

    def __init__(self, job: Job, sync: Callable[[Job], None]) -> None:
        self.job = job
        self.sync = sync

    def update(self, stats: ImportStats) -> None:
        self.job.progress = stats.counts()
        self.sync(self.job)
        if self.job.cancel_requested:
            raise JobCancelled(
                f"data/import cancelled{_why(self.job)}: {stats.committed()}; run it again to store "
                "the rest (records already stored are skipped)"
            )

    def close(self, stats: ImportStats) -> None:
        self.job.progress = stats.counts()


def job_hooks(job: Job, sync: Callable[[Job], None]) -> object:
    """The ``Call.hooks`` of ``job``'s command: after every batch (chunk, page) they copy the counts
    into ``job.progress``, call ``sync(job)`` and raise ``JobCancelled`` once ``job.cancel_requested``
    is set. ``None`` for a command that cannot be stopped (``data/vacuum``)."""
    if job.command == "data/import":
        return ImportHooks(progress=ImportProgress(job, sync), stats=ImportStats())

    if job.command == "data/export":

        def on_page(stats: ExportStats) -> None:
            job.progress = stats.counts()
            sync(job)
            if job.cancel_requested:
                raise JobCancelled(
                    f"data/export cancelled{_why(job)} after {stats.exported} records; no "
                    "file was written"
                )

        return ExportHooks(stats=ExportStats(), on_page=on_page)

    if job.command == "data/copy":

        def on_batch(stats: CopyStats) -> None:
            job.progress = stats.counts()
            sync(job)
            if job.cancel_requested:
                raise JobCancelled(
                    f"data/copy cancelled{_why(job)} after {stats.batches} batches "
                    f"({stats.copied} copied, {stats.deleted} deleted); run it again to copy "
                    "the rest (records already copied are skipped)"
                )

        return CopyHooks(stats=CopyStats(), on_batch=on_batch)
    return None
