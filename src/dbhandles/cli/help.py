"""``jtag help``: every command, and each command's parameters, generated from its params model.

Nothing here is typed twice: command help comes from the params models, ``jtag help serve`` from the
field metadata of ``ServeOptions`` and ``Settings``. The documents are generated from the same text:
docs/cli.md whole, and the marked tables of docs/server.md and README.md (``generated_docs``);
``python scripts/generate-docs.py`` rewrites them and tests/test_cli_docs.py checks them.
"""

from __future__ import annotations

import json
import re
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from dbhandles.commands import Command, builtin_commands
from dbhandles.commands.fielddocs import document_params
from dbhandles.settings_docs import setting_docs
from dbhandles.wire import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_URL

COMMANDS = builtin_commands()
document_params()  # the field descriptions under each params field, for the schemas and help

__all__ = [
    "ParamDoc",
    "ServeOption",
    "command_help",
    "command_index_source",
    "generated_docs",
    "help_text_source",
    "markdown",
    "overview",
    "param_docs",
    "serve_options",
    "type_label",
    "write_docs",
]

SERVE_SUMMARY = f"Start the HTTP + WebSocket server and the dashboard (default {DEFAULT_URL}/)."
_SETTINGS = {d.env: d for d in setting_docs()}
ENVIRONMENT: tuple[tuple[str, str], ...] = (
    (
        "JTAG_URL",
        f"Send every command to this server (e.g. {DEFAULT_URL}); fail if it is down.",
    ),
    (
        "DBHANDLES_HOME",
        f"{_SETTINGS['DBHANDLES_HOME'].help} Default {_SETTINGS['DBHANDLES_HOME'].default}.",
    ),
    (
        "JTAG_SESSION_ID",
        "Session id for every command (default: the one kept in <home>/cli-session).",
    ),
    ("DBHANDLES_DEFAULT_URL", _SETTINGS["DBHANDLES_DEFAULT_URL"].help),
    (
        "JTAG_TOKEN",
        "Bearer token for a server (default: <home>/admin.token when the server serves this "
        "home); --token=... overrides it.",
    ),
    ("DBHANDLES_*", "Every other setting of the service; 'jtag help serve' lists them."),
)
USAGE = (
    "jtag <command> [--key=value | --key value | --flag | key=value] [--format=json|table]\n"
    "               [--token=<token>] [--new-session]"
)
TOKEN_USAGE = (
    "jtag token create --actor=NAME [--expires=30d] [--admin]",
    "jtag token list [--format=table]",
    "jtag token revoke <tokenId>",
    "jtag import-jsonl --input=FILE[.gz] --output=DB.sqlite [--collection=training_examples]\n"
    "                         [--id-field=PATH] [--batch-size=N] [--on-error=abort|skip] [--rejects=FILE]",
    "jtag export-jsonl --input=DB.sqlite --output=FILE[.gz] [--collection=training_examples]",
)


@dataclass(frozen=True, slots=True)
class ParamDoc:
    """One parameter as the help shows it."""

    name: str
    type: str
    required: bool
    default: str | None
    description: str


def type_label(annotation: Any) -> str:
    """A short, user-facing name for a field's type: ``integer``, ``string``, ``JSON object``..."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        labels = [type_label(a) for a in typing.get_args(annotation) if a is not type(None)]
        return " | ".join(dict.fromkeys(labels))
    if origin is typing.Literal:
        return " | ".join(str(a) for a in typing.get_args(annotation))
    if origin is typing.Annotated:
        return type_label(typing.get_args(annotation)[0])
    target = origin or annotation
    if isinstance(target, type):
        for base, label in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
                            (list, "JSON array"), (dict, "JSON object"), (BaseModel, "JSON object")):  # fmt: skip
            if issubclass(target, base):
                return label
    return "JSON"


def _default(info: FieldInfo) -> str | None:
    if info.default is PydanticUndefined:
        return None if info.default_factory is None else "(empty)"
    if info.default is None:
        return None
    if isinstance(info.default, bool):
        return "true" if info.default else "false"
    return str(info.default)


def param_docs(command: Command) -> list[ParamDoc]:
    """The parameters of ``command``: required ones first, then in declaration order."""
    docs = [
        ParamDoc(
            name=info.alias or name,
            type=type_label(info.annotation),
            required=info.is_required(),
            default=_default(info),
            description=(info.description or "").strip(),
        )
        for name, info in command.params.model_fields.items()
    ]
    return [d for d in docs if d.required] + [d for d in docs if not d.required]


def overview() -> str:
    """``jtag help``: usage and one line per command."""
    names = sorted(COMMANDS)
    width = max(len(n) for n in [*names, "serve"]) + 2
    lines = [
        "jtag: run dbhandles commands, in-process or against a running 'jtag serve'.",
        "",
        "Usage: " + USAGE.replace("\n", "\n       "),
        "       jtag help [<command>]     (or: jtag <command> --help)",
        f"       jtag serve [--host={DEFAULT_HOST}] [--port={DEFAULT_PORT}] [--allow-anonymous] [...]",
        *[f"       {line}" for line in TOKEN_USAGE],
        "",
        "Commands:",
    ]
    lines += [f"  {n.ljust(width)}{COMMANDS[n].summary}" for n in names]
    lines += [f"  {'serve'.ljust(width)}{SERVE_SUMMARY}", "", "Environment:"]
    env_width = max(len(k) for k, _ in ENVIRONMENT) + 2
    lines += [f"  {k.ljust(env_width)}{v}" for k, v in ENVIRONMENT]
    lines += [
        "",
        "Output is the result envelope as JSON; the exit code is 0 exactly when success is true.",
    ]
    return "\n".join(lines)


def _usage(command: Command, params: list[ParamDoc]) -> str:
    parts = [f"jtag {command.name}"]
    for p in params:
        if p.name == command.positional:
            parts.append(f"<{p.name}>" if p.required else f"[<{p.name}>]")
        elif p.required:
            parts.append(f"--{p.name}=<{p.type.split(' ')[0].lower()}>")
    if any(not p.required for p in params):
        parts.append("[options]")
    return " ".join(parts)


def command_help(name: str) -> str:
    """``jtag help <command>``: summary, usage, parameters with types and defaults, an example."""
    if name == "serve":
        return _serve_help()
    command = COMMANDS[name]
    params = param_docs(command)
    lines = [f"jtag {command.name}: {command.summary}", "", f"Usage: {_usage(command, params)}", ""]
    if params:
        lines.append("Parameters:")
        for p in params:
            flag = f"--{p.name}=<{p.type}>" if p.type != "boolean" else f"--{p.name}"
            status = "required" if p.required else "optional"
            if p.default is not None:
                status += f", default: {p.default}"
            if p.name == command.positional:
                status += "; may be given positionally"
            lines.append(f"  {flag}  ({status})")
            if p.description:
                lines.append(f"      {p.description}")
    else:
        lines.append("Parameters: none")
    lines += ["", "Example:", f"  {command.example}", "", f"Operation: {command.operation}"]
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class ServeOption:
    """One ``jtag serve`` option as the help shows it (from the field metadata of ``ServeOptions``)."""

    flag: str
    usage: str
    default: str
    help: str


def serve_options() -> list[ServeOption]:
    """The options of ``jtag serve``, in declaration order, with the defaults the code uses."""
    from dbhandles.cli.serve import ServeOptions  # the server's modules: only for this help

    defaults = ServeOptions()
    options = []
    for f in fields(ServeOptions):
        if not f.metadata:
            continue
        flag = "--" + f.name.replace("_", "-")
        value = getattr(defaults, f.name)
        options.append(
            ServeOption(
                flag=flag,
                usage=flag if f.metadata["value"] is None else f"{flag}=<{f.metadata['value']}>",
                default=("on" if value else "off") if isinstance(value, bool) else str(value),
                help=f.metadata["help"],
            )
        )
    return options


def _serve_help() -> str:
    """``jtag help serve``: the options, then the settings the server (and the CLI) read at start."""
    lines = ["jtag serve: " + SERVE_SUMMARY, "", "Options:"]
    lines += [f"  {o.usage.ljust(20)}default: {o.default}\n      {o.help}" for o in serve_options()]
    lines += ["", "Settings (environment variables, read at start by 'jtag serve' and 'jtag'):"]
    width = max(len(d.env) for d in setting_docs()) + 2
    lines += [f"  {d.env.ljust(width)}default: {d.default}\n      {d.help}" for d in setting_docs()]
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Help text as a Markdown table cell: ``<home>`` stays visible, ``|`` does not end the cell."""
    return text.replace("<", "\\<").replace("|", "\\|")


def serve_table() -> str:
    """The options table of docs/server.md."""
    options = serve_options()
    usage = " ".join(
        f"[{o.flag}]" if o.usage == o.flag else f"[{o.flag}={o.default}]" for o in options
    )
    lines = ["```", f"jtag serve {usage}", "```", ""]
    lines += ["| option | default | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{o.flag}` | `{o.default}` | {_cell(o.help)} |" for o in options]
    return "\n".join(lines)


def settings_table() -> str:
    """The settings table of README.md: every ``Settings`` field, then the CLI's own variables."""
    rows = [f"| `{d.env}` | {_cell(d.default)} | {_cell(d.help)} |" for d in setting_docs()]
    rows += [f"| `{k}` | — | {_cell(v)} |" for k, v in ENVIRONMENT if k.startswith("JTAG_")]
    return "\n".join(["| variable | default | meaning |", "| --- | --- | --- |", *rows])


#: ``{document: region}``: the generated regions of hand-written documents, each between the lines
#: ``<!-- generated: <region> ... -->`` and ``<!-- end generated: <region> -->``.
GENERATED_REGIONS = {"docs/server.md": "serve-options", "README.md": "settings"}
_REGION = re.compile(
    r"(<!-- generated: (?P<name>[a-z-]+) [^\n]*-->\n).*?(<!-- end generated: (?P=name) -->)", re.S
)


def _fill(text: str, region: str, content: str) -> str:
    found = [m for m in _REGION.finditer(text) if m.group("name") == region]
    if len(found) != 1:
        raise ValueError(f"expected one generated region {region!r}, found {len(found)}")
    match = found[0]
    return text[: match.end(1)] + content + "\n" + text[match.start(3) :]


#: The generated data ``jtag help`` reads (cli/help_text.py loads it), so that help imports
#: neither the commands nor pydantic nor the database stack.
HELP_TEXT_MODULE = Path("src") / "dbhandles" / "cli" / "help_text.json"


def help_text_source() -> str:
    """The text of ``cli/help_text.json``: ``{"commands": [name...], "overview": str, "help":
    {name: str}, "params": {name: spec}}`` with every text ``jtag help`` prints (commands, ``serve``
    and the JSONL tools) and how each command's line is read (``cli/spec.py`` ``spec_data``)."""
    from dbhandles.cli.jsonl import EXPORT_USAGE, IMPORT_USAGE  # its own usage, like --help
    from dbhandles.cli.spec import spec_data

    texts = {name: command_help(name) for name in [*sorted(COMMANDS), "serve"]}
    texts |= {"import-jsonl": IMPORT_USAGE, "export-jsonl": EXPORT_USAGE}
    params = {name: spec_data(COMMANDS[name]) for name in sorted(COMMANDS)}
    data = {"commands": sorted(COMMANDS), "overview": overview(), "help": texts, "params": params}
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def _literal(text: str) -> str:
    """``text`` as a Python string literal in the quotes ``ruff format`` keeps."""
    body = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
    quote = "'" if body.count('"') > body.count("'") else '"'
    return quote + body.replace(quote, "\\" + quote) + quote


#: The generated index of the module that registers each command (``commands/table.py`` reads it).
COMMAND_INDEX_MODULE = Path("src") / "dbhandles" / "commands" / "index.py"


def command_index_source() -> str:
    """The source of ``commands/index.py``: each built-in command's wire name and the module that
    registers it (the module of its handler)."""
    out = [
        '"""Which module registers each built-in command: generated by ``cli/help.py``.',
        "",
        "Do not edit: ``python scripts/generate-docs.py`` rewrites it and tests/test_cli_docs.py checks",
        "it, so that looking up one command (``commands/table.py``) imports only its own module.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        '__all__ = ["COMMAND_MODULES"]',
        "",
        "#: Wire name -> the module whose import registers the command.",
        "COMMAND_MODULES: dict[str, str] = {",
        *[
            f"    {_literal(name)}: {_literal(COMMANDS[name].handler.__module__)},"
            for name in sorted(COMMANDS)
        ],
        "}",
    ]
    return "\n".join(out) + "\n"


def generated_docs(root: Path) -> dict[Path, str]:
    """What each generated document under ``root`` must contain: docs/cli.md whole (what
    ``jtag help --markdown`` prints), ``cli/help_text.json`` (what ``jtag help`` reads), the others
    with their generated regions filled in, and ``commands/index.py``."""
    regions = {"serve-options": serve_table, "settings": settings_table}
    docs = {
        root / "docs" / "cli.md": markdown() + "\n",
        root / HELP_TEXT_MODULE: help_text_source(),
        root / COMMAND_INDEX_MODULE: command_index_source(),
    }
    for name, region in GENERATED_REGIONS.items():
        path = root / name
        docs[path] = _fill(path.read_text(), region, regions[region]())
    return docs


def write_docs(root: Path) -> list[Path]:
    """Rewrite the generated documents under ``root`` that are out of date; return them."""
    changed = []
    for path, text in generated_docs(root).items():
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(path)
    return changed


def markdown() -> str:
    """``docs/cli.md``: the grammar, then every command's help (``jtag help --markdown`` prints it)."""
    out = [
        "# The `jtag` command line",
        "",
        "<!-- Generated by `python scripts/generate-docs.py` (or `jtag help --markdown > docs/cli.md`);",
        "     tests/test_cli_docs.py checks it. -->",
        "",
        f"```\n{USAGE}\n```",
        "",
        "- `--key=value`, `--key value`, `key=value`; `--flag` alone means true.",
        "- Values that start with `{` or `[` are JSON. Every value is then coerced and validated by the",
        '  command\'s parameter model: `--limit=10` is the number 10, `--id=10` stays the string `"10"`.',
        "  A number is written as JSON writes it (`10`, `-1`, `2.5`, `1e3`): `+3`, `1_0`, spaces and",
        "  other scripts' digits stay text, which the model then refuses where it wants a number.",
        "  A command sent to a server is validated there, by the same model (the same errors, audited",
        "  there); `jtag` itself then imports no model.",
        '- An id given on the command line is its text: `--id=3.0` is the id `"3.0"`, not the number',
        '  3.0, which dbhandles stores as the id `"3"` (`--data=\'{"id": 3.0}\'` on data/create); read',
        "  that record with `--id=3`. There is no other way to pass an id as a number.",
        "- Keys may be camelCase (`--dbHandle`), snake_case (`--db_handle`) or kebab-case (`--db-handle`).",
        "- `jtag data/read <id>` and `jtag data/delete <id>` take the id positionally.",
        "- A group and a verb may be two words: `jtag token create` is `jtag token/create`.",
        "- CLI flags: `--format=json|table` (default json), `--token=<token>`, `--new-session`,",
        "  `--help`.",
        "- Output: the result envelope as JSON on stdout. The exit code is 0 exactly when `success` is",
        "  true; on failure the envelope carries `error`, `code` (see `docs/errors.md`) and maybe `field`.",
        "",
        "## Where commands run",
        "",
        "1. `JTAG_URL` set: every command goes to that server. If it cannot be reached the CLI prints",
        '   `{"success": false, "code": "server_unreachable", ...}` and exits 1; it never silently',
        "   runs somewhere else.",
        "2. Otherwise, if `<home>/server.json` (written by `jtag serve`) or the default address",
        f"   `{DEFAULT_URL}` answers `GET /health` for the same home folder, commands go there.",
        "3. Otherwise they run in-process against the same durable registry in `<home>/default.sqlite`.",
        "",
        "The result is the same either way.",
        "",
        "## Tokens and sessions",
        "",
        "```",
        *TOKEN_USAGE,
        "```",
        "",
        "- Against a server, every command carries a bearer token: `--token=...`, else `JTAG_TOKEN`,",
        "  else the local admin token in `<home>/admin.token` when the server serves this same home",
        "  (`jtag serve` creates it on first start). So on the machine that runs the server, `jtag`",
        "  needs no setup. A missing, wrong, expired or revoked token is `unauthorized` (exit 1).",
        "- In-process (no server), `jtag` is the local user, an administrator: no token is needed, and",
        "  `jtag token create` writes the token to the same home's default database a server uses.",
        "  A command given a token (`--token`, `JTAG_TOKEN`) never runs in-process: with no server for",
        "  the home it is refused with `server_unreachable` and nothing runs (it would otherwise have",
        "  the local administrator's rights, not the token's), nor is anything written (no",
        '  `<home>/cli-session`). An empty token (`--token=`, `JTAG_TOKEN=""`) is `invalid_params`.',
        "  Error words never echo a token: its secret shows as `dbh_<id>_***`.",
        "- `token create` prints the token once (only its hash is kept): give it to the actor, e.g. as",
        "  `JTAG_TOKEN`. `token list` never shows secrets; `token revoke` takes the `tokenId`.",
        "- Each CLI has a session: its id is kept in `<home>/cli-session` (mode 0600) and reused by",
        "  every `jtag` run on that home, so `data/query-open` and a later `data/query-next` work in",
        "  separate runs, in-process and against a server. Results echo it as `sessionId`.",
        "  `--new-session` starts a fresh one (in-process, the old session's cursors are closed);",
        "  `JTAG_SESSION_ID` overrides the file.",
        "",
        "## Environment",
        "",
        "| variable | meaning |",
        "| --- | --- |",
        *[f"| `{k}` | {_cell(v)} |" for k, v in ENVIRONMENT],
        "",
        "## Commands",
        "",
        "| command | summary |",
        "| --- | --- |",
        *[f"| [`{n}`](#{_anchor(n)}) | {COMMANDS[n].summary} |" for n in sorted(COMMANDS)],
        f"| [`serve`](#serve) | {SERVE_SUMMARY} |",
        "",
    ]
    for name in [*sorted(COMMANDS), "serve"]:
        out += [f"### {name}", "", "```", command_help(name), "```", ""]
    return "\n".join(out)


def _anchor(name: str) -> str:
    return name.replace("/", "").replace(" ", "-").lower()
