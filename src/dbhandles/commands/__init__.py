"""The command table and what a command is.

Importing this package registers nothing. ``COMMANDS`` imports what it is asked for: looking up one
name imports only the module that registers it (``commands/index.py``), going over the table imports
every built-in module (``commands/table.py``). ``builtin_commands()`` imports them all and returns the
table: the CLI's help and the server's OpenAPI document call it for the table whole.
"""

from __future__ import annotations

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
from dbhandles.commands.table import BUILTIN_MODULES

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


def builtin_commands() -> Mapping[str, Command]:
    """Register the built-in commands (the first call imports their modules) and return the table."""
    COMMANDS.load_all()
    return COMMANDS
