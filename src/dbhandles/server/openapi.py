"""The command table as documents: ``GET /commands`` (JSON schemas) and ``/openapi.json`` (OpenAPI 3.1)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from dbhandles.adapters import adapter_names
from dbhandles.commands import Command, builtin_commands
from dbhandles.commands.fielddocs import document_params
from dbhandles.commands.grammar import CommandSchema, apply_settings
from dbhandles.context import SESSION_ID_PATTERN
from dbhandles.errors import DbHandlesError

if TYPE_CHECKING:
    from dbhandles.settings import Settings

COMMANDS = builtin_commands()
document_params()  # the field descriptions under each params field, for the schemas and help

__all__ = ["command_info", "commands_listing", "error_codes", "openapi_document"]

_REF = "#/components/schemas/{model}"
#: The dashboard's files (``public.STATIC_FILES``, which imports this module: kept equal by
#: ``tests/test_openapi_fuzz.py``) with their media types.
STATIC_ROUTES = {
    "/": ("index.html", "text/html"),
    "/jtag.js": ("jtag.js", "text/javascript"),
    "/app.js": ("app.js", "text/javascript"),
    "/page.js": ("page.js", "text/javascript"),
    "/editor.js": ("editor.js", "text/javascript"),
    "/token.js": ("token.js", "text/javascript"),
    "/show.js": ("show.js", "text/javascript"),
    "/style.css": ("style.css", "text/css"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}


def error_codes() -> dict[str, int]:
    """Every error code with its HTTP status, from the exception tree."""
    codes: dict[str, int] = {}
    stack: list[type[DbHandlesError]] = [DbHandlesError]
    while stack:
        cls = stack.pop()
        codes.setdefault(cls.code, cls.http_status)
        stack.extend(cls.__subclasses__())
    return dict(sorted(codes.items()))


def command_info(command: Command, settings: Settings | None = None) -> dict[str, Any]:
    """One entry of ``GET /commands``: what the command does and the JSON schemas of its params/result
    (with the limits of ``settings``, a server's, when given)."""
    info = {
        "name": command.name,
        "summary": command.summary,
        "operation": command.operation,
        "example": command.example,
        "positional": command.positional,
        "usesHandle": command.uses_handle,
        "params": command.params.model_json_schema(by_alias=True, schema_generator=CommandSchema),
        "result": command.result.model_json_schema(
            by_alias=True, mode="serialization", schema_generator=CommandSchema
        ),
    }
    return info if settings is None else apply_settings(info, settings)


_listing_cache: tuple[tuple[str, ...], list[dict[str, Any]]] | None = None
_openapi_cache: tuple[tuple[str, ...], dict[str, Any]] | None = None


def commands_listing(settings: Settings | None = None) -> list[dict[str, Any]]:
    """Every command, sorted by name (cached until the command table changes), with the limits of
    ``settings`` when given."""
    global _listing_cache
    names = tuple(sorted(COMMANDS))
    key = (*names, *adapter_names())
    if _listing_cache is None or _listing_cache[0] != key:
        _listing_cache = (key, [command_info(COMMANDS[name]) for name in names])
    listing = _listing_cache[1]
    return listing if settings is None else apply_settings(listing, settings)


def _envelopes() -> dict[str, Any]:
    codes = error_codes()
    return {
        "SuccessEnvelope": {
            "type": "object",
            "required": ["success", "timestamp"],
            "properties": {
                "success": {"const": True},
                "timestamp": {"type": "string", "format": "date-time"},
                "sessionId": {
                    "type": "string",
                    "description": "Present when the request carried one.",
                },
            },
        },
        "ErrorEnvelope": {
            "type": "object",
            "required": ["success", "timestamp", "error", "code"],
            # An error's details are fields of the envelope too (what a failed import kept, say).
            "additionalProperties": True,
            "properties": {
                "success": {"const": False},
                "timestamp": {"type": "string", "format": "date-time"},
                "error": {
                    "type": "string",
                    "description": "What went wrong and what to do about it.",
                },
                "code": {
                    "type": "string",
                    "enum": [*codes, "server_unreachable"],
                    "description": "Stable snake_case error code (docs/errors.md).",
                },
                "field": {
                    "type": "string",
                    "description": "The parameter at fault, when there is one.",
                },
                "sessionId": {"type": "string"},
            },
        },
    }


def _error_responses() -> dict[str, Any]:
    by_status: dict[int, list[str]] = {}
    for code, status in error_codes().items():
        by_status.setdefault(status, []).append(code)
    ref = {"$ref": _REF.format(model="ErrorEnvelope")}
    return {
        str(status): {
            "description": _STATUS_NOTES.get(status, "")
            + "Error envelope; code is one of: "
            + ", ".join(sorted(codes)),
            "content": {"application/json": {"schema": ref}},
        }
        for status, codes in sorted(by_status.items())
    }


#: What a client most needs to know about some statuses, before the codes that carry them.
_STATUS_NOTES = {
    400: "The params (or the body) do not say a valid request; field names the culprit. ",
    401: "No bearer token, or a malformed, unknown, expired or revoked one. ",
    403: "The token's actor may not do this (or a web page of another site sent the request). ",
    413: "The body is larger than the server takes (DBHANDLES_MAX_BODY_BYTES). ",
    429: "Too many requests, jobs or cursors for this actor at once; retry later. ",
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _info_schema() -> dict[str, Any]:
    """One entry of ``GET /commands`` (``command_info``)."""
    return {
        "type": "object",
        "required": ["name", "summary", "operation", "example", "positional", "usesHandle",
                     "params", "result"],
        "properties": {
            "name": {"type": "string"},
            "summary": {"type": "string"},
            "operation": {"type": "string", "enum": ["read", "write", "delete", "schema", "admin"]},
            "example": {"type": "string"},
            "positional": {"type": ["string", "null"]},
            "usesHandle": {"type": "boolean"},
            "params": {"type": "object", "description": "JSON schema of the params object"},
            "result": {"type": "object", "description": "JSON schema of the result's fields"},
        },
    }  # fmt: skip


def _other_paths() -> dict[str, Any]:
    """The routes besides ``/commands/<name>``: none of them needs a token."""
    health = {
        "type": "object",
        "required": ["status", "service", "version", "pid", "homeId", "connections"],
        "properties": {
            "status": {"const": "ok"},
            "service": {"const": "dbhandles"},
            "version": {"type": "string"},
            "pid": {"type": "integer"},
            "homeId": {
                "type": "string",
                "pattern": "^[0-9a-f]{32}$",
                "description": "SHA-256 of the server's resolved home folder (32 hex digits)",
            },
            "connections": {"type": "integer", "minimum": 0, "description": "Open WebSockets"},
        },
    }
    listing = {
        "type": "object",
        "required": ["commands"],
        "properties": {"commands": {"type": "array", "items": {"$ref": _REF.format(model="CommandInfo")}}},
    }  # fmt: skip
    paths: dict[str, Any] = {
        "/commands": _get("listCommands", "Every command with its schemas, sorted by name",
                          _json(listing, "The command table")),
        "/health": _get("health", "Liveness, version, pid and which home folder (as a hash)",
                        _json(health, "The server is up")),
        "/openapi.json": _get("openapi", "This document",
                              _json({"type": "object"}, "The OpenAPI 3.1 document")),
    }  # fmt: skip
    for path, (name, media) in STATIC_ROUTES.items():
        paths[path] = _get(f"static:{name}", f"The dashboard's {name}",
                           {"description": name, "content": {media: {"schema": {"type": "string"}}}})  # fmt: skip
    return paths


def _get(operation_id: str, summary: str, ok: dict[str, Any]) -> dict[str, Any]:
    return {"get": {"operationId": operation_id, "summary": summary, "security": [],
                    "responses": {"200": ok}}}  # fmt: skip


def openapi_document(version: str = "0", settings: Settings | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 description of every HTTP route, one ``POST /commands/<name>`` per command,
    with the limits of ``settings`` (a server's) when given."""
    document = _document(version)
    return document if settings is None else apply_settings(document, settings)


def _document(version: str) -> dict[str, Any]:
    global _openapi_cache
    names = tuple(sorted(COMMANDS))
    key = (version, *names, *adapter_names())
    if _openapi_cache is not None and _openapi_cache[0] == key:
        return _openapi_cache[1]
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    for name in names:
        models += [(COMMANDS[name].params, "validation"), (COMMANDS[name].result, "serialization")]
    refs, defs = models_json_schema(
        models, by_alias=True, ref_template=_REF, schema_generator=CommandSchema
    )
    schemas = {**defs.get("$defs", {}), **_envelopes(), "CommandInfo": _info_schema()}
    errors = _error_responses()
    paths: dict[str, Any] = {}
    for name in names:
        cmd = COMMANDS[name]
        params_ref = refs[(cmd.params, "validation")]
        result_ref = refs[(cmd.result, "serialization")]
        success = {"allOf": [{"$ref": _REF.format(model="SuccessEnvelope")}, result_ref]}
        params_schema = schemas[params_ref["$ref"].rsplit("/", 1)[-1]]
        paths[f"/commands/{name}"] = {
            "post": {
                "operationId": name,
                "summary": cmd.summary,
                "description": f"{cmd.summary}\n\nCLI: `{cmd.example}`",
                "tags": [cmd.operation],
                "parameters": [
                    {
                        "name": "X-Session-Id",
                        "in": "header",
                        "required": False,
                        "description": "The caller's session (scoped by its actor); query cursors "
                        "belong to it. Echoed as sessionId.",
                        "schema": {"type": "string", "pattern": SESSION_ID_PATTERN},
                    }
                ],
                # A command with a required parameter needs a body (also when every branch of
                # its anyOf requires one, as data/open's); the others take an empty one (or none)
                # as {}.
                "requestBody": {
                    "required": bool(params_schema.get("required"))
                    or (
                        bool(params_schema.get("anyOf"))
                        and all(b.get("required") for b in params_schema["anyOf"])
                    ),
                    "content": {"application/json": {"schema": params_ref}},
                },
                "responses": {
                    "200": _json(success, "Success envelope with the command's result"),
                    **errors,
                },
            },
            "get": {
                "operationId": f"{name}:describe",
                "summary": f"Describe {name}: its summary and params/result JSON schemas",
                "tags": ["describe"],
                "security": [],
                "responses": {
                    "200": _json(
                        {"$ref": _REF.format(model="CommandInfo")},
                        "The command, as one entry of GET /commands",
                    ),
                },
            },
        }
    paths.update(_other_paths())
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "dbhandles",
            "version": version,
            "description": "Every data/* command as POST /commands/<name> with a JSON object of params. "
            "The body back is the result envelope; the HTTP status follows the error code. "
            "WebSocket /ws carries the same commands plus event subscriptions (docs/server.md).",
        },
        "paths": paths,
        # Every command needs a token (jtag token create) unless the server runs --allow-anonymous.
        "security": [{"bearer": []}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "dbh_<id>_<secret>"}
            },
        },
    }
    _openapi_cache = (key, document)
    return document
