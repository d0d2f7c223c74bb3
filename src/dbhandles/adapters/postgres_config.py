"""Config of the ``postgres`` adapter: the server (a URL or its parts), the schema, the pool size.

``public()`` (what ``list-handles`` shows) never contains the password, and neither does any message
built from a URL here (``mask_url``).
"""

from __future__ import annotations

import math
import re
import urllib.parse
from typing import Annotated, Any, Literal

import psycopg
from pydantic import ConfigDict, Field, WithJsonSchema, field_validator, model_validator
from pydantic.alias_generators import to_camel

from dbhandles.adapters.base import AdapterConfig
from dbhandles.values import json_text

__all__ = ["PostgresConfig", "connection_params", "mask_url", "password_only_params"]

#: A schema name (``_check_schema``), as one pattern for Python and JSON Schema: an identifier of
#: at most 63 characters, not ``pg_*`` nor ``information_schema`` (in any case).
SCHEMA_PATTERN = (
    "^(?![Pp][Gg]_)(?!"
    + "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in "information_schema")
    + "$)[A-Za-z_][A-Za-z0-9_]{0,62}$"
)
_SCHEMA = re.compile(SCHEMA_PATTERN)
#: What ``_check_url`` asks of a URL before libpq parses it (libpq's grammar is the rest: the
#: OpenAPI document names it with the format ``dbh-postgres-url``).
_URL_SCHEMA = {"type": "string", "pattern": "^postgres(?:ql)?://", "format": "dbh-postgres-url"}


class PostgresConfig(AdapterConfig):
    """Config of the ``postgres`` adapter (camelCase on the wire).

    ``url`` (``postgresql://user@host:5432/db``; ``?schema=name`` is accepted in it) and/or its
    parts ``host``, ``port``, ``dbname``, ``user``, ``password`` (parts win over the URL; anything
    missing comes from libpq's ``PG*`` variables and ``~/.pgpass``). ``schema`` holds the collections
    (case-insensitive; created in ``create`` mode, else it must exist), ``poolSize`` caps connections.
    ``fieldNames``: ``camel`` serves the snake_case columns of tables dbhandles did not create as
    camelCase fields, with ``created_at``/``updated_at``/``version`` as the reserved fields
    (docs/foreign-tables.md). ``passwordOnly`` (forced on for a non-admin actor's handle:
    ``tenant_config``): the connection is authenticated by the password given and nothing of the
    server process's (``password_only_params``, and the adapter checks libpq's
    ``PQconnectionUsedPassword``).
    """

    model_config = ConfigDict(alias_generator=to_camel)

    url: Annotated[str, WithJsonSchema(_URL_SCHEMA)] | None = None
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    dbname: str | None = None
    user: str | None = None
    password: str | None = Field(default=None, repr=False)
    schema_name: Annotated[str, WithJsonSchema({"type": "string", "pattern": SCHEMA_PATTERN})] = (
        Field(default="public", alias="schema")
    )
    pool_size: int = Field(default=4, ge=1, le=100)
    connect_timeout: float = Field(default=10.0, gt=0, le=300)
    field_names: Literal["columns", "camel"] = "columns"
    password_only: bool = False

    @model_validator(mode="before")
    @classmethod
    def _schema_from_url(cls, data: Any) -> Any:
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("url"), str)
            or "schema=" not in data["url"]
        ):
            return data
        parts = urllib.parse.urlsplit(data["url"])
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        schemas = [v for k, v in query if k == "schema"]
        rest = urllib.parse.urlencode([(k, v) for k, v in query if k != "schema"], safe="/")
        data = {**data, "url": urllib.parse.urlunsplit(parts._replace(query=rest))}
        given = data.get("schema", data.get("schema_name"))
        if given is not None and schemas and given.lower() != schemas[-1].lower():
            raise ValueError(
                f"schema {json_text(given, 80)} differs from ?schema={schemas[-1]} in the url"
            )
        if schemas:
            data["schema"] = schemas[-1]
        return data

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("expects a URL such as postgresql://user@host:5432/dbname")
        try:
            psycopg.conninfo.conninfo_to_dict(value)
        except psycopg.Error as exc:
            raise ValueError(f"not a valid PostgreSQL URL ({mask_url(str(exc))})") from None
        return value

    @field_validator("schema_name")
    @classmethod
    def _check_schema(cls, value: str) -> str:
        if not _SCHEMA.fullmatch(value):
            raise ValueError("expects a schema name: letters, digits, underscores; not pg_*")
        return value.lower()

    def tenant_endpoint(self) -> str | None:
        """``host:port`` of the one server this config reaches, for a non-admin actor.

        Only host, port, dbname, user, password and a stricter ``sslmode`` (``TENANT_SSLMODES``,
        in the URL) may be given (no socket or service file, no
        client certificate or password file of the server's user), the host must be named (not
        taken from the server's ``PG*`` variables) and so must the password (never the server
        user's ``~/.pgpass``).

        Raises:
            ServerNotAllowed: anything else.
        """
        from dbhandles.errors import ServerNotAllowed

        params: dict[str, Any] = psycopg.conninfo.conninfo_to_dict(self.url) if self.url else {}
        for key in ("host", "port", "dbname", "user", "password"):
            value = getattr(self, key)
            if value is not None:
                params[key] = value
        extra = sorted(set(params) - {"host", "port", "dbname", "user", "password", "sslmode"})
        if extra:
            raise ServerNotAllowed(
                f"config: connection options {', '.join(extra)} are for administrators; give "
                "host, port, dbname, user, password and sslmode only",
                field="config",
            )
        if "sslmode" in params and params["sslmode"] not in TENANT_SSLMODES:
            raise ServerNotAllowed(
                f"config: sslmode {json_text(params['sslmode'], 40)} is for administrators; give "
                f"one of {', '.join(TENANT_SSLMODES)} or none (the server's own setting, "
                "PGSSLMODE, or libpq's default applies)",
                field="config",
            )
        host, port = str(params.get("host") or ""), str(params.get("port") or "5432")
        if not host or "," in host or "," in port:
            raise ServerNotAllowed(
                "config: name one PostgreSQL server (host and port)", field="config"
            )
        if not params.get("password"):
            raise ServerNotAllowed(
                "config: give the password (the server's own password file is for administrators)",
                field="config.password",
            )
        return f"{host}:{port}"

    def tenant_config(self) -> PostgresConfig:
        return self if self.password_only else self.model_copy(update={"password_only": True})

    def audit_target(self) -> str | None:
        try:
            return f"postgres://{connection_params(self)[1]}"
        except psycopg.Error:
            return "postgres://(unreadable url)"

    def public(self) -> dict[str, Any]:
        data = super().public()
        data.pop("password", None)
        if not self.password_only:
            data.pop("passwordOnly", None)  # shown where it holds (every non-admin's handle)
        if "url" in data:
            data["url"] = mask_url(data["url"])
        return data


def mask_url(text: str) -> str:
    """``text`` with the password of any URL (and any ``password=`` parameter) replaced by ``***``."""
    text = re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)
    return re.sub(r"(password=)[^&\s]*", r"\1***", text)


def connection_params(config: PostgresConfig) -> tuple[str, str, str | None]:
    """``(conninfo, where, password)``: the libpq connection string, the server as shown in errors."""
    params: dict[str, Any] = psycopg.conninfo.conninfo_to_dict(config.url) if config.url else {}
    for key in ("host", "port", "dbname", "user", "password"):
        value = getattr(config, key)
        if value is not None:
            params[key] = value
    params.setdefault("application_name", "dbhandles")
    params["connect_timeout"] = max(1, math.ceil(config.connect_timeout))
    if config.password_only:
        params.update(password_only_params(params))
    host = str(params.get("host") or "local socket")
    where = (
        f"{host}:{params.get('port') or 5432}/{params.get('dbname') or params.get('user') or ''}"
    )
    password = params.get("password")
    return psycopg.conninfo.make_conninfo(**params), where, str(password) if password else None


#: A path no file can have (a folder under ``/dev/null``): libpq takes it as "no such file"
#: (``ENOTDIR``), and nobody can create it.
NO_FILE = "/dev/null/dbhandles-none"
#: The authentication methods a tenant's connection accepts (libpq's ``require_auth``): those that
#: check a password without sending it. Cleartext ``password`` is left out: a man in the middle
#: who strips TLS (``sslmode`` below ``require``) could ask for it and read it.
PASSWORD_METHODS = "md5,scram-sha-256"
#: The ``sslmode`` values a tenant may give (only stricter than libpq's default ``prefer``).
TENANT_SSLMODES = ("require", "verify-ca", "verify-full")


def password_only_params(params: dict[str, Any]) -> dict[str, Any]:
    """libpq options that leave a connection nothing to authenticate with but the password given.

    libpq fills every option a conninfo leaves out from the server process's ``PG*`` variables
    and a service file, and reads the password file, client certificate and key from its user's
    home (``~/.pgpass``, ``~/.postgresql/``); a non-admin actor's connection must use none of
    them (docs/security.md, "Multi-tenant servers"). So the port is named (never ``PGPORT``), and
    so is every option that would let one of them in (a service file ``PGSERVICE`` names can only
    fill the options left unnamed, none of which authenticates): no ``hostaddr`` (``PGHOSTADDR``
    would send the connection elsewhere), no ``options`` (``PGOPTIONS``), no password file, no
    client certificate, no GSSAPI encryption, and, with libpq 16 or later, ``require_auth``
    refuses a server that does not ask for a password (trust, peer, ident, cert, GSSAPI, SSPI) or
    asks for it in cleartext (``password``). ``sslmode`` is not named: the tenant's own
    (``TENANT_SSLMODES``), else the operator's (``PGSSLMODE``), else libpq's default, so an
    operator's ``require`` or ``verify-full`` holds for tenants too.
    What is left (a server that asked for nothing, on an older libpq) the adapter refuses once
    connected: ``conn.pgconn.used_password`` (``PQconnectionUsedPassword``) is false.
    """
    found: dict[str, Any] = {
        "port": params.get("port") or "5432",
        "hostaddr": "",
        "options": "",
        "passfile": NO_FILE,
        "sslcert": NO_FILE,
        "sslkey": NO_FILE,
        "gssencmode": "disable",
    }
    if psycopg.pq.version() >= 160000:
        found["sslcertmode"] = "disable"
        found["require_auth"] = PASSWORD_METHODS
    return found
