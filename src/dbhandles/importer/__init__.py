"""JSONL import and export: streaming, batched, idempotent, through the handle system.

``run_import`` / ``run_export`` work on a leased adapter; ``dbhandles.importer.command`` registers the
``data/import`` and ``data/export`` commands on top of them; ``dbhandles.importer.cli`` holds the
``jtag import-jsonl`` / ``jtag export-jsonl`` entry points. See ``docs/import.md``.
"""

from __future__ import annotations

from dbhandles.importer.export import ExportStats, run_export
from dbhandles.importer.ids import content_id, id_function
from dbhandles.importer.run import ImportOptions, run_import
from dbhandles.importer.stats import ImportStats

__all__ = [
    "ExportStats",
    "ImportOptions",
    "ImportStats",
    "content_id",
    "id_function",
    "run_export",
    "run_import",
]
