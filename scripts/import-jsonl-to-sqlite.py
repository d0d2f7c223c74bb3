#!/usr/bin/env python3
"""Import a continuum-git JSONL dataset into a SQLite file through a dbhandles handle.

Usage (the seed's)::

    python scripts/import-jsonl-to-sqlite.py \\
        --input=/datasets/parsed/continuum-git-2025-11-08T00-31-01.jsonl \\
        --output=/datasets/prepared/continuum-git.sqlite

Every option of ``jtag import-jsonl`` works here (``--help`` lists them). The JSON summary goes to
stdout, progress to stderr; the exit code is 0 on success. Works from a checkout without installing:
the repository's ``src`` folder is used when ``dbhandles`` is not importable.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import dbhandles  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from dbhandles.cli.jsonl import import_main

if __name__ == "__main__":
    sys.exit(import_main(sys.argv[1:]))
