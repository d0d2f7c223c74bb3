"""What ``jtag help`` prints, and how each command line is read, from ``help_text.json`` next to this module.

The JSON is generated from the command declarations by ``cli/help.py`` (``python
scripts/generate-docs.py`` rewrites it and tests/test_cli_docs.py checks it is current), so that
``jtag help``, and a command sent to a server, import neither the commands nor pydantic nor the
database stack.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["COMMAND_NAMES", "HELP", "OVERVIEW", "PARAMS"]

_DATA: dict[str, Any] = json.loads((Path(__file__).with_name("help_text.json")).read_text("utf-8"))

#: Every command's wire name (``serve`` and the JSONL tools are not commands).
COMMAND_NAMES: frozenset[str] = frozenset(_DATA["commands"])
#: ``jtag help``.
OVERVIEW: str = _DATA["overview"]
#: ``jtag help <name>`` for every command, ``serve``, ``import-jsonl`` and ``export-jsonl``.
HELP: dict[str, str] = _DATA["help"]
#: Each command's params as its command line is read (``cli/spec.py``): ``{name: {"positional":
#: str | None, "fields": {spelling: [wire name, [kind, ...]]}}}`` (a command missing here is read
#: off its model: ``cli/__init__._spec``).
PARAMS: dict[str, Any] = _DATA.get("params", {})
