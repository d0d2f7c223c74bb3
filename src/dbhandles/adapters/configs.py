"""The base of every adapter's config: a validated, frozen pydantic model (``AdapterConfig``, and
``FileConfig`` for a database that is a file on this machine), and the ``invalid_config`` error a
bad one gets (``config_error``). Re-exported by ``adapters.base``."""

from __future__ import annotations

import os
from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, ValidationError, WithJsonSchema, field_validator

from dbhandles.dbfiles import PATH_SCHEMA, check_path_text
from dbhandles.errors import InvalidConfig, InvalidParams, ServerNotAllowed
from dbhandles.jsonmodel import JsonModel
from dbhandles.param_errors import pydantic_words
from dbhandles.path_text import NAME_MAX
from dbhandles.values import json_text, name_text

__all__ = ["AdapterConfig", "FileConfig", "Mode", "config_error"]

Mode = Literal["create", "readwrite", "readonly"]


class AdapterConfig(JsonModel):
    """Base of every adapter's validated, frozen config (unknown keys are refused)."""

    # A JsonModel: the OpenAPI document describes each adapter's config with its model's schema.
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    mode: Mode = "readwrite"

    @property
    def readonly(self) -> bool:
        return self.mode == "readonly"

    def public(self) -> dict[str, Any]:
        """The config as shown in ``list-handles`` (secrets removed), camelCase keys."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def audit_target(self) -> str | None:
        """What the audit log's ``target`` names for a database that is not a file (``None``:
        nothing more than the handle): a server as ``postgres://host:port/dbname``, never a
        secret. Recorded for refused and failed opens too."""
        return None

    def tenant_endpoint(self) -> str | None:
        """What a non-admin actor's handle would reach, for ``security/policy.py``: ``None`` for a
        database in this process or a file (checked by path), else the one server it connects to as
        ``host:port`` (the administrator lists the servers non-admins may use).

        The default, for a config that does not say, refuses: a non-admin cannot open it.

        Raises:
            ServerNotAllowed: the config could reach something only an administrator may name.
        """
        raise ServerNotAllowed(
            f"config: only administrators may open this kind of database ({type(self).__name__})",
            field="config",
        )

    def tenant_config(self) -> AdapterConfig:
        """This config as a non-admin actor's handle opens it (after ``tenant_endpoint`` let it):
        a server's connection authenticated by what the actor gave, never by the server process's
        own identity, files or environment (``PostgresConfig.password_only``)."""
        return self


class FileConfig(AdapterConfig):
    """Base of the config of an adapter whose database is a file on this machine
    (``Features.file_based``): ``path`` names it, ``mode`` says whether it may be created or written.

    Code that needs the file (path checks, ownership records, ``get_db_path``) asks
    ``isinstance(config, FileConfig)``, so a third-party file adapter gets the same treatment by
    extending this class. For a remote caller, ``data/open`` creates a missing file itself, empty
    and private (0600), before ``prepare``: an adapter takes an empty file as an empty database.
    """

    path: Annotated[str, WithJsonSchema(PATH_SCHEMA)] = Field(min_length=1)
    #: The longest full path (bytes) the adapter's engine opens, or ``None``: no limit below the
    #: file system's (``check_path_length``).
    max_path_bytes: ClassVar[int | None] = None
    #: The longest suffix the adapter adds to the database's file name for its own files beside
    #: it (SQLite's ``-journal``: 8): the name with it must fit the file system's ``NAME_MAX``
    #: (``check_path_length``).
    own_suffix_bytes: ClassVar[int] = 0

    @field_validator("path")
    @classmethod
    def _path_text(cls, value: str) -> str:
        # One rule for every path (dbfiles.check_path_text), before anything touches the disk.
        try:
            check_path_text(value, "config.path")
        except InvalidParams as exc:
            raise ValueError(exc.message.removeprefix("config.path: ")) from exc
        return value

    def tenant_endpoint(self) -> str | None:
        return None  # a file: the path policy decides

    def check_path_length(self, path: str | os.PathLike[str]) -> None:
        """Refuse the full (absolute, resolved) ``path`` when it is longer than the engine opens
        (``max_path_bytes``), or its file name leaves no room under the file system's
        ``NAME_MAX`` for the adapter's own files named after it (``own_suffix_bytes``): checked
        before any folder of it is made, so the open is refused with words about the limit, not
        the engine's "unable to open" (a 500, or a vague ``storage_error``) after the fact.

        Raises:
            InvalidConfig: ``path`` is longer than ``max_path_bytes`` bytes (UTF-8), or its name
                longer than ``NAME_MAX - own_suffix_bytes``.
        """
        name, room = len(os.fsencode(os.path.basename(path))), NAME_MAX - self.own_suffix_bytes
        if name > room:
            raise InvalidConfig(
                f"config.path: the database's file name is {name} bytes long, and this adapter "
                f"keeps files beside it named after it with up to {self.own_suffix_bytes} bytes "
                f"more, in a file system that takes names of at most {NAME_MAX} bytes: choose "
                f"a file name of at most {room} bytes",
                field="config.path",
            )
        limit, size = self.max_path_bytes, len(os.fsencode(path))
        if limit is not None and size > limit:
            raise InvalidConfig(
                f"config.path: the database's full path is {size} bytes long, and this adapter "
                f"opens paths of at most {limit} bytes (its engine's limit); choose a shorter path",
                field="config.path",
            )


def config_error(adapter: str, exc: ValidationError) -> InvalidConfig:
    """Turn a pydantic error about an adapter config into ``invalid_config`` naming the key."""
    err = exc.errors()[0]
    where = ".".join(["config", *(name_text(str(p)) for p in err["loc"])])
    msg = "unknown key" if err["type"] == "extra_forbidden" else pydantic_words(err)
    return InvalidConfig(f"{where}: {msg} (adapter {json_text(adapter, 80)})", field=where)
