"""The command table and what a command is; importing this package registers every built-in command."""

from __future__ import annotations

from dbhandles.commands import audit, handles, listing, maintenance, records, tokens
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

# The JSONL importer lives in its own package; its data/import and data/export commands register here.
from dbhandles.importer import command as importer_command

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

_ = (audit, handles, listing, maintenance, records, tokens, importer_command)
