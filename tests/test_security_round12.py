"""Issue 12, round twelve: what an outside tester holding an ordinary token still found.

One SQL function call allocating gigabytes cannot be interrupted by the time budget, so every
SQLite connection caps a value at ``MAX_VALUE_BYTES``; a PostgreSQL schema listing counts each
table under its own savepoint; SQL a database carries that cannot run as written (a trigger over a
missing table, FTS tables reading each other) and PostgreSQL's CHECK, default and generated-column
failures are ``query_failed``, never ``storage_error`` or the caller's ``invalid_params``. See
docs/security.md and docs/errors.md.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Context, Service
from dbhandles.dbfiles import MAX_VALUE_BYTES
from dbhandles.errors import DbHandlesError
from dbhandles.settings import Settings
from tests.security_helpers import (
    ALICE,
    BOB,
    crafted_file,
    granted_handle,
    refused,
    space,
)

pytestmark = pytest.mark.two_tenants


def crafted(service: Service, *sql: str, actor: str = "alice", name: str = "r12.sqlite") -> str:
    """A database ``actor`` put in its space from a shell, holding ``sql``; its handle to it."""
    return crafted_file(service, actor, name, *sql)


def pg_handle(service: Service, tmp_path: Path, *statements: str) -> str:
    """A ``postgres`` handle (the administrator's) on a fresh schema holding ``statements``."""
    from tests.pgserver import postgres_schema

    pg = postgres_schema(tmp_path, *statements)
    return str(service.execute("data/open", {"adapter": "postgres", "config": pg})["dbHandle"])


# -- 1. a value SQLite would build past the cap fails at once --------------------------------------

HUGE = {
    "zeroblob": "zeroblob(2000000000)",
    "replace": "replace(zeroblob(60000000), x'00', 'xx')",
    "group_concat": "(SELECT group_concat(zeroblob(40000000)) FROM (SELECT 1 UNION ALL SELECT 2))",
}


@pytest.mark.parametrize("kind", sorted(HUGE))
def test_a_view_computing_a_huge_value_fails_at_once_with_query_failed(
    service: Service, kind: str
) -> None:
    handle = crafted(
        service,
        "CREATE TABLE plain (id TEXT PRIMARY KEY, a)",
        "INSERT INTO plain VALUES ('1', 1)",
        f"CREATE VIEW p2g AS SELECT 'a' AS id, {HUGE[kind]} AS v",
    )
    base = {"dbHandle": handle, "collection": "p2g"}

    def first_page(command: str) -> None:
        opened = service.execute(command, base, context=ALICE)
        if command == "data/query-open":  # a cursor: its first page, then the next
            service.execute("data/query-next", {"queryHandle": opened["queryHandle"]},
                            context=ALICE)  # fmt: skip

    for command in ("data/list", "data/query-open"):
        with pytest.raises(DbHandlesError) as caught:
            first_page(command)
        error = caught.value
        assert (error.code, error.http_status) == ("query_failed", 409), (command, error)
        assert '"p2g"' in error.message and f"{MAX_VALUE_BYTES >> 20} MiB" in error.message
    # The listing marks the view and still counts the plain table within the budget.
    listing = service.execute("data/schema", {"dbHandle": handle}, context=ALICE)["collections"]
    by_name = {c["name"]: c for c in listing}
    assert by_name["plain"]["recordCount"] == 1 and "refused" not in by_name["plain"]
    view = by_name["p2g"]
    if "refused" in view:  # a count that reads the huge column; else the count needs no value
        assert view["refusedCode"] == "query_failed"


def test_printf_past_the_cap_answers_null_without_building_it(service: Service) -> None:
    # SQLite's printf() gives NULL for a result past SQLITE_LIMIT_LENGTH instead of an error.
    handle = crafted(service, "CREATE VIEW pw AS SELECT 'a' AS id, printf('%2000000000d', 1) AS v")
    listed = service.execute("data/list", {"dbHandle": handle, "collection": "pw"}, context=ALICE)
    assert [item["v"] for item in listed["items"]] == [None]


def test_an_export_of_a_view_computing_a_huge_value_fails_with_query_failed(
    service: Service,
) -> None:
    handle = crafted(service, "CREATE VIEW p2g AS SELECT 'a' AS id, zeroblob(2000000000) AS v")
    error = refused(
        service, "data/export", {"dbHandle": handle, "collection": "p2g", "output": "out.jsonl"}
    )
    assert error.code == "query_failed" and '"p2g"' in error.message
    assert not (space(service, "alice") / "out.jsonl").exists()


def test_a_view_huge_only_on_rows_a_row_filter_hides_fails_at_once(service: Service) -> None:
    # Bob's database: alice is granted the rows of owner "alice" only; the view computes a huge
    # value for bob's rows, which the row filter hides from her.
    bobs = crafted(
        service,
        "CREATE TABLE t (id TEXT PRIMARY KEY, owner TEXT)",
        "INSERT INTO t VALUES ('1', 'alice'), ('2', 'bob')",
        "CREATE VIEW hv AS SELECT id, owner, CASE owner WHEN 'bob' THEN zeroblob(2000000000) "
        "ELSE 'small' END AS v FROM t",
        actor="bob",
    )
    service.execute("data/grant", {"dbHandle": bobs, "actor": "alice", "access": "read",
                                   "permissions": {"rowFilter": {"owner": "alice"}}},
                    context=BOB)  # fmt: skip
    path = str(space(service, "bob") / "r12.sqlite")
    alices = service.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": path}}, context=ALICE
    )["dbHandle"]
    # The view reads t: a row filter cannot be applied to it, so it is refused before it runs
    # (round 13, docs/security.md "Row filters and views"; it held the request 32 s before
    # round 12), naming no row.
    error = refused(service, "data/list", {"dbHandle": alices, "collection": "hv"})
    assert error.code == "permission_denied" and '"hv"' in error.message, error
    assert "bob" not in error.message and "'2'" not in error.message


def test_a_record_past_the_cap_is_the_callers_invalid_params(service: Service) -> None:
    handle = crafted(service, "CREATE TABLE seed (id TEXT PRIMARY KEY)")
    big = "x" * (MAX_VALUE_BYTES + 1)
    error = refused(service, "data/create",
                    {"dbHandle": handle, "collection": "docs", "data": {"id": "1", "t": big}})  # fmt: skip
    assert (error.code, error.field) == ("invalid_params", "data"), error
    assert f"{MAX_VALUE_BYTES >> 20} MiB" in error.message
    # A record just under the cap is stored and read back whole.
    fits = "y" * (MAX_VALUE_BYTES // 2)
    service.execute("data/create", {"dbHandle": handle, "collection": "docs",
                                    "data": {"id": "2", "t": fits}}, context=ALICE)  # fmt: skip
    read = service.execute("data/read", {"dbHandle": handle, "collection": "docs", "id": "2"},
                           context=ALICE)  # fmt: skip
    assert len(read["data"]["t"]) == len(fits)


# -- 3. SQL the database carries that cannot run as written -----------------------------------------

BROKEN = {
    "trigger_missing_table": (
        ["CREATE TABLE m2 (id TEXT PRIMARY KEY, a)", "INSERT INTO m2 VALUES ('1', 1)",
         "CREATE TRIGGER tg AFTER UPDATE ON m2 BEGIN UPDATE nothere SET a = 1; END"],
        "data/update", {"collection": "m2", "id": "1", "data": {"a": 2}}, "no such table",
    ),
    "fk_missing_table_create": (
        ["CREATE TABLE c (id TEXT PRIMARY KEY, p REFERENCES nop(id))"],
        "data/create", {"collection": "c", "data": {"id": "2", "p": "x"}}, "no such table",
    ),
    "fk_missing_table_delete": (
        ["CREATE TABLE c (id TEXT PRIMARY KEY, p REFERENCES nop(id))",
         "INSERT INTO c VALUES ('1', NULL)"],
        "data/delete", {"collection": "c", "id": "1"}, "no such table",
    ),
    "fk_mismatch": (
        ["CREATE TABLE p (id TEXT PRIMARY KEY, k)",
         "CREATE TABLE c (id TEXT PRIMARY KEY, pk REFERENCES p(k))"],
        "data/create", {"collection": "c", "data": {"id": "1", "pk": "x"}}, "foreign key mismatch",
    ),
    "fts5_content_loop": (
        ["CREATE VIRTUAL TABLE a USING fts5(x, content='b')",
         "CREATE VIRTUAL TABLE b USING fts5(x, content='a')"],
        "data/list", {"collection": "a"}, "recursively defined",
    ),
    "fts4_own_content": (
        ["CREATE VIRTUAL TABLE s USING fts4(x, content='s')"],
        "data/list", {"collection": "s"}, "SQL logic error",
    ),
    "trigger_missing_function": (
        ["CREATE TABLE t (id TEXT PRIMARY KEY, a)", "INSERT INTO t VALUES ('1', 1)",
         "CREATE TRIGGER tg AFTER UPDATE ON t BEGIN SELECT nofunc(1); END"],
        "data/update", {"collection": "t", "id": "1", "data": {"a": 2}}, "no such function",
    ),
    "trigger_ambiguous_column": (
        ["CREATE TABLE t (id TEXT PRIMARY KEY, a)", "CREATE TABLE u (id TEXT PRIMARY KEY, a)",
         "INSERT INTO t VALUES ('1', 1)",
         "CREATE TRIGGER tg AFTER UPDATE ON t BEGIN INSERT INTO u SELECT t.id, a FROM t, u; END"],
        "data/update", {"collection": "t", "id": "1", "data": {"a": 2}}, "ambiguous column",
    ),
    "trigger_missing_column": (
        ["CREATE TABLE t (id TEXT PRIMARY KEY, a)", "CREATE TABLE u (id TEXT PRIMARY KEY, b)",
         "INSERT INTO t VALUES ('1', 1)", "PRAGMA legacy_alter_table = ON",
         "CREATE TRIGGER tg AFTER UPDATE ON t BEGIN UPDATE u SET b = 1; END",
         "ALTER TABLE u RENAME TO u_old", "CREATE TABLE u (id TEXT PRIMARY KEY, c)"],
        "data/update", {"collection": "t", "id": "1", "data": {"a": 2}}, "no such column",
    ),
    "trigger_writes_a_view": (
        ["CREATE TABLE t (id TEXT PRIMARY KEY, a)", "CREATE VIEW w AS SELECT * FROM t",
         "INSERT INTO t VALUES ('1', 1)",
         "CREATE TRIGGER tg AFTER UPDATE ON t BEGIN DELETE FROM w; END"],
        "data/update", {"collection": "t", "id": "1", "data": {"a": 2}}, "because it is a view",
    ),
    "trigger_aggregate_misuse": (
        ["CREATE TABLE t (id TEXT PRIMARY KEY, a)", "INSERT INTO t VALUES ('1', 1)",
         "CREATE TRIGGER tg AFTER UPDATE ON t BEGIN UPDATE t SET a = 1 WHERE max(a) > 0; END"],
        "data/update", {"collection": "t", "id": "1", "data": {"a": 2}}, "misuse of aggregate",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_sql_of_the_databases_own_that_cannot_run_is_query_failed(
    service: Service, case: str
) -> None:
    ddl, command, params, words = BROKEN[case]
    handle = crafted(service, *ddl)
    error = refused(service, command, {"dbHandle": handle, **params})
    assert (error.code, error.http_status) == ("query_failed", 409), error
    assert words in error.message and json_name(params["collection"]) in error.message


def json_name(name: str) -> str:
    return f'"{name}"'


@pytest.mark.parametrize(
    ("ddl", "words"),
    [
        (["CREATE VIEW vm AS SELECT * FROM missing"], "reads a table or column that does not exist"),
        (["CREATE TABLE t (id TEXT PRIMARY KEY, a)", "PRAGMA legacy_alter_table = ON",
          "CREATE VIEW vm AS SELECT id, a FROM t",
          "ALTER TABLE t RENAME TO t_old", "CREATE TABLE t (id TEXT PRIMARY KEY, b)"],
         "reads a table or column that does not exist"),
        (["CREATE TABLE t (id TEXT PRIMARY KEY)", "CREATE VIEW v0 AS SELECT * FROM t",
          "CREATE VIEW vm AS SELECT * FROM v0", "DROP VIEW v0",
          "CREATE VIEW v0 AS SELECT * FROM vm"], "cannot be run as written"),
    ],
)  # fmt: skip
def test_a_view_sqlite_cannot_run_is_named_a_view_and_query_failed(
    service: Service, ddl: list[str], words: str
) -> None:
    handle = crafted(service, *ddl)
    error = refused(service, "data/list", {"dbHandle": handle, "collection": "vm"})
    assert (error.code, error.field) == ("query_failed", "collection"), error
    assert error.message.startswith(f'the view "vm" {words}'), error.message
    assert "virtual table" not in error.message and "module" not in error.message
    listing = service.execute("data/schema", {"dbHandle": handle}, context=ALICE)["collections"]
    view = next(c for c in listing if c["name"] == "vm")
    assert view["kind"] == "view" and view["refusedCode"] == "query_failed"
    assert "virtual table" not in view["refused"]


def test_a_collection_dropped_meanwhile_keeps_its_own_answer() -> None:
    from dbhandles.adapters.sqlite_errors import translate_error

    exc = sqlite3.OperationalError("no such table: notes")
    exc.sqlite_errorcode = 1  # type: ignore[attr-defined]
    assert translate_error(exc, collection="notes").code != "query_failed"
    assert translate_error(exc, collection="other").code == "query_failed"


# -- 2. a PostgreSQL schema listing survives one table's timeout ------------------------------------


@pytest.mark.postgres
def test_a_postgres_listing_marks_a_slow_view_and_lists_the_rest(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", query_timeout_ms=1500)
    with Service(settings=settings) as service:
        handle = pg_handle(
            service, tmp_path,
            "CREATE TABLE t (id text PRIMARY KEY, a int)",
            "INSERT INTO t VALUES ('1', 1), ('2', 2)",
            "CREATE VIEW vsleep AS SELECT id, pg_sleep(5)::text AS s FROM t",
            "CREATE TABLE z (id text PRIMARY KEY)",
            "INSERT INTO z VALUES ('1')",
        )  # fmt: skip
        listing = service.execute("data/schema", {"dbHandle": handle})["collections"]
        by_name = {c["name"]: c for c in listing}
        assert by_name["vsleep"]["refusedCode"] == "query_timeout", by_name["vsleep"]
        assert by_name["vsleep"]["recordCount"] is None
        # The tables after the slow view are still counted, in the same transaction.
        assert by_name["t"]["recordCount"] == 2 and by_name["z"]["recordCount"] == 1
        # One collection's listing answers as the whole one does.
        one = service.execute("data/schema", {"dbHandle": handle, "collection": "vsleep"})
        assert one["collections"] is None or one["collection"] == "vsleep"


# -- 4. PostgreSQL: a table's own expressions failing are the schema's ------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("ddl", "data", "words"),
    [
        ("CREATE TABLE w (id text PRIMARY KEY, v text CHECK (length(v) / (length(v) - 1) > 0))",
         {"id": "1", "v": "x"}, "division by zero"),
        ("CREATE TABLE w (id text PRIMARY KEY, v int DEFAULT (1 / 0))",
         {"id": "1"}, "division by zero"),
        ("CREATE TABLE w (id text PRIMARY KEY, v text, "
         "g int GENERATED ALWAYS AS (v::int) STORED)",
         {"id": "1", "v": "abc"}, "invalid input syntax"),
        ("CREATE TABLE w (id text PRIMARY KEY, v text DEFAULT 'abc', "
         "g int GENERATED ALWAYS AS (v::int) STORED)",
         {"id": "1"}, "invalid input syntax"),
    ],
)  # fmt: skip
def test_a_postgres_tables_own_expression_failing_is_query_failed(
    tmp_path: Path, ddl: str, data: dict[str, Any], words: str
) -> None:
    with Service(settings=Settings(home=tmp_path / "home")) as service:
        handle = pg_handle(service, tmp_path, ddl)
        with pytest.raises(DbHandlesError) as caught:
            service.execute("data/create", {"dbHandle": handle, "collection": "w", "data": data})
        error = caught.value
        assert (error.code, error.http_status) == ("query_failed", 409), error
        assert words in error.message and '"w"' in error.message and error.field is None


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("data", "field"),
    [({"id": "1", "n": "abc"}, "data.n"), ({"id": "1", "n": 1, "d": "not a date"}, "data.d"),
     ({"id": "1", "n": 99999999999}, "data.n")],
)  # fmt: skip
def test_a_postgres_value_sent_that_its_column_cannot_take_stays_the_callers(
    tmp_path: Path, data: dict[str, Any], field: str
) -> None:
    with Service(settings=Settings(home=tmp_path / "home")) as service:
        handle = pg_handle(service, tmp_path, "CREATE TABLE w (id text PRIMARY KEY, n int, d date, "
                                              "g int GENERATED ALWAYS AS (n * 2) STORED)")  # fmt: skip
        with pytest.raises(DbHandlesError) as caught:
            service.execute("data/create", {"dbHandle": handle, "collection": "w", "data": data})
        assert (caught.value.code, caught.value.field) == ("invalid_params", field), caught.value


@pytest.mark.postgres
def test_a_postgres_view_building_a_huge_value_stops_within_the_budget(tmp_path: Path) -> None:
    # PostgreSQL checks statement_timeout inside repeat() too (CHECK_FOR_INTERRUPTS); whatever
    # stops it first (the timeout, or PostgreSQL's 1 GB value limit) is a clear 4xx.
    settings = Settings(home=tmp_path / "home", query_timeout_ms=1500)
    with Service(settings=settings) as service:
        handle = pg_handle(service, tmp_path,
                           "CREATE VIEW big AS SELECT 'a'::text AS id, repeat('x', 1000000000) AS v")  # fmt: skip
        with pytest.raises(DbHandlesError) as caught:
            service.execute("data/list", {"dbHandle": handle, "collection": "big", "limit": 1})
        assert caught.value.code == "query_timeout", caught.value
        # Past PostgreSQL's own limit it fails at once: the view's SQL, not the caller's value.
        handle = pg_handle(service, tmp_path / "2",
                           "CREATE VIEW big2 AS SELECT 'a'::text AS id, repeat('xx', 2000000000) AS v")  # fmt: skip
        with pytest.raises(DbHandlesError) as caught:
            service.execute("data/list", {"dbHandle": handle, "collection": "big2", "limit": 1})
        assert caught.value.code == "query_failed" and '"big2"' in caught.value.message


# -- 6. a side file's name outside the caller's places is answered as any path there ---------------


def _path_asks(handle: str, path: str) -> list[tuple[str, dict[str, Any], str]]:
    return [
        ("data/open", {"adapter": "sqlite", "config": {"path": path}}, "config.path"),
        ("data/export", {"dbHandle": handle, "collection": "t", "output": path}, "output"),
        ("data/export", {"input": path, "collection": "t", "output": "o.jsonl"}, "input"),
        ("data/import", {"input": path, "output": "n.sqlite"}, "input"),
        ("data/import", {"input": "in.jsonl", "output": path}, "output"),
        ("data/import", {"input": "in.jsonl", "output": "n2.sqlite", "rejects": path}, "rejects"),
    ]


@pytest.mark.parametrize("where", ["home", "guess", "tmp"])
@pytest.mark.parametrize("side", ["-wal", "-shm", "-journal"])
def test_a_side_file_name_outside_ones_places_gets_the_outside_answer(
    service: Service, tmp_path: Path, where: str, side: str
) -> None:
    (space(service, "alice") / "in.jsonl").write_text('{"id": "1"}\n')
    handle = crafted(service, "CREATE TABLE t (id TEXT PRIMARY KEY)")
    folder = {"home": str(service.settings.home), "guess": "/nonexistent/guess",
              "tmp": str(tmp_path)}[where]  # fmt: skip
    plain, side_file = f"{folder}/zzz.sqlite", f"{folder}/zzz.sqlite{side}"
    for (command, params, field), (_, side_params, _) in zip(
        _path_asks(handle, plain), _path_asks(handle, side_file), strict=True
    ):
        expected = refused(service, command, params)
        error = refused(service, command, side_params)
        assert (error.code, error.field) == ("path_not_allowed", field), (command, error)
        # The same answer but for the name (a path in the home is masked as ``<home>/...``).
        named = error.message.replace(f"zzz.sqlite{side}", "zzz.sqlite")
        assert named == expected.message, (command, field)
        assert "SQLite's own files" not in error.message


def test_a_side_file_name_in_ones_own_space_says_what_it_is_on_the_field_named(
    service: Service,
) -> None:
    (space(service, "alice") / "in.jsonl").write_text('{"id": "1"}\n')
    handle = crafted(service, "CREATE TABLE t (id TEXT PRIMARY KEY)")
    for command, params, field in _path_asks(handle, "x.sqlite-wal"):
        error = refused(service, command, params)
        assert (error.code, error.field) == ("path_not_allowed", field), (command, error)
        assert error.message.startswith(f"{field}: ") and "SQLite's own files" in error.message


# -- 5. a non-admin cannot reserve a name before the administrator gives it -------------------------


@pytest.mark.parametrize("name", ["Dave", "dave", "BOB", "Bob", "admin", "Admin", "local"])
def test_a_non_admin_grant_names_only_an_actor_holding_a_token(service: Service, name: str) -> None:
    handle = crafted(service, "CREATE TABLE t (id TEXT PRIMARY KEY)")
    error = refused(service, "data/grant", {"dbHandle": handle, "actor": name, "access": "read"})
    assert (error.code, error.field) == ("invalid_params", "actor"), error
    # One answer whatever the reason (nobody, another case of bob, a reserved name): it tells
    # only what a successful grant would, that exactly this name holds no token.
    assert error.message == (
        f'actor: "{name}": no actor of this server holds a token by exactly this name; a grant '
        "names an actor that has one (ask an administrator to create it, then grant again)"
    )
    assert "bob" not in error.message.replace(name, "")
    # The name stays free: the administrator gives it to whom it chooses.
    if name.casefold() not in ("admin", "local", "bob"):
        service.tokens.create(name.lower())
    granted = service.execute("data/grant", {"dbHandle": handle, "actor": "bob",
                                             "access": "read"}, context=ALICE)  # fmt: skip
    assert granted["actor"] == "bob"


def test_an_admin_may_grant_ahead_and_token_create_names_the_grants_in_the_way(
    service: Service,
) -> None:
    admin = Context(actor="admin", session_id="s-admin", is_admin=True, trusted_local=False)
    conn = sqlite3.connect(space(service, "alice") / "g.sqlite")
    conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY)")
    conn.close()
    path = str(space(service, "alice") / "g.sqlite")
    handle = service.execute("data/open", {"adapter": "sqlite", "config": {"path": path}},
                             context=admin)["dbHandle"]  # fmt: skip
    service.execute("data/grant", {"dbHandle": handle, "actor": "Dave", "access": "read"},
                    context=admin)  # fmt: skip
    with pytest.raises(DbHandlesError) as caught:
        service.tokens.create("dave")
    error = caught.value
    assert (error.code, error.field) == ("invalid_params", "actor"), error
    assert '"Dave" on ' in error.message and 'granted by "admin"' in error.message
    assert "data/revoke" in error.message
    service.execute("data/revoke", {"dbHandle": handle, "actor": "Dave"}, context=admin)
    service.tokens.create("dave")


# -- 7. the words name what the caller knows --------------------------------------------------------


def test_non_utf8_text_read_through_a_view_names_no_sql_of_dbhandles(service: Service) -> None:
    handle = crafted(
        service,
        "CREATE TABLE t (id TEXT PRIMARY KEY, a, b)",
        "INSERT INTO t VALUES ('1', 'ok', CAST(x'ff61' AS TEXT))",
        "CREATE VIEW kv AS SELECT a, b FROM t",
    )
    # The view's id is built from every column, and is decoded first: the column is still named.
    for command in ("data/list", "data/export"):
        params = {"output": "kv.jsonl"} if command == "data/export" else {}
        error = refused(service, command, {"dbHandle": handle, "collection": "kv", **params})
        assert error.code == "query_failed", error
        assert 'the column "b" of "kv"' in error.message and 'hex("b")' in error.message
        assert "json_array" not in error.message and "dbh_" not in error.message
    # A table's column is named as before.
    error = refused(service, "data/list", {"dbHandle": handle, "collection": "t"})
    assert 'the column "b" of "t"' in error.message and 'hex("b")' in error.message


def test_non_utf8_text_in_a_compound_key_names_the_column(service: Service) -> None:
    handle = crafted(
        service,
        "CREATE TABLE ck (x TEXT, y TEXT, v, PRIMARY KEY (x, y))",
        "INSERT INTO ck VALUES ('a', CAST(x'e9' AS TEXT), 1)",
    )
    error = refused(service, "data/list", {"dbHandle": handle, "collection": "ck"})
    assert error.code == "query_failed" and 'the column "y" of "ck"' in error.message, error


def test_non_utf8_text_beside_a_real_replacement_character_is_not_guessed(
    service: Service,
) -> None:
    # Python shows the bad bytes as U+FFFD: when another value holds a real U+FFFD, which column
    # holds the bytes cannot be told from the message, and none is named wrongly.
    handle = crafted(
        service,
        "CREATE TABLE t (id TEXT PRIMARY KEY, a, b)",
        "INSERT INTO t VALUES ('1', 'ok \ufffd', CAST(x'ff61' AS TEXT))",
        "CREATE VIEW kv AS SELECT a, b FROM t",
    )
    error = refused(service, "data/list", {"dbHandle": handle, "collection": "kv"})
    assert error.code == "query_failed" and 'a column of "kv"' in error.message, error.message
    assert '"a"' not in error.message and "json_array" not in error.message


def test_virtual_and_storage_tables_are_called_what_they_are(service: Service) -> None:
    handle = crafted(
        service,
        "CREATE VIRTUAL TABLE f5 USING fts5(x)",
        "CREATE VIRTUAL TABLE s USING fts4(x)",
    )
    for collection, owner in (("f5_data", "f5"), ("s_content", "s")):
        for command, params in [("data/list", {}), ("data/create", {"data": {"id": "1"}})]:
            error = refused(service, command,
                            {"dbHandle": handle, "collection": collection, **params})  # fmt: skip
            assert error.code == "read_only", error
            assert f'is the storage table of virtual table "{owner}"' in error.message
            assert "view" not in error.message
    for command, params in [("data/create", {"data": {"id": "1", "x": "a"}}),
                            ("data/truncate", {})]:  # fmt: skip
        error = refused(service, command, {"dbHandle": handle, "collection": "s", **params})
        assert error.message.startswith('virtual table "s" was not created'), error


def test_a_denied_source_names_no_kind_the_collection_is_not(service: Service) -> None:
    bobs = crafted(
        service,
        "CREATE TABLE secret (id TEXT PRIMARY KEY, s TEXT)",
        "CREATE VIRTUAL TABLE f5 USING fts5(s, content='secret')",
        actor="bob",
    )
    alices = granted_handle(service, bobs, "bob", "alice", "r12.sqlite")
    error = refused(service, "data/list", {"dbHandle": alices, "collection": "f5"})
    assert error.code in ("permission_denied", "access_denied"), error
    assert 'view "f5"' not in error.message
