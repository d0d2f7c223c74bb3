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

from dbhandles.errors import (
    AccessDenied,
    Conflict,
    ConstraintViolation,
    CursorNotFound,
    DatabaseDenied,
    DatabaseNotFound,
    DbHandlesError,
    DefaultHandleProtected,
    DriverMissing,
    FileExists,
    Forbidden,
    HandleNotFound,
    Interrupted,
    InvalidConfig,
    InvalidFilter,
    InvalidParams,
    JobCancelled,
    JobNotFound,
    NotADatabase,
    NotFound,
    NotSupported,
    PathNotAllowed,
    PayloadTooLarge,
    PermissionDenied,
    QueryFailed,
    QueryTimeout,
    QuotaExceeded,
    ReadOnly,
    RecordExists,
    RecordNotFound,
    RequestTimeout,
    ServerNotAllowed,
    ServerUnreachable,
    SessionMismatch,
    StateTooNew,
    StorageBusy,
    StorageError,
    TooManyRequests,
    Unauthorized,
    UnknownAdapter,
    UnknownCommand,
    ValidationFailed,
)
from dbhandles.lazy import lazy_attributes

if TYPE_CHECKING:
    from dbhandles.adapters import (
        Adapter,
        AdapterConfig,
        Features,
        Query,
        Session,
        adapter_names,
        register_adapter,
    )
    from dbhandles.client import Client
    from dbhandles.commands import COMMANDS, Command
    from dbhandles.context import Context
    from dbhandles.events import Event, EventBus, Subscription
    from dbhandles.registry import DEFAULT_HANDLE, HandleRegistry
    from dbhandles.security.permissions import Permissions
    from dbhandles.service import Service
    from dbhandles.settings import Settings

# The rest of the public names are imported on first use (PEP 562): ``import dbhandles.errors`` or a
# small tool such as the import parser process should not pay for pydantic, the commands and the
# adapters. The remote client also pulls in httpx and websockets.
_LAZY = {
    "Adapter": "dbhandles.adapters",
    "AdapterConfig": "dbhandles.adapters",
    "Features": "dbhandles.adapters",
    "Query": "dbhandles.adapters",
    "Session": "dbhandles.adapters",
    "adapter_names": "dbhandles.adapters",
    "register_adapter": "dbhandles.adapters",
    "Client": "dbhandles.client",
    "COMMANDS": "dbhandles.commands",
    "Command": "dbhandles.commands",
    "Context": "dbhandles.context",
    "Event": "dbhandles.events",
    "EventBus": "dbhandles.events",
    "Subscription": "dbhandles.events",
    "DEFAULT_HANDLE": "dbhandles.registry",
    "HandleRegistry": "dbhandles.registry",
    "Permissions": "dbhandles.security.permissions",
    "Service": "dbhandles.service",
    "Settings": "dbhandles.settings",
}

__all__ = [
    "COMMANDS",
    "DEFAULT_HANDLE",
    "AccessDenied",
    "Adapter",
    "AdapterConfig",
    "Client",
    "Command",
    "Conflict",
    "ConstraintViolation",
    "Context",
    "CursorNotFound",
    "DatabaseDenied",
    "DatabaseNotFound",
    "DbHandlesError",
    "DefaultHandleProtected",
    "DriverMissing",
    "Event",
    "EventBus",
    "Features",
    "FileExists",
    "Forbidden",
    "HandleNotFound",
    "HandleRegistry",
    "Interrupted",
    "InvalidConfig",
    "InvalidFilter",
    "InvalidParams",
    "JobCancelled",
    "JobNotFound",
    "NotADatabase",
    "NotFound",
    "NotSupported",
    "PathNotAllowed",
    "PayloadTooLarge",
    "PermissionDenied",
    "Permissions",
    "Query",
    "QueryFailed",
    "QueryTimeout",
    "QuotaExceeded",
    "ReadOnly",
    "RecordExists",
    "RecordNotFound",
    "RequestTimeout",
    "ServerNotAllowed",
    "ServerUnreachable",
    "Service",
    "Session",
    "SessionMismatch",
    "Settings",
    "StateTooNew",
    "StorageBusy",
    "StorageError",
    "Subscription",
    "TooManyRequests",
    "Unauthorized",
    "UnknownAdapter",
    "UnknownCommand",
    "ValidationFailed",
    "adapter_names",
    "default_service",
    "execute",
    "register_adapter",
]


__getattr__ = lazy_attributes(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


_default: Service | None = None
_default_lock = threading.Lock()


def default_service() -> Service:
    """The process-wide service over ``Settings.from_env()`` (``DBHANDLES_HOME``), created on first use."""
    global _default
    from dbhandles.service import Service
    from dbhandles.settings import Settings

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
