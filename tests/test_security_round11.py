"""Issue 12, round eleven: what an outside tester holding an ordinary token still found.

A virtual table's module is read as SQLite reads it (quoted four ways, comments, any case), every
FTS-family table is followed to what it reads (``content=``, fts4aux, fts5vocab, shadow tables)
and an unknown module is refused; a nested ``dbHandle`` answers "not yours" exactly as "does not
exist"; SQL errors of a file's own views, checks and generated columns are 4xx with stable codes,
never ``storage_error``; a path refused for what it is says so. See docs/security.md.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.adapters.sqlite_vtables import parse_using, read_virtual_tables
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


def crafted(service: Service, actor: str, *sql: str, name: str = "r11.sqlite") -> str:
    """A database ``actor`` put in its space from a shell, holding ``sql``; its handle to it."""
    return crafted_file(
        service,
        actor,
        name,
        "CREATE TABLE t (id TEXT PRIMARY KEY, a)",
        "CREATE TABLE secret (id TEXT PRIMARY KEY, s TEXT)",
        "INSERT INTO secret VALUES ('1', 'topsecret words')",
        *sql,
    )


def alices_view(service: Service, bobs: str, name: str = "r11.sqlite") -> str:
    """Alice's handle to bob's file, which bob granted her for reading all but ``secret``."""
    return granted_handle(service, bobs, "bob", "alice", name)


def own_target(service: Service) -> str:
    opened = service.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": "mine.sqlite", "mode": "create"}},
        context=ALICE,
    )  # fmt: skip
    return str(opened["dbHandle"])


# -- 1. every quoting of a module name, every FTS-family reader ------------------------------------

QUOTINGS = ['"{m}"', "'{m}'", "[{m}]", "`{m}`", "/**/{m}", "-- x\n {m}", "{M}"]


def _using(module: str, quoting: str) -> str:
    return quoting.format(m=module, M=module.upper())


@pytest.mark.parametrize("quoting", QUOTINGS)
def test_the_module_name_is_read_as_sqlite_reads_it(quoting: str) -> None:
    sql = f"CREATE VIRTUAL TABLE x USING {_using('fts5vocab', quoting)}(f5, row)"
    assert parse_using(sql) == ("fts5vocab", ["f5", "row"])
    tricky = 'CREATE VIRTUAL TABLE "a USING fts5" USING/*(*/dbstat -- (x)\n'
    assert parse_using(tricky) == ("dbstat", [])
    commented = "CREATE VIRTUAL TABLE x USING fts4(s /* , content=no */, content = [se)cret])"
    assert parse_using(commented) == ("fts4", ["s", "content = [se)cret]"])


def _readers(quoting: str) -> dict[str, list[str]]:
    """Each reader of ``secret`` (a name -> the SQL making it), its module quoted as ``quoting``."""
    q = lambda m: _using(m, quoting)  # noqa: E731
    return {
        "ft": [f"CREATE VIRTUAL TABLE ft USING {q('fts4')}(s, content='secret')",
               "INSERT INTO ft(ft) VALUES('rebuild')"],
        "ft3": [f"CREATE VIRTUAL TABLE ft3 USING {q('fts3')}(s, content=secret)"],
        "aux": ["CREATE VIRTUAL TABLE ft4 USING fts4(s, content='secret')",
                "INSERT INTO ft4(ft4) VALUES('rebuild')",
                f"CREATE VIRTUAL TABLE aux USING {q('fts4aux')}(ft4)"],
        "voc": ["CREATE VIRTUAL TABLE f5 USING fts5(s, content='secret', content_rowid='rowid')",
                "INSERT INTO f5(f5) VALUES('rebuild')",
                f"CREATE VIRTUAL TABLE voc USING {q('fts5vocab')}(f5, row)"],
        "abbrev": [f"CREATE VIRTUAL TABLE abbrev USING {q('fts5')}(s, CONT = [secret])",
                   "INSERT INTO abbrev(abbrev) VALUES('rebuild')"],
        "ft4_segdir": ["CREATE VIRTUAL TABLE ft4 USING fts4(s, content='secret')",
                       "INSERT INTO ft4(ft4) VALUES('rebuild')"],
        "f5_idx": ["CREATE VIRTUAL TABLE f5 USING fts5(s, content='secret', content_rowid='rowid')",
                   "INSERT INTO f5(f5) VALUES('rebuild')"],
    }  # fmt: skip


@pytest.mark.parametrize("quoting", QUOTINGS)
@pytest.mark.parametrize("reader", ["ft", "ft3", "aux", "voc", "abbrev", "ft4_segdir", "f5_idx"])
def test_every_reader_of_a_denied_table_is_denied(
    service: Service, tmp_path: Path, quoting: str, reader: str
) -> None:
    bobs = crafted(service, "bob", *_readers(quoting)[reader])
    alices = alices_view(service, bobs)
    mine = own_target(service)
    asks = [
        ("data/list", {"dbHandle": alices, "collection": reader}),
        ("data/count", {"dbHandle": alices, "collection": reader}),
        ("data/export", {"dbHandle": alices, "collection": reader, "output": "out.jsonl"}),
        ("data/copy", {"from": {"dbHandle": alices, "collection": reader},
                       "to": {"dbHandle": mine, "collection": "got"}}),
    ]  # fmt: skip
    for command, params in asks:
        error = refused(service, command, params, ALICE)
        assert error.code == "permission_denied", (command, error)
        assert "secret" in error.message and "topsecret" not in error.message
    assert not (space(service, "alice") / "out.jsonl").exists()
    # Bob, who may read everything, reads it (fts3 has no content= option: ft3 is empty); a
    # shadow table is served to nobody (read the virtual table itself).
    if reader.endswith(("_segdir", "_idx")):
        error = refused(service, "data/list", {"dbHandle": bobs, "collection": reader}, BOB)
        assert (
            error.code == "read_only" and "is the storage table of virtual table" in error.message
        )
        return
    listed = service.execute("data/list", {"dbHandle": bobs, "collection": reader}, context=BOB)
    assert listed["count"] >= (0 if reader == "ft3" else 1)


@pytest.mark.parametrize("quoting", QUOTINGS)
def test_dbstat_is_refused_under_every_quoting(service: Service, quoting: str) -> None:
    handle = crafted(service, "alice", f"CREATE VIRTUAL TABLE st USING {_using('dbstat', quoting)}")
    for command in ("data/list", "data/count"):
        error = refused(service, command, {"dbHandle": handle, "collection": "st"}, ALICE)
        assert error.code == "access_denied", (command, error)
        assert '"st"' in error.message and "dbstat" in error.message
    assert service.execute("data/count", {"dbHandle": handle, "collection": "t"},
                           context=ALICE)["total"] == 0  # fmt: skip


UNKNOWN = [
    # A module dbhandles does not know (written into the schema behind SQLite's back).
    "CREATE VIRTUAL TABLE vt USING nosuch(a, content=t)",
    'CREATE VIRTUAL TABLE vt USING "no such"',
    # Arguments the module would read as another database.
    "CREATE VIRTUAL TABLE vt USING fts5vocab(temp, f5, row)",
    "CREATE VIRTUAL TABLE vt USING fts4aux(temp, ft4)",
    # A function fts4 runs at top level on every read.
    "CREATE VIRTUAL TABLE vt USING fts4(s, uncompress=load_extension, compress=lower)",
]


def _schema_holding(path: Path, create: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, a)")
    conn.execute("CREATE TABLE secret (id TEXT PRIMARY KEY, s TEXT)")
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute(
        "INSERT INTO sqlite_schema (type, name, tbl_name, rootpage, sql) "
        "VALUES ('table', 'vt', 'vt', 0, ?)",
        (create,),
    )
    conn.commit()
    conn.close()


@pytest.mark.parametrize("create", UNKNOWN)
def test_an_unknown_module_or_unexpected_arguments_are_refused(
    service: Service, tmp_path: Path, create: str
) -> None:
    # What the guard refuses whatever this SQLite has loaded (a module that is loaded but not
    # known is refused by the guard before it runs).
    _schema_holding(tmp_path / "unit.sqlite", create)
    conn = sqlite3.connect(tmp_path / "unit.sqlite")
    try:
        why = read_virtual_tables(conn).refused()
    finally:
        conn.close()
    assert list(why) == ["vt"] and why["vt"].startswith('the virtual table "vt" of this database')
    # Through the service: never served (this SQLite cannot build it: read_only, as a module
    # that is not loaded; or refused).
    _schema_holding(space(service, "alice") / "r11.sqlite", create)
    opened = service.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": "r11.sqlite"}}, context=ALICE
    )
    handle = str(opened["dbHandle"])
    for command in ("data/list", "data/count"):
        error = refused(service, command, {"dbHandle": handle, "collection": "vt"}, ALICE)
        assert error.code in ("access_denied", "read_only"), error
        assert '"vt"' in error.message
    assert service.execute("data/count", {"dbHandle": handle, "collection": "t"},
                           context=ALICE)["total"] == 0  # fmt: skip


def test_a_statement_the_tokenizer_cannot_read_is_an_unknown_module() -> None:
    assert parse_using("CREATE VIRTUAL TABLE vt USING fts5(s, content='t'") == ("", [])
    assert parse_using("CREATE VIRTUAL TABLE vt USING (s)") == ("", [])
    assert parse_using("CREATE VIEW v AS SELECT 1") is None


# -- 3. a nested dbHandle: "not yours" answered exactly as "does not exist" -------------------------


def _answer(service: Service, command: str, params: dict[str, Any], handle: str) -> tuple[Any, ...]:
    """What alice is told, with ``handle`` written as ``<H>`` (job-start: the job's error)."""
    try:
        done = service.execute(command, params, context=ALICE)
    except DbHandlesError as exc:
        return exc.code, exc.http_status, exc.field, exc.message.replace(handle, "<H>")
    if command != "data/job-start":
        return ("ran", str(done))
    envelope = service.jobs._jobs[done["jobId"]].outcome.result(timeout=60)
    error = service.execute("data/job-status", {"jobId": done["jobId"]}, context=ALICE)["error"]
    assert envelope["code"] == error["code"]
    return (
        error["code"],
        error.get("httpStatus", 404),
        error.get("field"),
        str(error["error"]).replace(handle, "<H>"),
    )


@pytest.mark.parametrize("position", ["from", "to"])
@pytest.mark.parametrize("through_job", [False, True])
@pytest.mark.parametrize("isolation", ["strict", "none"])
def test_a_nested_handle_of_another_actor_is_answered_as_an_unknown_one(
    service: Service, position: str, through_job: bool, isolation: str
) -> None:
    opened = service.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": "b.sqlite", "mode": "create"},
                      "permissions": {"isolationMode": isolation}}, context=BOB,
    )  # fmt: skip
    bobs = str(opened["dbHandle"])
    service.execute("data/create", {"dbHandle": bobs, "collection": "secrets", "data": {"a": 1}},
                    context=BOB)  # fmt: skip
    mine = own_target(service)
    made_up = "0" * 8 + bobs[8:] if not bobs.startswith("0" * 8) else "1" * 8 + bobs[8:]

    def params(other: str) -> dict[str, Any]:
        sides = {"from": {"dbHandle": other, "collection": "secrets"},
                 "to": {"dbHandle": mine, "collection": "got"}}  # fmt: skip
        if position == "to":
            sides = {"from": {"dbHandle": mine, "collection": "t"},
                     "to": {"dbHandle": other, "collection": "secrets"}}  # fmt: skip
        return sides

    if position == "to":
        service.execute("data/create", {"dbHandle": mine, "collection": "t", "data": {"a": 1}},
                        context=ALICE)  # fmt: skip
    answers = []
    for other in (bobs, made_up):
        if through_job:
            ask = ("data/job-start", {"command": "data/copy", "params": params(other)})
        else:
            ask = ("data/copy", params(other))
        answers.append(_answer(service, *ask, other))
    assert answers[0] == answers[1]
    code, status, field, message = answers[0]
    assert (code, status, field) == ("handle_not_found", 404, f"{position}.dbHandle"), answers[0]
    assert message.startswith(f"{position}.dbHandle: no open database has the handle or alias")


# -- 4. what a database's own SQL or values do: 4xx with stable codes, never storage_error ----------


def _alices_file(service: Service, *sql: str) -> str:
    return crafted_file(service, "alice", "own.sqlite", *sql)


def _reads(handle: str, collection: str) -> list[tuple[str, dict[str, Any]]]:
    base = {"dbHandle": handle, "collection": collection}
    return [
        ("data/list", base),
        ("data/count", base),
        ("data/read", {**base, "id": "1"}),
        ("data/export", {**base, "output": f"{collection}.jsonl"}),
        ("data/query-next", base),  # (opened first by ``_ask``)
    ]


def _ask(service: Service, command: str, params: dict[str, Any]) -> DbHandlesError:
    """``refused``, where data/query-next pages a cursor data/query-open just opened."""
    if command == "data/query-next":
        try:  # the open may read the first rows already
            opened = service.execute("data/query-open", params, context=ALICE)
        except DbHandlesError as exc:
            return exc
        params = {"queryHandle": opened["queryHandle"]}
    return refused(service, command, params, ALICE)


@pytest.mark.parametrize(
    ("view", "words"),
    [
        ("SELECT '1' AS id, json('not json') AS j", "malformed JSON"),
        ("SELECT '1' AS id, abs(-9223372036854775808) AS x", "integer overflow"),
        ("SELECT '1' AS id, json_extract('{\"a\":1}', '$.[') AS x", "JSON path"),
    ],
)
def test_a_view_failing_to_evaluate_is_query_failed(
    service: Service, view: str, words: str
) -> None:
    handle = _alices_file(service, f"CREATE VIEW v AS {view}")
    for command, params in _reads(handle, "v"):
        if command == "data/read":
            continue  # a view's id is all its columns: the failing one included
        error = _ask(service, command, params)
        assert (error.code, error.http_status) == ("query_failed", 409), (command, error)
        assert '"v"' in error.message and words.lower() in error.message.lower()
    assert not (space(service, "alice") / "v.jsonl").exists()


def test_text_that_is_not_utf8_is_query_failed_naming_the_column(service: Service) -> None:
    handle = _alices_file(
        service,
        "CREATE TABLE u (id TEXT PRIMARY KEY, s TEXT)",
        "INSERT INTO u VALUES ('1', CAST(x'ff' AS TEXT))",
        "CREATE TABLE w (id TEXT PRIMARY KEY, s TEXT)",
        "INSERT INTO w VALUES (CAST(x'c3' AS TEXT), 'x')",
    )
    for collection, column in (("u", "s"), ("w", "id")):
        for command, params in _reads(handle, collection):
            if command == "data/count" or (command == "data/read" and collection == "w"):
                continue  # a count decodes no text; no row has the id "1"
            error = _ask(service, command, params)
            assert (error.code, error.http_status) == ("query_failed", 409), (command, error)
            assert f'column "{column}" of "{collection}"' in error.message
            assert "UTF-8" in error.message and "\ufffd" not in error.message
    # The way out the message names: a view reading its bytes as hex digits.
    assert 'hex("s")' in refused(service, "data/list", {"dbHandle": handle, "collection": "u"},
                                 ALICE).message  # fmt: skip
    conn = sqlite3.connect(space(service, "alice") / "own.sqlite")
    conn.execute('CREATE VIEW uh AS SELECT id, hex("s") AS s FROM u')
    conn.commit()
    conn.close()
    listed = service.execute("data/list", {"dbHandle": handle, "collection": "uh"}, context=ALICE)
    assert listed["items"][0]["s"] == "FF"


def test_a_json_function_in_a_generated_column_is_served(service: Service) -> None:
    # Where SQLite marks its JSON functions innocuous, the column is served; before (3.40), the
    # schema is parsed trusting it and the catalog keeps that trust while no trigger sits on a
    # collection table (sqlite_schema), so the column is served there too.
    sql = ("CREATE TABLE gen (id TEXT PRIMARY KEY, v TEXT, "
           "a GENERATED ALWAYS AS (json_extract(v, '$.a')))",
           "INSERT INTO gen (id, v) VALUES ('1', '{\"a\": 2}')")  # fmt: skip
    handle = _alices_file(service, *sql)
    listed = service.execute("data/list", {"dbHandle": handle, "collection": "gen"},
                             context=ALICE)  # fmt: skip
    assert listed["items"][0]["a"] == 2


def test_a_check_calling_load_extension_and_a_trigger_raise_are_4xx(service: Service) -> None:
    handle = _alices_file(
        service,
        "CREATE TABLE chk (id TEXT PRIMARY KEY, a CHECK (load_extension('x') IS NULL))",
        "CREATE TABLE trg (id TEXT PRIMARY KEY, a)",
        "CREATE TRIGGER no_b BEFORE INSERT ON trg WHEN NEW.a = 'b' "
        "BEGIN SELECT RAISE(ABORT, 'b is not allowed'); END",
    )
    error = refused(service, "data/create", {"dbHandle": handle, "collection": "chk",
                                             "data": {"id": "1", "a": 1}}, ALICE)  # fmt: skip
    assert (error.code, error.http_status) == ("access_denied", 403), error
    assert "load_extension()" in error.message
    error = refused(service, "data/create", {"dbHandle": handle, "collection": "trg",
                                             "data": {"id": "1", "a": "b"}}, ALICE)  # fmt: skip
    assert (error.code, error.http_status) == ("query_failed", 409), error
    assert "b is not allowed" in error.message and "nothing was written" in error.message
    for collection in ("chk", "trg"):
        assert service.execute("data/count", {"dbHandle": handle, "collection": collection},
                               context=ALICE)["total"] == 0  # fmt: skip


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("view", "words"),
    [
        ("SELECT 1 AS id, 1 / 0 AS x", "division by zero"),
        ("SELECT 1 AS id, t::integer AS x FROM (VALUES ('abc')) s(t)", "invalid input syntax"),
        ("SELECT 1 AS id, boom() AS x", "boom()"),  # the function, never its RAISE text
        ("SELECT 1 AS id, (SELECT g FROM generate_series(1, 2) g) AS x", "more than one row"),
    ],
)
def test_a_postgres_view_failing_to_evaluate_is_query_failed(
    tmp_path: Path, view: str, words: str
) -> None:
    from tests.pgserver import postgres_schema

    pg = postgres_schema(tmp_path, "CREATE FUNCTION boom() RETURNS int LANGUAGE plpgsql AS "
                         "$$ BEGIN RAISE EXCEPTION 'boom raised'; END $$",
                         f"CREATE VIEW v AS {view}")  # fmt: skip
    with Service(settings=Settings(home=tmp_path / "home")) as service:
        handle = service.execute("data/open", {"adapter": "postgres", "config": pg})["dbHandle"]
        base = {"dbHandle": handle, "collection": "v"}

        def first_page(command: str) -> None:
            opened = service.execute(command, base)  # a cursor: its first page, then the next
            if command == "data/query-open":
                service.execute("data/query-next", {"queryHandle": opened["queryHandle"]})

        for command in ("data/list", "data/query-open"):  # (a count needs no column of the view)
            with pytest.raises(DbHandlesError) as caught:
                first_page(command)
            error = caught.value
            assert (error.code, error.http_status) == ("query_failed", 409), (command, error)
            assert words in error.message and '"v"' in error.message


# -- 5. a path refused for what it is says so ------------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "folder", "dot"])
def test_an_output_in_ones_own_space_that_is_not_a_regular_file_says_what_it_is(
    service: Service, kind: str
) -> None:
    own = space(service, "alice")
    (own / "in.jsonl").write_text('{"id": "1", "a": 1}\n')
    handle = _alices_file(service, "CREATE TABLE t (id TEXT PRIMARY KEY, a)")
    name, words = {"fifo": ("p", "a named pipe (FIFO)"), "folder": ("d", "a folder"),
                   "dot": (".", "a folder")}[kind]  # fmt: skip
    if kind == "fifo":
        os.mkfifo(own / "p")
    elif kind == "folder":
        (own / "d").mkdir()
    asks = [
        ("data/export", {"dbHandle": handle, "collection": "t", "output": name}, "output"),
        ("data/import", {"input": "in.jsonl", "output": "new.sqlite", "rejects": name},
         "rejects"),
    ]  # fmt: skip
    for command, params, field in asks:
        error = refused(service, command, params, ALICE)
        assert (error.code, error.field) == ("path_not_allowed", field), (command, error)
        assert error.message.startswith(f'{field}: "{name}" is {words}'), error.message
        assert "outside your data space" not in error.message
        assert str(service.settings.space_root()) not in error.message
    # Outside the caller's places the words stay the ones of any path there.
    error = refused(service, "data/export", {"dbHandle": handle, "collection": "t",
                                             "output": "/dev/null"}, ALICE)  # fmt: skip
    assert error.code == "path_not_allowed" and "outside your data space" in error.message
