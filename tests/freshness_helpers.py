"""Two services on one home, the second standing for another process: the setup the freshness tests
share (``data/read``'s direct path, ``data/list`` of collections and foreign tables), which change a
grant, an alias or a collection through the second and expect the first to see it at once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dbhandles import Context, Service, Settings

ALICE = Context(actor="alice", session_id="s-alice", is_admin=False, trusted_local=False)
BOB = Context(actor="bob", session_id="s-bob", is_admin=False, trusted_local=False)
ADMIN = Context(actor="root", session_id="s-root", is_admin=True, trusted_local=False)


@contextmanager
def two_services(tmp_path: Path) -> Iterator[tuple[Service, Service]]:
    """``(service, other)``: two services on ``tmp_path/home``, both closed on exit."""
    settings = Settings(home=tmp_path / "home")
    with Service(settings=settings) as service, Service(settings=settings) as other:
        yield service, other


def open_file(service: Service, path: Path, context: Context = ADMIN, **extra: Any) -> str:
    """``context``'s handle to the SQLite file ``path`` (made if missing); ``extra``: more params
    of ``data/open`` (an ``alias``)."""
    config = {"path": str(path), "mode": "create"}
    params = {"adapter": "sqlite", "config": config, **extra}
    return str(service.execute("data/open", params, context=context)["dbHandle"])


def notes_granted_to_alice(service: Service, path: Path, **data: Any) -> tuple[str, str]:
    """Collection ``notes`` of ``path`` with ``r1`` (``ownerId`` alice) and ``r2`` (bob), each
    holding ``data`` too, granted to alice for reading: (the administrator's handle, alice's)."""
    admin = open_file(service, path)
    for record_id, owner in (("r1", "alice"), ("r2", "bob")):
        service.execute("data/create", {"dbHandle": admin, "collection": "notes", "id": record_id,
                                        "data": {"ownerId": owner, **data}}, context=ADMIN)  # fmt: skip
    service.execute("data/grant", {"dbHandle": admin, "actor": "alice", "access": "read"},
                    context=ADMIN)  # fmt: skip
    return admin, open_file(service, path, ALICE)


def narrow_alice_to_her_rows(other: Service, path: Path) -> str:
    """Through ``other``, narrow alice's grant on ``path`` to the rows whose ``ownerId`` is hers
    (which closes her handles); the administrator's handle in ``other``."""
    admin = open_file(other, path)
    other.execute("data/grant", {"dbHandle": admin, "actor": "alice", "access": "read",
                                 "permissions": {"rowFilter": {"ownerId": "alice"}}},
                  context=ADMIN)  # fmt: skip
    return admin


#: What a call through a handle whose grant was revoked elsewhere may be refused with: the handle
#: closed with the grant, or the grant found gone.
REVOKED = frozenset({"handle_not_found", "permission_denied", "access_denied"})


def one_record(service: Service, path: Path) -> str:
    """The local caller's handle to ``path`` (made if missing) holding record ``r`` of collection
    ``c``, ``{"v": 1}``."""
    handle = open_file(service, path, Context())
    service.execute("data/create", {"dbHandle": handle, "collection": "c", "id": "r",
                                    "data": {"v": 1}})  # fmt: skip
    return handle


def created_elsewhere(
    other: Service, path: Path, collection: str, record_id: str, data: dict[str, Any]
) -> None:
    """Through ``other`` (another process), create the record ``record_id`` of ``collection`` in
    ``path`` holding ``data``."""
    handle = open_file(other, path, Context())
    other.execute("data/create", {"dbHandle": handle, "collection": collection, "id": record_id,
                                  "data": data})  # fmt: skip
