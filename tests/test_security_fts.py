"""Issue 12: what a database file's virtual tables read is held to the same rules as its views.

An external-content full-text table (FTS3/FTS4/FTS5 ``content=``) or an ``fts5vocab`` table reads
another table in SQL of its own; a ``dbstat`` table under any name shows the file. Reaching a
pragma or eponymous table that way is refused (``access_denied``), and a collection a grant
denies stays denied through the full-text table and every view over it. See docs/security.md.
"""

from __future__ import annotations

import pytest

from dbhandles import Context, Service
from dbhandles.adapters.sqlite_vtables import parse_using
from dbhandles.errors import DbHandlesError
from tests.security_helpers import ALICE, BOB, crafted_file, granted_handle, refused

pytestmark = pytest.mark.two_tenants


def crafted(service: Service, *sql: str) -> str:
    """A database alice put in her space from a shell, holding ``sql``; her handle to it."""
    return crafted_file(
        service,
        "alice",
        "fts.sqlite",
        "CREATE TABLE t (id TEXT PRIMARY KEY, a)",
        "CREATE TABLE secret (id INTEGER PRIMARY KEY, s)",
        "INSERT INTO secret (s) VALUES ('hidden words here')",
        *sql,
    )


def bobs_handle(service: Service, handle: str) -> str:
    """Bob's handle to alice's file, granted everything but ``secret``."""
    return granted_handle(service, handle, "alice", "bob", "fts.sqlite")


# -- 1. virtual tables that read SQLite's own tables ------------------------------------------------


@pytest.mark.parametrize(
    "create",
    [
        "CREATE VIRTUAL TABLE vt USING fts5(name, file, content='pragma_database_list', "
        "content_rowid='seq')",
        'CREATE VIRTUAL TABLE vt USING fts4(name, file, content="pragma_database_list")',
        "CREATE VIRTUAL TABLE vt USING fts3(name, file, content=pragma_database_list)",
        "CREATE VIRTUAL TABLE vt USING fts5(name, content='PRAGMA_COMPILE_OPTIONS')",
        "CREATE VIRTUAL TABLE vt USING dbstat",
    ],
)
def test_a_virtual_table_reading_a_pragma_table_is_refused(service: Service, create: str) -> None:
    handle = crafted(service, create, "CREATE VIEW over AS SELECT * FROM vt")
    home = str(service.settings.home)
    for collection in ("vt", "over"):
        for command in ("data/list", "data/count"):
            error = refused(service, command, {"dbHandle": handle, "collection": collection}, ALICE)
            # (SQLite itself refuses dbstat in a view under trusted_schema=OFF: the same code.)
            assert error.code == "access_denied", (collection, command, error)
            assert home not in error.message and "fts.sqlite" not in error.message
            if collection == "vt":
                assert '"vt"' in error.message
            assert "pragma_" in error.message.lower() or "dbstat" in error.message
    # The rest of the file is served.
    assert service.execute("data/list", {"dbHandle": handle, "collection": "t"},
                           context=ALICE)["count"] == 0  # fmt: skip


def test_an_fts_table_over_another_fts_reading_a_pragma_is_refused(service: Service) -> None:
    handle = crafted(
        service,
        "CREATE VIRTUAL TABLE inner_vt USING fts5(name, file, content='pragma_database_list')",
        "CREATE VIRTUAL TABLE words USING fts5vocab(inner_vt, row)",
    )
    error = refused(service, "data/list", {"dbHandle": handle, "collection": "words"}, ALICE)
    assert error.code == "access_denied" and "pragma_database_list" in error.message


def test_plain_fts_rtree_and_content_tables_still_work(service: Service) -> None:
    handle = crafted(
        service,
        "CREATE VIRTUAL TABLE plain USING fts5(body)",
        "INSERT INTO plain (body) VALUES ('hello world')",
        "CREATE VIRTUAL TABLE ext USING fts5(a, content='t')",
        "CREATE VIRTUAL TABLE box USING rtree(id, x0, x1)",
    )
    listed = service.execute("data/list", {"dbHandle": handle, "collection": "plain"},
                             context=ALICE)  # fmt: skip
    assert listed["count"] == 1
    for name in ("ext", "box"):
        assert service.execute("data/count", {"dbHandle": handle, "collection": name},
                               context=ALICE)["total"] == 0  # fmt: skip


def test_the_arguments_of_a_virtual_table_are_read_whole() -> None:
    sql = (
        "CREATE VIRTUAL TABLE x USING fts5(a, \"b,c\", content = 'it''s', tokenize='porter ascii')"
    )
    assert parse_using(sql) == (
        "fts5",
        ["a", '"b,c"', "content = 'it''s'", "tokenize='porter ascii'"],
    )
    assert parse_using("CREATE VIRTUAL TABLE d USING DBSTAT") == ("dbstat", [])


# -- 2. full-text tables over a denied collection ---------------------------------------------------


@pytest.mark.parametrize(
    ("create", "read"),
    [
        (["CREATE VIRTUAL TABLE ft USING fts5(s, content='secret', content_rowid='id')"], "ft"),
        (["CREATE VIRTUAL TABLE ft USING fts4(s, content=\"secret\")"], "ft"),
        (["CREATE VIRTUAL TABLE ft USING fts5(s, content='secret', content_rowid='id')",
          "INSERT INTO ft (ft) VALUES ('rebuild')",
          "CREATE VIRTUAL TABLE vocab USING fts5vocab('ft', 'row')"], "vocab"),
        (["CREATE VIEW sv AS SELECT * FROM secret",
          "CREATE VIRTUAL TABLE ft USING fts5(s, content='sv', content_rowid='id')"], "ft"),
    ],
)  # fmt: skip
def test_a_full_text_table_over_a_denied_collection_is_denied(
    service: Service, create: list[str], read: str
) -> None:
    # (A view over a full-text table is refused to everyone, as under trusted_schema=OFF:
    # tests/test_security_schema_trust.py.)
    handle = crafted(service, *create)
    bobs = bobs_handle(service, handle)
    for command in ("data/list", "data/count"):
        error = refused(service, command, {"dbHandle": bobs, "collection": read}, BOB)
        assert error.code == "permission_denied", (command, error)
        assert "secret" in error.message
    # Alice, who may read everything, reads it.
    listed = service.execute("data/list", {"dbHandle": handle, "collection": read}, context=ALICE)
    assert listed["count"] >= 1
    assert service.execute("data/list", {"dbHandle": bobs, "collection": "t"},
                           context=BOB)["count"] == 0  # fmt: skip


# -- 3. a token's actor name against the names grants hold ------------------------------------------


def test_a_token_name_differing_only_in_case_from_a_grantee_is_refused(service: Service) -> None:
    handle = crafted(service)
    # Only an administrator grants ahead of a name's first token (round 12).
    root = Context(actor="root", session_id="s-root", is_admin=True, trusted_local=False)
    service.execute("data/grant", {"dbHandle": handle, "actor": "Carol", "access": "read"},
                    context=root)  # fmt: skip
    with pytest.raises(DbHandlesError) as caught:
        service.tokens.create("carol")
    assert caught.value.code == "invalid_params" and '"Carol"' in caught.value.message
    # The name the grant holds, spelled as it is, gets its token.
    service.tokens.create("Carol")
