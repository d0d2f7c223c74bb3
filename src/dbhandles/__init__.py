"""dbhandles: named handles on many databases behind one set of ``data/*`` commands.

>>> import dbhandles
>>> with dbhandles.Service(home="/tmp/dbh-doc") as svc:
...     h = svc.execute("data/open", {"adapter": "memory", "config": {}})["dbHandle"]
...     svc.execute("data/create", {"dbHandle": h, "collection": "notes", "data": {"text": "hi"}})["success"]
True
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dbhandles.adapters import (
    Adapter,
    AdapterConfig,
    Features,
    Query,
    Session,
    adapter_names,
    register_adapter,
)
from dbhandles.commands import COMMANDS, Command, Context
from dbhandles.errors import (
    AccessDenied,
    Conflict,
    CursorNotFound,
    DatabaseNotFound,
    DbHandlesError,
    DefaultHandleProtected,
    DriverMissing,
    Forbidden,
    HandleNotFound,
    InvalidConfig,
    InvalidFilter,
    InvalidParams,
    NotADatabase,
    NotFound,
    NotSupported,
    PathNotAllowed,
    PayloadTooLarge,
    PermissionDenied,
    QuotaExceeded,
    ReadOnly,
    RecordExists,
    RecordNotFound,
    ServerUnreachable,
    StorageBusy,
    StorageError,
    Unauthorized,
    UnknownAdapter,
    UnknownCommand,
    ValidationFailed,
)
from dbhandles.events import Event, EventBus, Subscription
from dbhandles.registry import DEFAULT_HANDLE, HandleRegistry
from dbhandles.security.permissions import Permissions
from dbhandles.service import Service
from dbhandles.settings import Settings

__all__ = [
    "COMMANDS",
    "DEFAULT_HANDLE",
    "AccessDenied",
    "Adapter",
    "AdapterConfig",
    "Client",
    "Command",
    "Conflict",
    "Context",
    "CursorNotFound",
    "DatabaseNotFound",
    "DbHandlesError",
    "DefaultHandleProtected",
    "DriverMissing",
    "Event",
    "EventBus",
    "Features",
    "Forbidden",
    "HandleNotFound",
    "HandleRegistry",
    "InvalidConfig",
    "InvalidFilter",
    "InvalidParams",
    "NotADatabase",
    "NotFound",
    "NotSupported",
    "PathNotAllowed",
    "PayloadTooLarge",
    "PermissionDenied",
    "Permissions",
    "Query",
    "QuotaExceeded",
    "ReadOnly",
    "RecordExists",
    "RecordNotFound",
    "ServerUnreachable",
    "Service",
    "Session",
    "Settings",
    "StorageBusy",
    "StorageError",
    "Subscription",
    "Unauthorized",
    "UnknownAdapter",
    "UnknownCommand",
    "ValidationFailed",
    "adapter_names",
    "default_service",
    "execute",
    "register_adapter",
]

if TYPE_CHECKING:
    from dbhandles.client import Client


def __getattr__(name: str) -> Any:
    # The remote client pulls in httpx and websockets: import it only when asked for.
    if name == "Client":
        from dbhandles.client import Client

        return Client
    raise AttributeError(f"module 'dbhandles' has no attribute {name!r}")


_default: Service | None = None
_default_lock = threading.Lock()


def default_service() -> Service:
    """The process-wide service over ``Settings.from_env()`` (``DBHANDLES_HOME``), created on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Service(settings=Settings.from_env())
            atexit.register(_default.close)
        return _default


def execute(
    name: str, params: Mapping[str, Any] | None = None, *, context: Context | None = None
) -> dict[str, Any]:
    """Run a command on the process-wide service; return the success envelope or raise ``DbHandlesError``."""
    return default_service().execute(name, params, context=context)
