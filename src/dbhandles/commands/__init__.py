"""The command table and what a command is.

Importing this package registers nothing: ``builtin_commands()`` imports the handler modules once and
returns the table. The service calls it when it starts; the CLI's help and the server's OpenAPI
document call it for the table alone.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from dbhandles.commands.base import (
    COMMANDS,
    Command,
    DataParams,
    DataResult,
    Operation,
    Params,
    Result,
)

__all__ = [
    "BUILTIN_MODULES",
    "COMMANDS",
    "Command",
    "DataParams",
    "DataResult",
    "Operation",
    "Params",
    "Result",
    "builtin_commands",
]

#: The modules whose handlers make up the built-in commands (the importer's data/import and
#: data/export live in their own package).
BUILTIN_MODULES = (
    "dbhandles.commands.audit",
    "dbhandles.commands.grants",
    "dbhandles.commands.handles",
    "dbhandles.commands.jobs",
    "dbhandles.commands.listing",
    "dbhandles.commands.maintenance",
    "dbhandles.commands.records",
    "dbhandles.commands.tokens",
    "dbhandles.importer.command",
)


def builtin_commands() -> Mapping[str, Command]:
    """Register the built-in commands (the first call imports their modules) and return the table."""
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    return COMMANDS
