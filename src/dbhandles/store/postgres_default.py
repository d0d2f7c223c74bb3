"""PostgreSQL as the default database (``DBHANDLES_DEFAULT_URL``): the default handle, store and events.

With a default URL set, ``default`` is a ``postgres`` handle on that server, the registry's tables live
there (``PostgresHandleStore``), and a ``PostgresEventBridge`` carries events between every process
that shares it. ``?schema=name`` in the URL picks the schema (default ``public``), so several
deployments can share one server. Imported only when a default URL is set: ``import dbhandles``
never needs psycopg.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbhandles.adapters import AdapterConfig, get_adapter_class
from dbhandles.errors import InvalidConfig

if TYPE_CHECKING:
    from dbhandles.store import HandleStore

__all__ = ["default_config", "default_database"]


def default_config(url: str) -> AdapterConfig:
    """The ``postgres`` config of the default database (``create`` mode: the schema is made if missing).

    Raises:
        DriverMissing: psycopg is not installed (the message names ``pip install 'dbhandles[postgres]'``).
        InvalidConfig: the URL is not a PostgreSQL URL (the message never shows its password).
    """
    cls = get_adapter_class("postgres")
    try:
        config = cls.parse_config({"url": url, "mode": "create"})
    except InvalidConfig as exc:
        raise InvalidConfig(
            f"DBHANDLES_DEFAULT_URL: {exc.message}", field="DBHANDLES_DEFAULT_URL"
        ) from exc
    return cls.prepare(config)


def default_database(
    url: str, store: HandleStore | None = None
) -> tuple[str, AdapterConfig, HandleStore]:
    """``(adapter name, config, store)`` for a PostgreSQL default: what the registry needs.

    Raises:
        DriverMissing, InvalidConfig, StorageError (the server cannot be reached), DatabaseNotFound.
    """
    config = default_config(url)  # first: without psycopg this is DriverMissing, not ImportError
    from dbhandles.adapters.postgres_config import PostgresConfig
    from dbhandles.store.postgres import PostgresHandleStore

    assert isinstance(config, PostgresConfig)
    return "postgres", config, store if store is not None else PostgresHandleStore(config)
