"""``python -m dbhandles.cli``: the same as the ``jtag`` console script."""

from __future__ import annotations

import sys

from dbhandles.cli import main

if __name__ == "__main__":
    sys.exit(main())
