"""The command table as documents: ``GET /commands`` (JSON schemas) and ``/openapi.json`` (OpenAPI 3.1)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from dbhandles.commands import Command, builtin_commands
from dbhandles.errors import DbHandlesError

COMMANDS = builtin_commands()

__all__ = ["command_info", "commands_listing", "error_codes", "openapi_document"]

_REF = "#/components/schemas/{model}"


def error_codes() -> dict[str, int]:
    """Every error code with its HTTP status, from the exception tree."""
    codes: dict[str, int] = {}
    stack: list[type[DbHandlesError]] = [DbHandlesError]
    while stack:
        cls = stack.pop()
        codes.setdefault(cls.code, cls.http_status)
        stack.extend(cls.__subclasses__())
    return dict(sorted(codes.items()))


def command_info(command: Command) -> dict[str, Any]:
    """One entry of ``GET /commands``: what the command does and the JSON schemas of its params/result."""
    return {
        "name": command.name,
        "summary": command.summary,
        "operation": command.operation,
        "example": command.example,
        "positional": command.positional,
        "usesHandle": command.uses_handle,
        "params": command.params.model_json_schema(by_alias=True),
        "result": command.result.model_json_schema(by_alias=True, mode="serialization"),
    }


_listing_cache: tuple[tuple[str, ...], list[dict[str, Any]]] | None = None
_openapi_cache: tuple[tuple[str, ...], dict[str, Any]] | None = None


def commands_listing() -> list[dict[str, Any]]:
    """Every command, sorted by name (cached until the command table changes)."""
    global _listing_cache
    key = tuple(sorted(COMMANDS))
    if _listing_cache is None or _listing_cache[0] != key:
        _listing_cache = (key, [command_info(COMMANDS[name]) for name in key])
    return _listing_cache[1]


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
            "description": "Error envelope; code is one of: " + ", ".join(sorted(codes)),
            "content": {"application/json": {"schema": ref}},
        }
        for status, codes in sorted(by_status.items())
    }


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def openapi_document(version: str = "0") -> dict[str, Any]:
    """The OpenAPI 3.1 description of every HTTP route, one ``POST /commands/<name>`` per command."""
    global _openapi_cache
    key = tuple(sorted(COMMANDS))
    if _openapi_cache is not None and _openapi_cache[0] == key:
        return _openapi_cache[1]
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    for name in key:
        models += [(COMMANDS[name].params, "validation"), (COMMANDS[name].result, "serialization")]
    refs, defs = models_json_schema(models, by_alias=True, ref_template=_REF)
    schemas = {**defs.get("$defs", {}), **_envelopes()}
    errors = _error_responses()
    paths: dict[str, Any] = {}
    for name in key:
        cmd = COMMANDS[name]
        params_ref = refs[(cmd.params, "validation")]
        result_ref = refs[(cmd.result, "serialization")]
        success = {"allOf": [{"$ref": _REF.format(model="SuccessEnvelope")}, result_ref]}
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
                        "schema": {"type": "string", "minLength": 1, "maxLength": 128},
                    }
                ],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": params_ref}},
                },
                "responses": {
                    "200": _json(success, "Success envelope with the command's result"),
                    **errors,
                },
            }
        }
    paths["/commands"] = {"get": {"operationId": "listCommands", "summary": "Every command with its schemas",
                                  "security": [],
                                  "responses": {"200": {"description": "List of commands"}}}}  # fmt: skip
    paths["/health"] = {"get": {"operationId": "health", "summary": "Liveness, pid and home folder",
                                "security": [],
                                "responses": {"200": {"description": "The server is up"}}}}  # fmt: skip
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
