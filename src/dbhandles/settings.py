"""Service settings declared as data; the environment is read only by ``Settings.from_env``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

__all__ = ["SETTINGS_HELP", "Settings", "default_home"]


def default_home() -> Path:
    """``~/.dbhandles``: where the default database and the handle table live."""
    return Path.home() / ".dbhandles"


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of the service. ``Settings.from_env()`` reads the ``DBHANDLES_*`` variables."""

    home: Path = field(default_factory=default_home)
    default_limit: int = 100
    max_limit: int = 500
    query_page_size: int = 100
    cursor_ttl_seconds: float = 300.0
    idle_release_seconds: float = 300.0
    max_body_bytes: int = 10 * 1024 * 1024
    #: File databases may be opened only under these folders (``None``: the home and the temp folder).
    allowed_roots: tuple[Path, ...] | None = None
    max_handles_per_actor: int = 100
    #: Writes are refused once a database is larger than this many bytes (0: no limit).
    max_db_bytes: int = 0
    audit: bool = True
    #: A postgresql:// URL: the default database and the handle table live there, shared by servers.
    default_url: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # Accept str paths from callers; keep Path internally.
        if not isinstance(self.home, Path):
            object.__setattr__(self, "home", Path(self.home).expanduser())
        if self.allowed_roots is not None:
            object.__setattr__(
                self, "allowed_roots", tuple(Path(r).expanduser() for r in self.allowed_roots)
            )

    @property
    def default_path(self) -> Path:
        return self.home / "default.sqlite"

    def roots(self) -> tuple[Path, ...]:
        """The allowed roots, resolved (defaults: the home and the system temp folder)."""
        import tempfile

        roots = (
            self.allowed_roots
            if self.allowed_roots is not None
            else (self.home, Path(tempfile.gettempdir()))
        )
        return tuple(Path(os.path.realpath(r)) for r in roots)

    def with_home(self, home: str | os.PathLike[str]) -> Settings:
        return replace(self, home=Path(home).expanduser())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``DBHANDLES_<NAME>`` variables (``DBHANDLES_HOME``, ``DBHANDLES_MAX_LIMIT``...)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"DBHANDLES_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            if f.name == "home":
                values["home"] = Path(raw).expanduser()
            elif f.name == "allowed_roots":
                values[f.name] = tuple(Path(p).expanduser() for p in raw.split(os.pathsep) if p)
            elif f.name == "default_url":
                values[f.name] = raw
            elif f.type in ("bool", bool):
                values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            elif f.type in ("int", int):
                values[f.name] = int(raw)
            else:
                values[f.name] = float(raw)
        return cls(**values)


SETTINGS_HELP: dict[str, str] = {
    "home": "Folder of the default database (default.sqlite) and the handle table. Env DBHANDLES_HOME.",
    "default_limit": "data/list page size when no limit is given. Env DBHANDLES_DEFAULT_LIMIT.",
    "max_limit": "Largest limit data/list accepts. Env DBHANDLES_MAX_LIMIT.",
    "query_page_size": "query-open page size when none is given. Env DBHANDLES_QUERY_PAGE_SIZE.",
    "cursor_ttl_seconds": "Idle query cursors expire after this. Env DBHANDLES_CURSOR_TTL_SECONDS.",
    "idle_release_seconds": "Idle connections are released after this (handles stay valid). "
    "Env DBHANDLES_IDLE_RELEASE_SECONDS.",
    "max_body_bytes": "Largest HTTP request body the server accepts. Env DBHANDLES_MAX_BODY_BYTES.",
    "allowed_roots": "Folders (separated by ':') under which file databases may be opened by remote "
    "actors; default: the home and the system temp folder. Env DBHANDLES_ALLOWED_ROOTS.",
    "max_handles_per_actor": "Open handles one (non-admin) actor may hold. Env DBHANDLES_MAX_HANDLES_PER_ACTOR.",
    "max_db_bytes": "Writes are refused past this database size, 0 for no limit. Env DBHANDLES_MAX_DB_BYTES.",
    "audit": "Write an audit row for every data command. Env DBHANDLES_AUDIT.",
    "default_url": "postgresql:// URL of a shared default database (handles, aliases and cursors live "
    "there; ?schema=name picks the schema). Env DBHANDLES_DEFAULT_URL.",
}
