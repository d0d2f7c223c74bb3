"""What the ``jtag`` grammar needs to know of a command's params, without importing the command.

A ``CommandSpec`` holds, for each field of a command's params model, every spelling the command
line accepts (the wire name, the Python name, its kebab-case form) and the JSON kinds the field
takes (``str``, ``int``, ``float``, ``bool``, ``none``, ``list``, ``dict``, ``any``): all that
``cli/parse.py`` uses to split and coerce a command line. ``spec_of`` reads it off the model;
``help_text.json`` carries it for every built-in command (``cli/help.py`` generates it, and
tests/test_cli_docs.py checks it is current), so a command sent to a server is parsed without
importing pydantic or the command models (``command_spec``).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dbhandles.commands import Command

__all__ = ["KINDS", "CommandSpec", "accepts", "command_spec", "spec_data", "spec_of"]

#: The JSON kinds a field may take, as ``accepts`` names them.
KINDS = ("any", "bool", "dict", "float", "int", "list", "none", "str")


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """A command as its command line is read: name, positional parameter, fields' spellings."""

    name: str
    #: The parameter a bare positional argument fills (``jtag data/read <id>``), if any.
    positional: str | None
    #: Every spelling of every field (wire name, Python name, kebab-case) -> (wire name, kinds).
    spellings: Mapping[str, tuple[str, frozenset[str]]]


def accepts(annotation: Any) -> frozenset[str]:
    """The JSON kinds (``KINDS``) a field annotation accepts."""
    from pydantic import BaseModel  # here: a caller with an annotation has pydantic loaded

    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        kinds: set[str] = set()
        for arg in typing.get_args(annotation):
            kinds |= accepts(arg)
        return frozenset(kinds)
    if origin is typing.Literal:
        args = typing.get_args(annotation)
        return frozenset(type(a).__name__ if a is not None else "none" for a in args)
    if origin is typing.Annotated:
        return accepts(typing.get_args(annotation)[0])
    target = origin or annotation
    if annotation is None or annotation is type(None):
        return frozenset({"none"})
    if annotation is Any:
        return frozenset({"any"})
    if isinstance(target, type):
        for kind, types_ in (
            ("bool", bool),
            ("int", int),
            ("float", float),
            ("str", str),
            ("list", list | tuple | set | frozenset),
            ("dict", dict | BaseModel),
        ):
            if issubclass(target, types_):
                return frozenset({kind})
    return frozenset({"any"})


def spec_of(command: Command) -> CommandSpec:
    """The spec of ``command``, read off its params model."""
    spellings: dict[str, tuple[str, frozenset[str]]] = {}
    for name, info in command.params.model_fields.items():
        wire = info.alias or name
        kinds = accepts(info.annotation)
        for spelling in (wire, name, name.replace("_", "-")):
            spellings.setdefault(spelling, (wire, kinds))
    return CommandSpec(command.name, command.positional, spellings)


def spec_data(command: Command) -> dict[str, Any]:
    """``spec_of(command)`` as JSON data (what ``help_text.json`` keeps under ``params``):
    ``{"positional": str | null, "fields": {spelling: [wire name, [kind, ...]]}}``."""
    spec = spec_of(command)
    fields = {key: [wire, sorted(kinds)] for key, (wire, kinds) in spec.spellings.items()}
    return {"positional": spec.positional, "fields": fields}


def command_spec(name: str) -> CommandSpec | None:
    """The spec of the built-in command ``name`` from ``help_text.json``; ``None`` if unknown."""
    from dbhandles.cli.help_text import PARAMS

    data = PARAMS.get(name)
    if data is None:
        return None
    spellings = {key: (wire, frozenset(kinds)) for key, (wire, kinds) in data["fields"].items()}
    return CommandSpec(name, data["positional"], spellings)
