"""What a command is: a params model, a result model, a plain handler, and the operation it performs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

if TYPE_CHECKING:
    from dbhandles.service import Service

__all__ = [
    "COMMANDS",
    "Command",
    "Context",
    "DataParams",
    "DataResult",
    "Operation",
    "Params",
    "Result",
    "command",
]

#: What a command does to data; Phase 2 permission checks key on this, at one choke point.
Operation = Literal["read", "write", "delete", "schema", "admin"]


class Params(BaseModel):
    """Base of every params model: camelCase on the wire, unknown keys refused (typos fail loud)."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        use_attribute_docstrings=True,
    )


class DataParams(Params):
    """Params of every command that works on a database: the optional handle."""

    db_handle: str | None = None
    """Handle or alias from data/open; omitted means 'default'."""


class Result(BaseModel):
    """Base of every result model (the envelope's ``success`` and ``timestamp`` are added outside)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class DataResult(Result):
    """Results of data commands name the handle that served them (the resolved handle id)."""

    db_handle: str


@dataclass(frozen=True, slots=True)
class Context:
    """Who runs a command and from where; reaches every handler."""

    actor: str = "local"
    session_id: str | None = None
    is_admin: bool = True
    #: In-process callers (the Python API, the CLI without a server) are the local user: path roots
    #: apply only to requests that come from elsewhere.
    trusted_local: bool = True


P = TypeVar("P", bound=Params)
R = TypeVar("R", bound=Result)
Handler = Callable[["Service", Any, Context], Result]


@dataclass(frozen=True, slots=True)
class Command:
    """One entry of the command table."""

    name: str
    params: type[Params]
    result: type[Result]
    handler: Handler
    operation: Operation
    summary: str
    example: str
    #: The parameter the CLI fills from a bare positional argument (``jtag data/read <id>``).
    positional: str | None = None
    #: Whether the command works on a ``dbHandle`` (and so on a collection in a database).
    uses_handle: bool = True
    #: Only administrators may run it (e.g. ``data/audit``).
    admin_only: bool = False


COMMANDS: dict[str, Command] = {}


def command(
    name: str,
    *,
    params: type[P],
    result: type[R],
    operation: Operation,
    summary: str,
    example: str,
    positional: str | None = None,
    admin_only: bool = False,
) -> Callable[[Callable[[Service, P, Context], R]], Callable[[Service, P, Context], R]]:
    """Register a handler in the command table under its wire name (duplicates are refused)."""

    def register(fn: Callable[[Service, P, Context], R]) -> Callable[[Service, P, Context], R]:
        if name in COMMANDS:
            raise RuntimeError(f"command {name!r} registered twice")
        COMMANDS[name] = Command(
            name=name,
            params=params,
            result=result,
            handler=fn,
            operation=operation,
            summary=summary,
            example=example,
            positional=positional,
            uses_handle=issubclass(params, DataParams),
            admin_only=admin_only,
        )
        return fn

    return register
