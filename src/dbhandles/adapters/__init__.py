"""Adapters by name: built-ins and ``dbhandles.adapters`` entry points go through the same registry."""

from __future__ import annotations

import importlib
import threading
from typing import Any

from dbhandles.adapters.base import Adapter, AdapterConfig, Features, FileConfig, Query, Session
from dbhandles.errors import DriverMissing, UnknownAdapter
from dbhandles.values import json_text

__all__ = [
    "Adapter",
    "AdapterConfig",
    "Features",
    "FileConfig",
    "Query",
    "Session",
    "adapter_names",
    "get_adapter_class",
    "ready_adapter_classes",
    "register_adapter",
]

ENTRY_POINT_GROUP = "dbhandles.adapters"

#: Built-ins are named by import path so that ``import dbhandles`` never imports an optional driver.
_BUILTIN: dict[str, str] = {
    "sqlite": "dbhandles.adapters.sqlite:SqliteAdapter",
    "memory": "dbhandles.adapters.memory:MemoryAdapter",
    "json": "dbhandles.adapters.jsonfile:JsonFileAdapter",
    "postgres": "dbhandles.adapters.postgres:PostgresAdapter",
}
_EXTRAS: dict[str, str] = {"postgres": "postgres"}

_lock = threading.Lock()
_paths: dict[str, str] = dict(_BUILTIN)
_classes: dict[str, type[Adapter]] = {}
_entry_points_loaded = False
#: ``ready_adapter_classes``' answer, kept until an adapter is registered or an optional one loaded.
_ready: tuple[type[Adapter], ...] | None = None


def register_adapter(cls: type[Adapter] | str, name: str | None = None) -> None:
    """Register an adapter class (or its ``"module:Class"`` path) under its name.

    Raises:
        ValueError: the name is already taken by another adapter.
    """
    global _ready
    with _lock:
        if isinstance(cls, str):
            if name is None:
                raise ValueError("register_adapter needs a name when given an import path")
            key, target = name, cls
        else:
            key, target = name or cls.name, f"{cls.__module__}:{cls.__qualname__}"
        if key in _paths and _paths[key] != target:
            raise ValueError(f"adapter name {key!r} is already registered by {_paths[key]}")
        _paths[key] = target
        if not isinstance(cls, str):
            _classes[key] = cls
        _ready = None


def entry_points(group: str) -> Any:
    """``importlib.metadata.entry_points``, imported on first use (it is slow to import, and most
    runs never need it: only naming an adapter that is not built in does)."""
    from importlib.metadata import entry_points as found

    return found(group=group)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _paths:
            register_adapter(ep.value, ep.name)


def adapter_names() -> list[str]:
    """Every adapter name that ``data/open`` accepts."""
    _load_entry_points()
    return sorted(_paths)


def get_adapter_class(name: object) -> type[Adapter]:
    """The adapter class registered as ``name``.

    Raises:
        UnknownAdapter: no such adapter (the message lists the known ones).
        DriverMissing: the adapter needs an optional driver that is not installed.
    """
    if not isinstance(name, str) or name not in _paths:
        _load_entry_points()  # only a name we do not know yet needs the installed plugins
    if not isinstance(name, str) or name not in _paths:
        known = ", ".join(adapter_names())
        raise UnknownAdapter(
            f"adapter: unknown adapter {json_text(name, 80)}; known adapters: {known}. "
            'Example: data/open --adapter=sqlite --config=\'{"path":"/tmp/my.sqlite","mode":"create"}\'',
            field="adapter",
        )
    cls = _classes.get(name)
    if cls is not None:
        return cls
    module_name, _, attr = _paths[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = _EXTRAS.get(name)
        hint = (
            f"pip install 'dbhandles[{extra}]'"
            if extra
            else f"install the package providing {module_name}"
        )
        raise DriverMissing(
            f"the {json_text(name, 80)} adapter needs a driver that is not installed: {hint} ({exc})"
        ) from exc
    loaded = getattr(module, attr)
    if not (isinstance(loaded, type) and issubclass(loaded, Adapter)):
        raise UnknownAdapter(
            f"adapter {json_text(name, 80)} does not point at an Adapter subclass", field="adapter"
        )
    global _ready
    with _lock:
        _classes[name] = loaded
        if name in _EXTRAS:
            _ready = None  # an optional adapter is ready from now on
    return loaded


def ready_adapter_classes() -> tuple[type[Adapter], ...]:
    """The adapter classes this process can ask without importing an optional driver or scanning
    the installed plugins (``adapter_names`` does): every adapter registered so far, but one that
    needs an optional driver (``_EXTRAS``) only once it is imported. For questions asked on every
    ``data/open`` (``security/database_files.py``), which must stay cheap in a ``jtag`` run.
    The answer is kept (the same tuple each time) until ``register_adapter`` adds an adapter or an
    optional one is imported, so a caller may memoise what it derives from it by its identity."""
    global _ready
    ready = _ready
    if ready is not None:
        return ready
    with _lock:
        names = sorted(_paths)
        loaded = set(_classes)
    found = []
    for name in names:
        if name in _EXTRAS and name not in loaded:
            continue
        try:
            found.append(get_adapter_class(name))
        except (DriverMissing, UnknownAdapter):
            continue
    ready = tuple(found)
    with _lock:
        if _paths.keys() == set(names) and set(_classes) >= loaded:
            _ready = ready  # nothing was registered meanwhile
    return ready
