"""A foreign table read by key from its kept statement (``ForeignReader.point``) is still read
under the access decided on every call: a grant narrowed or revoked through a second ``Service``
on the same home (another process, as far as the first knows) applies to the very next read."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dbhandles import Context, Service, Settings
from dbhandles.errors import DbHandlesError

ALICE = Context(actor="alice", session_id="s-alice", is_admin=False, trusted_local=False)
ADMIN = Context(actor="root", session_id="s-root", is_admin=True, trusted_local=False)


def _read(service: Service, handle: str, record_id: str) -> dict[str, object]:
    return service.execute(
        "data/read", {"dbHandle": handle, "collection": "people", "id": record_id}, context=ALICE
    )


def test_a_grant_changed_by_another_service_applies_to_kept_point_reads(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE people (n INTEGER PRIMARY KEY, ownerId TEXT, name TEXT)")
    conn.executemany("INSERT INTO people VALUES (?, ?, ?)", [(1, "alice", "ada"), (2, "bob", "bo")])
    conn.commit()
    conn.close()
    settings = Settings(home=tmp_path / "home")
    with Service(settings=settings) as service, Service(settings=settings) as other:
        admin = service.execute(
            "data/open", {"adapter": "sqlite", "config": {"path": str(path)}}, context=ADMIN
        )["dbHandle"]
        service.execute("data/grant", {"dbHandle": admin, "actor": "alice", "access": "read"},
                        context=ADMIN)  # fmt: skip
        mine = service.execute(
            "data/open", {"adapter": "sqlite", "config": {"path": str(path)}}, context=ALICE
        )["dbHandle"]
        for _ in range(3):  # the first read keeps the statement, the others run it
            assert _read(service, mine, "2")["data"] == {"id": 2, "n": 2, "ownerId": "bob",
                                                         "name": "bo"}  # fmt: skip
        # Narrowed elsewhere to her own rows: row 2 is hidden at once, row 1 still read.
        other_admin = other.execute(
            "data/open", {"adapter": "sqlite", "config": {"path": str(path)}}, context=ADMIN
        )["dbHandle"]
        other.execute(
            "data/grant",
            {"dbHandle": other_admin, "actor": "alice", "access": "read",
             "permissions": {"rowFilter": {"ownerId": "alice"}}},
            context=ADMIN,
        )  # fmt: skip
        # The handle she had is closed by the narrowing (``GrantResult.handlesClosed``).
        with pytest.raises(DbHandlesError) as closed:
            _read(service, mine, "2")
        assert closed.value.code == "handle_not_found"
        mine = service.execute(
            "data/open", {"adapter": "sqlite", "config": {"path": str(path)}}, context=ALICE
        )["dbHandle"]
        assert _read(service, mine, "2")["found"] is False
        assert _read(service, mine, "1")["data"]["name"] == "ada"
        # Revoked elsewhere: the next read is refused, kept statement or not.
        other.execute("data/revoke", {"dbHandle": other_admin, "actor": "alice"}, context=ADMIN)
        with pytest.raises(DbHandlesError) as refused:
            _read(service, mine, "1")
        assert refused.value.code in {"handle_not_found", "permission_denied", "access_denied"}
