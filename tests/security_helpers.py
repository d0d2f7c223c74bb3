"""Two ordinary tenants, ``alice`` and ``bob``, on one in-process service: the contexts, service and
helpers the security tests of crafted database files share (rounds 11 to 14, FTS, schema refusals)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Context, Service
from dbhandles.errors import DbHandlesError
from dbhandles.settings import Settings

ALICE = Context(actor="alice", session_id="s-alice", is_admin=False, trusted_local=False)
BOB = Context(actor="bob", session_id="s-bob", is_admin=False, trusted_local=False)
#: An administrator (the tests that check what administrators keep, or are refused too).
ROOT = Context(actor="root", session_id="s-root", is_admin=True, trusted_local=False)
#: Each tenant's context by its actor name.
TENANTS = {"alice": ALICE, "bob": BOB}


def with_tenants(service: Service) -> Service:
    """``service``, given a token for each of :data:`TENANTS` (alice, then bob)."""
    for actor in TENANTS:
        service.tokens.create(actor)
    return service


def two_tenants(tmp_path: Path, **settings: Any) -> Service:
    """A service on ``tmp_path/home`` (with ``settings``) holding a token for alice and one for
    bob; the caller closes it (``with two_tenants(tmp_path) as service:``). A test module marked
    ``pytest.mark.two_tenants`` gets one with the default settings as its ``service`` fixture
    (tests/conftest.py)."""
    return with_tenants(Service(settings=Settings(home=tmp_path / "home", **settings)))


def space(service: Service, actor: str) -> Path:
    """``actor``'s data space (made if missing)."""
    folder = service.settings.space_root() / actor
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def refused(
    service: Service, name: str, params: dict[str, Any], context: Context = ALICE
) -> DbHandlesError:
    """The error the command ``name`` raises for ``params`` as ``context``; fails if it succeeds."""
    with pytest.raises(DbHandlesError) as caught:
        service.execute(name, params, context=context)
    return caught.value


def crafted_file(service: Service, actor: str, name: str, *sql: str) -> str:
    """A database ``actor`` put in its space from a shell as ``name``, holding ``sql`` (run in
    order on one connection); its handle to it."""
    conn = sqlite3.connect(space(service, actor) / name)
    for statement in sql:
        conn.execute(statement)
    conn.commit()
    conn.close()
    opened = service.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": name}}, context=TENANTS[actor]
    )
    return str(opened["dbHandle"])


#: What ``granted_handle`` grants unless told otherwise: reading all but ``secret``.
READ_ALL_BUT_SECRET: dict[str, Any] = {
    "access": "read",
    "permissions": {"deniedCollections": ["secret"]},
}


def granted_handle(
    service: Service,
    handle: str,
    owner: str,
    reader: str,
    name: str,
    grant: dict[str, Any] | None = None,
) -> str:
    """``reader``'s handle to ``owner``'s file ``name`` (``owner``'s ``handle``), which ``owner``
    granted it with ``grant`` (data/grant's ``access`` and ``permissions``; by default
    ``READ_ALL_BUT_SECRET``)."""
    params = {"dbHandle": handle, "actor": reader, **(grant or READ_ALL_BUT_SECRET)}
    service.execute("data/grant", params, context=TENANTS[owner])
    opened = service.execute(
        "data/open",
        {"adapter": "sqlite", "config": {"path": str(space(service, owner) / name)}},
        context=TENANTS[reader],
    )
    return str(opened["dbHandle"])
