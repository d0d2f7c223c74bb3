"""Issue 12 left-overs 1 and 5: SQLite's own refusals of a view are ``access_denied``, and one
refused or slow table never fails ``data/schema`` for the whole database.

Under ``trusted_schema=OFF`` SQLite itself refuses a view over a virtual table whose module is not
innocuous (``dbstat`` by its own name, a table ``USING dbstat``), and a view over a revealing
module this SQLite does not load (``fsdir``, ``sqlite_dbpage``) fails as a missing table: each is
the refusal the guard gives for ``pragma_*`` (``sqlite_guard.schema_refusal``), never
``read_only`` ("module is not loaded") nor ``storage_error``. See docs/security.md, section 8.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dbhandles import Context, Service
from tests.security_helpers import ALICE, BOB, crafted_file, granted_handle, refused, two_tenants

pytestmark = pytest.mark.two_tenants

#: Views SQLite refuses itself, each over something that shows the file or the connection.
REFUSED_VIEWS = {
    "over_dbstat": "CREATE VIEW over_dbstat AS SELECT * FROM dbstat",
    "over_vt": "CREATE VIEW over_vt AS SELECT * FROM vt",
    "over_fsdir": "CREATE VIEW over_fsdir AS SELECT * FROM fsdir",
    "over_dbpage": "CREATE VIEW over_dbpage AS SELECT * FROM sqlite_dbpage",
    "joined": "CREATE VIEW joined AS SELECT t.id FROM t, dbstat",
}
#: A view no time budget lets finish.
ENDLESS = (
    "CREATE VIEW {name} AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
    "SELECT x AS id FROM c"
)


def crafted(service: Service, *sql: str) -> str:
    """A database alice put in her space from a shell: ``t`` (one row), ``secret``, ``vt``
    (``USING dbstat``) and ``sql``; her handle to it."""
    return crafted_file(
        service,
        "alice",
        "f.sqlite",
        "CREATE TABLE t (id TEXT PRIMARY KEY, a)",
        "INSERT INTO t VALUES ('r1', 1)",
        "CREATE TABLE secret (id TEXT PRIMARY KEY, s)",
        "CREATE VIRTUAL TABLE vt USING dbstat",
        *sql,
    )


def bobs_handle(service: Service, handle: str) -> str:
    """Bob's handle to alice's file, granted everything but ``secret``."""
    return granted_handle(service, handle, "alice", "bob", "f.sqlite")


def listing(service: Service, handle: str, context: Context) -> dict[str, dict[str, Any]]:
    answer = service.execute("data/schema", {"dbHandle": handle}, context=context)
    return {entry["name"]: entry for entry in answer["collections"]}


@pytest.mark.parametrize("view", sorted(REFUSED_VIEWS))
def test_a_view_sqlite_refuses_is_access_denied_with_the_reason(
    service: Service, view: str
) -> None:
    handle = crafted(service, REFUSED_VIEWS[view])
    home = str(service.settings.home)
    for command in ("data/list", "data/count", "data/read", "data/query-open"):
        params: dict[str, Any] = {"dbHandle": handle, "collection": view}
        if command == "data/read":
            params["id"] = '["x"]'
        error = refused(service, command, params, ALICE)
        assert error.code == "access_denied", (command, error)
        assert f'"{view}"' in error.message and "not loaded" not in error.message
        assert home not in error.message and "f.sqlite" not in error.message
    one = service.execute("data/schema", {"dbHandle": handle, "collection": view}, context=ALICE)
    assert one["table"]["recordCount"] is None
    assert one["table"]["refusedCode"] == "access_denied"


def test_schema_lists_every_table_and_marks_the_refused_views(service: Service) -> None:
    handle = crafted(service, *REFUSED_VIEWS.values())
    listed = listing(service, handle, ALICE)
    assert listed["t"]["recordCount"] == 1 and "refused" not in listed["t"]
    for view in (*REFUSED_VIEWS, "vt"):
        assert listed[view]["recordCount"] is None, view
        assert listed[view]["refusedCode"] == "access_denied", listed[view]
        assert "not loaded" not in listed[view]["refused"]


def test_a_restricted_grantee_gets_the_schema_without_the_views_it_cannot_check(
    service: Service,
) -> None:
    """Bob's grant denies ``secret``: what a view SQLite will not prepare reads cannot be told,
    so it is not listed for him (as a view over ``secret`` is not); the rest is listed."""
    handle = crafted(service, *REFUSED_VIEWS.values(), "CREATE VIEW peek AS SELECT * FROM secret")
    listed = listing(service, bobs_handle(service, handle), BOB)
    assert listed["t"]["recordCount"] == 1
    assert not set(listed) & {*REFUSED_VIEWS, "secret", "peek"}
    error = refused(service, "data/list", {"dbHandle": bobs_handle(service, handle),
                                           "collection": "over_dbstat"}, BOB)  # fmt: skip
    assert error.code in ("access_denied", "permission_denied"), error


def test_a_slow_view_is_marked_and_the_others_are_counted(tmp_path: Path) -> None:
    with two_tenants(tmp_path, query_timeout_ms=300) as service:
        handle = crafted(service, ENDLESS.format(name="a_slow"), ENDLESS.format(name="b_slow"))
        service.execute("data/create", {"dbHandle": handle, "collection": "notes",
                                        "data": {"a": 1}}, context=ALICE)  # fmt: skip
        listed = listing(service, handle, ALICE)
        for slow in ("a_slow", "b_slow"):
            assert listed[slow]["recordCount"] is None
            assert listed[slow]["refusedCode"] == "query_timeout", listed[slow]
        assert listed["t"]["recordCount"] == 1 and listed["notes"]["recordCount"] == 1
        one = service.execute("data/schema", {"dbHandle": handle, "collection": "a_slow"},
                              context=ALICE)  # fmt: skip
        assert one["table"]["refusedCode"] == "query_timeout"
        # The handle keeps working after the stopped counts.
        assert service.execute("data/count", {"dbHandle": handle, "collection": "t"},
                               context=ALICE)["total"] == 1  # fmt: skip
