"""The ``jtag`` argument grammar: tokens to raw values, then coercion by the command's params model.

Grammar: ``--key=value``, ``--key value``, ``--flag`` (true), ``key=value``, and one bare positional
argument for commands that declare one (``jtag data/read <id>``). A value that starts with ``{`` or ``[``
is JSON. Keys may be camelCase (``dbHandle``), snake_case (``db_handle``) or kebab-case (``db-handle``).
Every value is then coerced towards the field's type (``--limit=10`` is the number 10, ``--id=10`` stays
the string "10") and the params model validates the whole: an unknown key is ``invalid_params``.
Params the model refuses are still sent (``wire_params``): the dispatcher refuses them and audits the
refusal as it does over HTTP. A command line that cannot be read at all (a value that is not JSON, a
key given twice) never reaches a command.
The CLI's own flags (``--format``, ``--token``, ``--new-session``, ``--help``) never reach the command.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from dbhandles.commands import Command
from dbhandles.errors import InvalidParams
from dbhandles.values import read_json

__all__ = ["CLI_FLAGS", "CliArgs", "coerce_value", "parse_args", "to_params", "wire_params"]

#: Flags the CLI itself consumes (besides ``--format`` and ``--help``); they never reach the command.
CLI_FLAGS = ("token", "new-session")
FORMATS = ("json", "table")
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


@dataclass(slots=True)
class CliArgs:
    """One parsed command line: the command's raw params plus the CLI's own flags."""

    params: dict[str, Any] = field(default_factory=dict)
    format: str = "json"
    help: bool = False
    #: ``--token=...``: the bearer token for a server (instead of ``JTAG_TOKEN``).
    token: str | None = None
    #: ``--new-session``: start a fresh CLI session (its cursors are separate from the last one's).
    new_session: bool = False


def _fields(model: type[BaseModel]) -> dict[str, tuple[str, FieldInfo]]:
    """Every spelling of every field (alias, python name, kebab-case) -> (wire name, field)."""
    spellings: dict[str, tuple[str, FieldInfo]] = {}
    for name, info in model.model_fields.items():
        wire = info.alias or name
        for spelling in (wire, name, name.replace("_", "-")):
            spellings.setdefault(spelling, (wire, info))
    return spellings


def _wire_key(key: str, spellings: dict[str, tuple[str, FieldInfo]]) -> str:
    if key in spellings:
        return spellings[key][0]
    if "-" in key:  # unknown kebab-case: report it camelCased so the error names a real-looking key
        head, *rest = key.split("-")
        return head + "".join(part[:1].upper() + part[1:] for part in rest)
    return key


def _is_bool_field(info: FieldInfo | None) -> bool:
    return info is not None and "bool" in _accepts(info.annotation)


def parse_args(command: Command, argv: Sequence[str]) -> CliArgs:
    """Split ``argv`` (everything after the command name) into raw params and CLI flags.

    Raises:
        InvalidParams: a malformed token, a JSON value that does not parse, a key given twice.
    """
    out = CliArgs()
    spellings = _fields(command.params)
    raw: dict[str, list[str]] = {}
    positionals: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if token in ("--help", "-h"):
            out.help = True
            continue
        if token == "--":
            positionals.extend(argv[i:])
            break
        if token.startswith("--") and len(token) > 2:
            key, eq, value = token[2:].partition("=")
            if key not in spellings and key in CLI_FLAGS:
                i = _cli_flag(out, key, value if eq else None, argv, i)
                continue
            if not eq:
                info = spellings.get(key, (key, None))[1]
                nxt = argv[i] if i < len(argv) else None
                if (
                    nxt is not None
                    and not nxt.startswith("--")
                    and (not _is_bool_field(info) or nxt.lower() in _TRUE | _FALSE)
                ):
                    value = nxt
                    i += 1
                elif key == "format":
                    raise InvalidParams("--format needs a value: json or table", field="format")
                elif info is not None and not _is_bool_field(info):
                    wire = spellings[key][0]
                    raise InvalidParams(f"{wire}: --{key} needs a value (--{key}=...)", field=wire)
                else:
                    value = "true"
            if key == "format":
                if value not in FORMATS:
                    raise InvalidParams(
                        f"--format must be one of {', '.join(FORMATS)}", field="format"
                    )
                out.format = value
                continue
            raw.setdefault(_wire_key(key, spellings), []).append(value)
            continue
        key, eq, value = token.partition("=")
        if eq and key and (key in spellings or command.positional is None) and key.isidentifier():
            raw.setdefault(_wire_key(key, spellings), []).append(value)
            continue
        positionals.append(token)
    if positionals:
        if command.positional is None:
            raise InvalidParams(
                f"{command.name} takes no positional argument (got {positionals[0]!r}); "
                f"use --key=value, see 'jtag help {command.name}'",
                field="params",
            )
        if len(positionals) > 1:
            raise InvalidParams(
                f"{command.name} takes one positional argument ({command.positional}); got {len(positionals)}",
                field=command.positional,
            )
        wire = (
            spellings[command.positional][0]
            if command.positional in spellings
            else command.positional
        )
        raw.setdefault(wire, []).append(positionals[0])
    by_wire = dict(spellings.values())
    for key, values in raw.items():
        out.params[key] = _combine(key, values, by_wire.get(key))
    return out


def _cli_flag(out: CliArgs, key: str, value: str | None, argv: Sequence[str], i: int) -> int:
    """Consume ``--token[=| ]value`` or ``--new-session``; return the index of the next token."""
    if key == "token":
        if value is None and i < len(argv) and not argv[i].startswith("--"):
            value, i = argv[i], i + 1
        if not value or not value.strip():
            raise InvalidParams("--token needs a value: --token=<token>", field="token")
        out.token = value.strip()
        return i
    if value is not None and value.lower() not in _TRUE | _FALSE:
        raise InvalidParams("--new-session takes no value", field="new-session")
    out.new_session = value is None or value.lower() in _TRUE
    return i


def _combine(key: str, values: list[str], info: FieldInfo | None) -> Any:
    if len(values) == 1:
        return coerce_value(key, values[0], info)
    if info is not None and "list" in _accepts(info.annotation):
        return [coerce_value(key, v, None) for v in values]
    raise InvalidParams(f"{key}: given {len(values)} times; give it once", field=key)


def _accepts(annotation: Any) -> set[str]:
    """The JSON kinds a field annotation accepts: str, int, float, bool, none, list, dict, any."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        kinds: set[str] = set()
        for arg in typing.get_args(annotation):
            kinds |= _accepts(arg)
        return kinds
    if origin is typing.Literal:
        return {type(a).__name__ if a is not None else "none" for a in typing.get_args(annotation)}
    if origin is typing.Annotated:
        return _accepts(typing.get_args(annotation)[0])
    target = origin or annotation
    if annotation is None or annotation is type(None):
        return {"none"}
    if annotation is Any:
        return {"any"}
    if isinstance(target, type):
        if issubclass(target, bool):
            return {"bool"}
        if issubclass(target, int):
            return {"int"}
        if issubclass(target, float):
            return {"float"}
        if issubclass(target, str):
            return {"str"}
        if issubclass(target, list | tuple | set | frozenset):
            return {"list"}
        if issubclass(target, dict | BaseModel):
            return {"dict"}
    return {"any"}


def coerce_value(key: str, value: str, info: FieldInfo | None) -> Any:
    """Turn one raw string into the value the field wants (the model validates it afterwards).

    Raises:
        InvalidParams: the value starts with ``{`` or ``[`` and is not valid JSON.
    """
    stripped = value.strip()
    if stripped[:1] in ("{", "["):
        try:
            return read_json(stripped)
        except orjson.JSONDecodeError as exc:
            raise InvalidParams(f"{key}: not valid JSON ({exc}); quote it like --{key}='{{...}}'",
                                field=key) from exc  # fmt: skip
    if info is None:
        return value
    kinds = _accepts(info.annotation)
    if "str" in kinds or "any" in kinds:
        # A field that takes text keeps the text: --id=10 is the id "10", not the number 10.
        return value
    lowered = stripped.lower()
    if "none" in kinds and lowered in ("null", "none", ""):
        return None
    if "bool" in kinds:
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    if "int" in kinds:
        try:
            return int(stripped)
        except ValueError:
            pass
    if "float" in kinds or "int" in kinds:
        try:
            number = float(stripped)
        except ValueError:
            return value
        return int(number) if "float" not in kinds and number.is_integer() else number
    return value


def to_params(command: Command, raw: dict[str, Any]) -> dict[str, Any]:
    """Validate raw params with the command's model; return them as wire JSON (camelCase, set keys only).

    Raises:
        InvalidParams: the model refused them (unknown key, wrong type, missing required parameter).
    """
    try:
        model = command.params.model_validate(raw)
    except ValidationError as exc:
        # Here: a command sent to a server never imports the service (tests/test_cli_start.py).
        from dbhandles.service import params_error

        raise params_error(command.name, exc) from exc
    dumped: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return dumped


def wire_params(command: Command, raw: dict[str, Any]) -> dict[str, Any]:
    """The params to send for a command line: ``to_params``'s, or the raw ones when the model
    refuses them, so that the dispatcher refuses them, with the same error, and writes the same
    audit row as for a request over HTTP (every door audits a refusal the same way)."""
    try:
        return to_params(command, raw)
    except InvalidParams:
        return dict(raw)
