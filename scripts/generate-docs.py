"""Regenerate the documents written from the code: docs/cli.md (what ``jtag help --markdown`` prints),
the ``jtag serve`` options table of docs/server.md and the settings table of README.md.

    python scripts/generate-docs.py           # rewrite what is out of date
    python scripts/generate-docs.py --check   # exit 1 when something is out of date, write nothing

The text comes from the commands' params models and the field metadata of ``Settings`` and
``cli.serve.ServeOptions``; tests/test_cli_docs.py fails while a document differs from it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dbhandles.cli.help import generated_docs, write_docs

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        stale = [p for p, text in generated_docs(ROOT).items() if p.read_text() != text]
        for path in stale:
            print(f"out of date: {path.relative_to(ROOT)}")
        return 1 if stale else 0
    if argv:
        print(__doc__)
        return 2
    for path in write_docs(ROOT):
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
