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

The grammar needs only each field's spellings and JSON kinds (``cli/spec.py``): a command line is
read from the generated spec, so a command sent to a server imports neither pydantic nor the command
models; its params are checked by the server's dispatcher, the one check every door shares.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from dbhandles.cli.spec import CommandSpec, spec_of
from dbhandles.errors import InvalidParams
from dbhandles.values import json_text, read_json

#: JSON's number grammar (RFC 8259 §6) in ASCII digits; what a command line's number must be.
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?", re.ASCII)
_JSON_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)", re.ASCII)

if TYPE_CHECKING:
    from dbhandles.commands import Command

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


Spellings = Mapping[str, tuple[str, frozenset[str]]]


def _wire_key(key: str, spellings: Spellings) -> str:
    if key in spellings:
        return spellings[key][0]
    if "-" in key:  # unknown kebab-case: report it camelCased so the error names a real-looking key
        head, *rest = key.split("-")
        return head + "".join(part[:1].upper() + part[1:] for part in rest)
    return key


def _is_bool_field(kinds: Collection[str] | None) -> bool:
    return kinds is not None and "bool" in kinds


def parse_args(command: Command | CommandSpec, argv: Sequence[str]) -> CliArgs:
    """Split ``argv`` (everything after the command name) into raw params and CLI flags.

    ``command``: the command, or its spec (``cli/spec.py``: the same reading without the model).

    Raises:
        InvalidParams: a malformed token, a JSON value that does not parse, a key given twice.
    """
    out = CliArgs()
    spec = command if isinstance(command, CommandSpec) else spec_of(command)
    spellings = spec.spellings
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
        if eq and key and (key in spellings or spec.positional is None) and key.isidentifier():
            raw.setdefault(_wire_key(key, spellings), []).append(value)
            continue
        positionals.append(token)
    if positionals:
        if spec.positional is None:
            raise InvalidParams(
                f"{spec.name} takes no positional argument (got {json_text(positionals[0], 80)}); "
                f"use --key=value, see 'jtag help {spec.name}'",
                field="params",
            )
        if len(positionals) > 1:
            raise InvalidParams(
                f"{spec.name} takes one positional argument ({spec.positional}); got {len(positionals)}",
                field=spec.positional,
            )
        wire = spellings[spec.positional][0] if spec.positional in spellings else spec.positional
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


def _combine(key: str, values: list[str], kinds: frozenset[str] | None) -> Any:
    if len(values) == 1:
        return coerce_value(key, values[0], kinds)
    if kinds is not None and "list" in kinds:
        return [coerce_value(key, v, None) for v in values]
    raise InvalidParams(f"{key}: given {len(values)} times; give it once", field=key)


def coerce_value(key: str, value: str, kinds: Collection[str] | None) -> Any:
    """Turn one raw string into the value a field of ``kinds`` (``cli/spec.py``; ``None``: a key
    no field has) wants; the model validates it afterwards.

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
    if kinds is None:
        return value
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
    if ("int" in kinds or "float" in kinds) and _JSON_NUMBER.fullmatch(value):
        # Only JSON's number grammar (RFC 8259 §6), as the server reads a body: Python's int() and
        # float() would also take fullwidth digits, "1_0", "+3", " 7 ", "inf" and "nan".
        if "int" in kinds and _JSON_INTEGER.fullmatch(value):
            return int(value)
        number = float(value)
        return int(number) if "float" not in kinds and number.is_integer() else number
    return value


def to_params(command: Command, raw: dict[str, Any]) -> dict[str, Any]:
    """Validate raw params with the command's model; return them as wire JSON (camelCase, set keys only).

    Params of plain strings go through the dispatcher's quick door (``fast_params.parse_simple``:
    the validators' own checks, the model pydantic would build), which needs no validator built;
    anything else, and anything it refuses, through pydantic, so every error is pydantic's.

    Raises:
        InvalidParams: the model refused them (unknown key, wrong type, missing required parameter).
    """
    from pydantic import ValidationError

    from dbhandles.commands.fast_params import parse_simple

    simple = parse_simple(command.params, raw)
    if simple is not None:
        # What ``model_dump(mode="json", by_alias=True, exclude_unset=True)`` gives: every value
        # the quick door takes is a string, and its fields are in declaration order.
        fields = command.params.model_fields
        values = simple.__dict__
        return {
            info.alias or name: values[name]
            for name, info in fields.items()
            if name in simple.model_fields_set
        }
    try:
        model = command.params.model_validate(raw)
    except ValidationError as exc:
        # Here: a command sent to a server never imports the service (tests/test_cli_start.py).
        from dbhandles.param_errors import params_error

        raise params_error(command.name, exc) from exc
    dumped: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return dumped


def wire_params(command: Command, raw: dict[str, Any]) -> dict[str, Any]:
    """The params to send for a command line: ``to_params``'s, or the raw ones when the model
    refuses them, so that the dispatcher refuses them, with the same error, and writes the same
    audit row as for a request over HTTP (every door audits a refusal the same way).

    Raw params holding a NaN or an infinity (``--data='{"n": 1e400}'``: a literal past the double
    range reads as infinity) go as they are too: the model's JSON dump would write the value as
    ``null``, and the record would be stored with ``null`` instead of refused by the value rule.
    """
    if _non_finite(raw):
        return dict(raw)
    try:
        return to_params(command, raw)
    except InvalidParams:
        return dict(raw)


def _non_finite(value: Any) -> bool:
    """Whether ``value`` holds, at any depth, a float that is NaN or an infinity."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and item - item != 0:  # inf - inf and NaN - NaN are NaN
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False
