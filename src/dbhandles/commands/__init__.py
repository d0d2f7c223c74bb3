"""The command table and what a command is; importing this package registers every built-in command."""

from __future__ import annotations

from dbhandles.commands import admin, audit, handles, listing, records, tokens
from dbhandles.commands.base import (
    COMMANDS,
    Command,
    Context,
    DataParams,
    DataResult,
    Operation,
    Params,
    Result,
)

__all__ = [
    "COMMANDS",
    "Command",
    "Context",
    "DataParams",
    "DataResult",
    "Operation",
    "Params",
    "Result",
]

_ = (admin, audit, handles, listing, records, tokens)
