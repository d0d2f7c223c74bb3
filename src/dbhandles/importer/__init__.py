"""JSONL import and export: streaming, batched, idempotent, through the handle system.

``run_import`` / ``run_export`` work on a leased adapter; ``dbhandles.importer.command`` registers the
``data/import`` and ``data/export`` commands on top of them; ``dbhandles.cli.jsonl`` holds the
``jtag import-jsonl`` / ``jtag export-jsonl`` entry points. See ``docs/import.md``.

The names below are imported on first use, so the parser process (``dbhandles.importer.worker``)
starts without loading the adapters and pydantic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbhandles.lazy import lazy_attributes

if TYPE_CHECKING:
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

_LAZY = {
    "ExportStats": "dbhandles.importer.export",
    "run_export": "dbhandles.importer.export",
    "content_id": "dbhandles.importer.ids",
    "id_function": "dbhandles.importer.ids",
    "ImportOptions": "dbhandles.importer.run",
    "run_import": "dbhandles.importer.run",
    "ImportStats": "dbhandles.importer.stats",
}


__getattr__ = lazy_attributes(__name__, _LAZY, globals())
