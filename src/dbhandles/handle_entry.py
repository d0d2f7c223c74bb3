"""What a handle is: the rules for handle and alias names, and ``HandleEntry``, a resolved handle."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dbhandles.adapters import Adapter, AdapterConfig, get_adapter_class
from dbhandles.errors import InvalidConfig, InvalidParams
from dbhandles.filters import FilterNode
from dbhandles.security.permissions import Permissions, effective
from dbhandles.values import json_text

__all__ = [
    "ALIAS_PATTERN",
    "DEFAULT_HANDLE",
    "HANDLE_PATTERN",
    "WELL_KNOWN_ALIASES",
    "HandleEntry",
    "alias_key",
    "check_alias",
    "check_handle_name",
    "is_handle_id",
    "parse_config",
    "shown_alias",
]

DEFAULT_HANDLE = "default"
WELL_KNOWN_ALIASES = ("primary", "archive")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
#: Every alias ``check_alias`` accepts, as one pattern (Python and JSON Schema): the shape, and
#: neither 'default' nor anything that looks like a handle.
ALIAS_PATTERN = (
    f"^(?!{DEFAULT_HANDLE}$)(?!{_UUID.pattern.removeprefix('^')})"
    + _ALIAS.pattern.removeprefix("^")
)
#: What a ``dbHandle`` can be: 'default', a handle (a UUID) or an alias. Anything else is refused
#: (``invalid_params``) before the handle table is asked.
HANDLE_PATTERN = f"^(?:{DEFAULT_HANDLE}|{_UUID.pattern[1:-1]}|{_ALIAS.pattern[1:-1]})$"
_HANDLE = re.compile(HANDLE_PATTERN)


def check_alias(alias: object) -> str:
    """``alias`` if it can be an alias (``ALIAS_PATTERN``), else ``invalid_params`` naming ``alias``."""
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias) or alias == DEFAULT_HANDLE:
        raise InvalidParams(
            f"alias: {json_text(alias, 80)} is not a valid alias; use a letter then letters, digits, '_', '.' "
            "or '-' (for example 'primary' or 'training'), not 'default'",
            field="alias",
        )
    if _UUID.fullmatch(alias):
        raise InvalidParams("alias: an alias cannot look like a handle (UUID)", field="alias")
    return alias


def alias_key(alias: str, actor: str | None) -> str:
    """The handle store's key of an alias: ``<actor>:<alias>`` for a non-admin actor's alias, the
    alias itself for an administrator's (``actor`` ``None``).

    Aliases belong to actors (docs/security.md, "Multi-tenant servers"): each non-admin actor has
    its own names, so one actor pointing ``training`` never keeps another from pointing its own
    ``training``. ``:`` is in no alias and no actor name, so the key can never be spelled by a
    caller, and an administrator's alias never collides with an actor's.
    """
    return alias if actor is None else f"{actor}:{alias}"


def shown_alias(key: str, actor: str | None) -> str:
    """How the alias stored under ``key`` is named to ``actor`` (``None``: an administrator, who
    sees every key as stored, ``bob:training`` for bob's ``training``)."""
    if actor is not None and key.startswith(f"{actor}:"):
        return key[len(actor) + 1 :]
    return key


def is_handle_id(name: str) -> bool:
    """Whether ``name`` has the shape of a handle (a UUID), not of an alias."""
    return _UUID.fullmatch(name) is not None


def check_handle_name(name: object, field: str = "dbHandle") -> str:
    """``name`` if it can name a handle (``HANDLE_PATTERN``), else ``invalid_params``: the one rule,
    applied by ``resolve`` and when params are parsed (commands/grammar.py ``HandleName``)."""
    if not isinstance(name, str) or not _HANDLE.fullmatch(name):
        raise InvalidParams(
            f"{field}: {json_text(name, 80)} is not a handle (a UUID from data/open), an alias (a letter, then "
            "letters, digits, '_', '.' or '-') or 'default'",
            field=field,
        )
    return name


def parse_config(
    adapter: str, config: Mapping[str, Any] | None
) -> tuple[type[Adapter], AdapterConfig]:
    """Validate an adapter name and config without touching anything on disk.

    Raises:
        UnknownAdapter, InvalidConfig, InvalidParams, DriverMissing.
    """
    cls = get_adapter_class(adapter)
    if config is not None:
        return cls, cls.parse_config(config)
    try:
        return cls, cls.parse_config({})
    except InvalidConfig as exc:
        raise InvalidParams(
            f"config: missing ({exc.message}); for {adapter} use for example "
            '--config=\'{"path":"/path/to/database","mode":"create"}\'',
            field="config",
        ) from exc


@dataclass(slots=True)
class HandleEntry:
    """A resolved handle: which adapter, with what config, and its bookkeeping."""

    handle: str
    adapter_name: str
    config: AdapterConfig
    opened_at: int
    last_used_at: int
    emit_events: bool = True
    is_default: bool = False
    durable: bool = True
    owner: str | None = None
    #: A non-admin's (``owner``'s) handle: its memory or json database counts against the owner's
    #: total (``adapters/memory_quota``). A handle read from the handle store counts when it has
    #: an owner (whether that owner is an administrator is not stored).
    metered: bool = False
    aliases: list[str] = field(default_factory=list)
    permissions: Permissions | None = None
    row_filter: FilterNode | None = None
    #: The connection key, computed once (it may resolve paths).
    key: str | None = None
    #: Read from the handle store (not opened by this call): its file is checked again before a
    #: connection is made (``HandleRegistry._acquire``, ``security/file_names.py``).
    stored: bool = False

    def __post_init__(self) -> None:
        if self.permissions is not None and self.row_filter is None:
            self.row_filter = self.permissions.row_filter_node()

    def info(self) -> dict[str, Any]:
        """The wire form used by ``data/list-handles``."""
        return {
            "handle": self.handle,
            "adapter": self.adapter_name,
            "config": self.config.public(),
            "isDefault": self.is_default,
            "openedAt": self.opened_at,
            "lastUsedAt": self.last_used_at,
            "emitEvents": self.emit_events,
            "durable": self.durable,
            "aliases": sorted(self.aliases),
            "owner": self.owner,
            # The rights it really has: a read-only handle writes nothing, whatever it was granted.
            "permissions": _wire(effective(self.permissions, self.config.readonly)),
        }


def _wire(permissions: Permissions | None) -> dict[str, Any] | None:
    return permissions.to_wire() if permissions is not None else None
