"""Values written into columns of tables dbhandles did not create (issue 14): a JSON number is
stored exactly or refused naming the field (docs/foreign-tables.md "Numbers written"), a key
value the key column cannot hold is refused on every write door, and a copied row's
``createdAt``/``updatedAt``/``version`` are the record's own, refused when no record could hold
them (docs/copy.md "From a table"), the same on every target adapter.

SQLite databases are built with the plain ``sqlite3`` module, PostgreSQL schemas with plain SQL
on the server the suite starts (``tests/pgserver.py``).
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import Service
from dbhandles.errors import Conflict, DbHandlesError, InvalidParams
from tests.conftest import ADAPTERS, adapter_config

PG_SCHEMA = """
CREATE DOMAIN money_like AS numeric;
CREATE TABLE nums (id integer PRIMARY KEY, n numeric, dn money_like, na numeric[],
                   cents numeric(10,2), i2 smallint, i4 integer, i8 bigint, ia integer[],
                   f4 real, f8 double precision, fa real[], t text, vc varchar(40), ta text[],
                   m money, o oid);
"""
SQLITE_SCHEMA = """
CREATE TABLE nums (id INTEGER PRIMARY KEY, n NUMERIC, r REAL, i INTEGER, t TEXT, vc VARCHAR(40),
                   x);
CREATE TABLE strict_nums (id INTEGER PRIMARY KEY, i INTEGER, t TEXT) STRICT;
CREATE TABLE typed (id INTEGER PRIMARY KEY, i INT, r REAL, n NUMERIC, d DECIMAL(10,2), b BOOLEAN,
                    dt DATE, a ANY, x, t TEXT);
CREATE TABLE strict_any (id INTEGER PRIMARY KEY, i INTEGER, r REAL, a ANY) STRICT;
CREATE TABLE ik (k int PRIMARY KEY, v);
CREATE TABLE rk (k real PRIMARY KEY, v);
CREATE TABLE pair (a int, b text, v, PRIMARY KEY (a, b));
"""
ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
#: Numbers a double holds that a 15-digit float8 -> numeric cast, or SQLite's REAL -> TEXT, rounds.
EXACT = [0.30000000000000004, 1.0000000000000002, 123456.78901234567, 9007199254740992.0, 1e-7,
         -2.5, 7, 9007199254740993, 0.1]  # fmt: skip


def _sqlite_handle(service: Service, tmp_path: Path, **config: Any) -> str:
    path = tmp_path / "tables.db"
    if not path.exists():
        conn = sqlite3.connect(path)
        conn.executescript(SQLITE_SCHEMA)
        conn.close()
    opened = service.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": str(path), **config}}
    )
    return str(opened["dbHandle"])


def _pg_handle(service: Service, tmp_path: Path) -> str:
    from tests.pgserver import postgres_schema

    config = postgres_schema(tmp_path, PG_SCHEMA)
    return str(service.execute("data/open", {"adapter": "postgres", "config": config})["dbHandle"])


def handle_for(service: Service, tmp_path: Path, engine: str) -> str:
    return (
        _sqlite_handle(service, tmp_path) if engine == "sqlite" else _pg_handle(service, tmp_path)
    )


def run(service: Service, name: str, handle: str, **params: Any) -> Any:
    return service.execute(name, {"dbHandle": handle, **params})


def written(service: Service, handle: str, record_id: int, field: str, value: Any) -> Any:
    """Create row ``record_id`` with ``{field: value}`` and return the field as a read shows it."""
    run(service, "data/create", handle, collection="nums", id=record_id, data={field: value})
    return run(service, "data/read", handle, collection="nums", id=record_id)["data"][field]


def refused(service: Service, handle: str, record_id: int, field: str, value: Any) -> InvalidParams:
    """The ``invalid_params`` of writing ``{field: value}``, having checked nothing was written."""
    with pytest.raises(InvalidParams) as caught:
        run(service, "data/create", handle, collection="nums", id=record_id, data={field: value})
    assert caught.value.field == f"data.{field}"
    assert run(service, "data/read", handle, collection="nums", id=record_id)["found"] is False
    return caught.value


def _exact(text: str) -> Decimal:
    """The exact decimal of a number as dbhandles spells it (``repr`` is the same value)."""
    return Decimal(text)


# -- numbers into PostgreSQL's numeric family ----------------------------------------------------


@pytest.mark.postgres
def test_numbers_into_postgres_numeric_are_stored_exactly(service: Service, tmp_path: Path) -> None:
    handle = _pg_handle(service, tmp_path)
    for k, value in enumerate(EXACT, start=1):
        for j, field in enumerate(("n", "dn"), start=0):
            shown = written(service, handle, k * 10 + j, field, value)
            # A number of more than 15 significant digits reads as its exact decimal text.
            assert _exact(str(shown)) == _exact(repr(value)), (field, value, shown)
    shown = written(service, handle, 999, "na", [0.30000000000000004, 1e-7, 3.0])
    assert [_exact(str(v)) for v in shown] == [_exact("0.30000000000000004"), _exact("1e-7"), 3]
    # Listed, the same values: what a listing shows is taken back exactly by an update.
    for record in run(service, "data/list", handle, collection="nums", limit=100)["items"]:
        data = {k: v for k, v in record.items() if k != "id" and v is not None}
        again = run(service, "data/update", handle, collection="nums", id=record["id"], data=data)
        assert again["data"] == record


@pytest.mark.postgres
def test_numeric_with_a_scale_refuses_a_number_it_would_round(
    service: Service, tmp_path: Path
) -> None:
    handle = _pg_handle(service, tmp_path)
    error = refused(service, handle, 1, "cents", 1.234)
    assert "numeric(10,2)" in error.message and "round" in error.message
    assert written(service, handle, 2, "cents", 1.25) == 1.25
    assert written(service, handle, 3, "cents", 7) == 7


# -- whole numbers, doubles and reals --------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("field", ["i2", "i4", "i8"])
def test_postgres_integer_columns_refuse_a_fraction(
    service: Service, tmp_path: Path, field: str
) -> None:
    handle = _pg_handle(service, tmp_path)
    error = refused(service, handle, 1, field, 3.5)
    assert "whole number" in error.message and "3.5" in error.message
    refused(service, handle, 2, field, -0.25)
    assert written(service, handle, 3, field, 3.0) == 3  # the same number as 3: taken
    assert written(service, handle, 4, field, -12) == -12


@pytest.mark.postgres
def test_postgres_integer_arrays_refuse_a_fraction(service: Service, tmp_path: Path) -> None:
    handle = _pg_handle(service, tmp_path)
    error = refused(service, handle, 1, "ia", [1, 3.5])
    assert "element 3.5" in error.message
    assert written(service, handle, 2, "ia", [1, 3.0, None]) == [1, 3, None]


@pytest.mark.postgres
def test_postgres_real_and_double_refuse_what_they_would_round(
    service: Service, tmp_path: Path
) -> None:
    handle = _pg_handle(service, tmp_path)
    error = refused(service, handle, 1, "f4", 0.30000000000000004)
    assert "stored as 0.3" in error.message
    refused(service, handle, 2, "fa", [0.1, 1 / 3])
    refused(service, handle, 3, "f4", 16777217)  # past 2**24: a real holds every other integer
    error = refused(service, handle, 4, "f8", 9007199254740993)
    assert "2**53" in error.message
    assert written(service, handle, 5, "f4", 0.1) == 0.1
    assert written(service, handle, 6, "f4", 16777216) == 16777216
    assert written(service, handle, 7, "fa", [0.5, 0.1]) == [0.5, 0.1]
    assert written(service, handle, 8, "f8", 0.30000000000000004) == 0.30000000000000004
    assert written(service, handle, 9, "f8", 9007199254740992) == 9007199254740992


# -- numbers into text columns: the one number spelling ---------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_numbers_into_text_columns_use_the_one_number_spelling(
    service: Service, tmp_path: Path, engine: str
) -> None:
    handle = handle_for(service, tmp_path, engine)
    cases = [(1e-7, "1e-7"), (3.0, "3"), (0.30000000000000004, "0.30000000000000004"),
             (5, "5"), (-2.5, "-2.5"), (1.5e10, "15000000000"), (2.5e-300, "2.5e-300")]  # fmt: skip
    for k, (value, text) in enumerate(cases, start=1):
        assert written(service, handle, k, "t", value) == text
        assert written(service, handle, 100 + k, "vc", value) == text
    if engine == "postgres":
        assert written(service, handle, 200, "ta", [1e-7, 3.0, "x"]) == ["1e-7", "3", "x"]


@pytest.mark.postgres
def test_money_and_oid_take_a_number_as_its_plain_decimal(service: Service, tmp_path: Path) -> None:
    """``money`` and ``oid`` parse a number's text and read no exponent: a number goes as its
    plain decimal (``1e16`` as ``10000000000000000``, ``1e-5`` as ``0.00001``, ``1e9`` as
    ``1000000000``), so it is stored as that text would be (money rounds to its fraction digits);
    past money's range is ``invalid_params`` naming the field, in PostgreSQL's words."""
    handle = _pg_handle(service, tmp_path)
    cases = [("m", 1e16, "10000000000000000"), ("m", 1e-5, "0.00001"), ("m", -2.5e15, "-2500000000000000"),
             ("m", 12.34, "12.34"), ("o", 1e9, "1000000000"), ("o", 7, "7")]  # fmt: skip
    for k, (field, number, text) in enumerate(cases, start=1):
        assert written(service, handle, k, field, number) == written(
            service, handle, 100 + k, field, text
        )
    error = refused(service, handle, 50, "m", 1e17)
    assert "out of range for type money" in error.message and "e+" not in error.message
    error = refused(service, handle, 51, "o", 2.5)
    assert "2.5" in error.message


@pytest.mark.parametrize("engine", ENGINES)
def test_a_number_past_the_records_bound_follows_the_column(
    service: Service, tmp_path: Path, engine: str
) -> None:
    """The records' bound (numbers strictly between -2**63 and 2**63) is dbhandles' own, not a
    column's (issue 15): a float column, a text or an untyped one takes ``1e20`` or ``1e308``;
    PostgreSQL's ``real`` refuses what it does not hold; SQLite stores no integer past 64 bits
    (tests/test_foreign_wide_numbers.py covers every write door)."""
    handle = handle_for(service, tmp_path, engine)
    fields = ("r", "t", "x") if engine == "sqlite" else ("f4", "f8", "t")
    k = 0
    for field in fields:
        for value in (1e20, -3.4e38, 1e308):
            k += 1
            if (field, value) == ("f4", 1e308):
                assert (
                    "more precise than real holds"
                    in refused(service, handle, k, field, value).message
                )
            elif field == "t":
                assert float(written(service, handle, k, field, value)) == value
            else:
                assert written(service, handle, k, field, value) == value
        k += 1
        if engine == "sqlite":
            error = refused(service, handle, k, field, 2**63)
            assert "past the 64 bits SQLite stores" in error.message
        elif field == "f4":  # real's shortest text, 9.223372e+18, reads back as another number
            assert "more precise than real" in refused(service, handle, k, field, 2**63).message
        else:
            assert float(written(service, handle, k, field, 2**63)) == 2.0**63


# -- SQLite affinities -------------------------------------------------------------------------------


def test_sqlite_numbers_keep_their_value_in_every_affinity(
    service: Service, tmp_path: Path
) -> None:
    """A number into an INTEGER, REAL, NUMERIC or untyped column of SQLite is stored as a number
    equal to it (SQLite keeps ``3.5`` a REAL in an INTEGER column), shown back equal; an integer
    a REAL column would round (past 2**53) is refused."""
    handle = _sqlite_handle(service, tmp_path)
    for k, value in enumerate([*EXACT, 3.5, 3.0, -0.25], start=1):
        for j, field in enumerate(("n", "r", "i", "x")):
            if field == "r" and value == 9007199254740993:
                error = refused(service, handle, k * 10 + j, field, value)
                assert "2**53" in error.message
                continue
            shown = written(service, handle, k * 10 + j, field, value)
            assert shown == value and type(shown) in (int, float), (field, value, shown)


#: Strings SQLite's INTEGER, REAL and NUMERIC affinities would store as numbers they do not spell
#: as JSON does, and the number (as the message shows it).
NUMBER_TEXTS = [("007", "7"), (" 7", "7"), ("7\n", "7"), ("+5", "5"), (".5", "0.5"), ("1.", "1"),
                ("1e400", "an infinity"), ("12345678901234567890", "1.2345678901234567e+19"),
                ("0.10000000000000000001", "0.1")]  # fmt: skip
#: Strings spelling a number as JSON does, which those affinities store as that number.
JSON_NUMBER_TEXTS = ["7", "12", "1.50", "1e5", "-0.25", "0.30000000000000004", "9007199254740993"]
#: Strings no affinity changes.
KEPT_TEXTS = ["2024-03-01", "abc", "0x10", "1,5", "nan", "\u0663", "7 kg", ""]


@pytest.mark.parametrize(
    ("table", "fields"),
    [("typed", ("i", "r", "n", "d", "b", "dt", "a")), ("strict_any", ("i", "r"))],
)
def test_sqlite_a_string_an_affinity_would_store_as_another_value_is_refused(
    service: Service, tmp_path: Path, table: str, fields: tuple[str, ...]
) -> None:
    """SQLite's INTEGER, REAL and NUMERIC affinities (``INT``, ``DECIMAL(10,2)``, ``BOOLEAN``,
    ``DATE``, ``ANY`` outside a STRICT table; a STRICT table's INTEGER and REAL too) store
    ``"007"`` as 7 and ``" 7"`` as 7, a number that string does not spell as JSON does, so it
    would read back as another value: ``invalid_params`` naming the field and what it would
    become, nothing written, on create, update and batch alike."""
    handle = _sqlite_handle(service, tmp_path)
    run(service, "data/create", handle, collection=table, id=1, data={})
    for field in fields:
        for k, (text, number) in enumerate(NUMBER_TEXTS, start=10):
            for name, params in (
                ("data/create", {"id": k, "data": {field: text}}),
                ("data/update", {"id": 1, "data": {field: text}}),
            ):
                with pytest.raises(InvalidParams) as caught:
                    run(service, name, handle, collection=table, **params)
                assert caught.value.field == f"data.{field}", (field, text)
                message = caught.value.message
                assert number in message and "send the number" in message, (field, text, message)
            assert run(service, "data/read", handle, collection=table, id=k)["found"] is False
        with pytest.raises(DbHandlesError) as failed:
            run(service, "data/batch", handle, operations=[
                {"op": "update", "collection": table, "id": 1, "data": {field: "007"}}])  # fmt: skip
        assert failed.value.field is not None and failed.value.field.endswith(f"data.{field}")
        assert run(service, "data/read", handle, collection=table, id=1)["data"][field] is None


def test_sqlite_a_string_spelling_a_number_as_json_does_is_that_number(
    service: Service, tmp_path: Path
) -> None:
    """``"7"``, ``"1.50"``, ``"1e5"`` into a column of numeric affinity are stored as the number
    they spell (as PostgreSQL's numeric types read their text): a read shows that number, equal
    in value (``"12"`` under REAL is 12.0); a REAL column refuses one a double rounds."""
    handle = _sqlite_handle(service, tmp_path)
    k = 0
    for field in ("i", "r", "n", "d", "b", "dt", "a"):
        for text in JSON_NUMBER_TEXTS:
            k += 1
            if field == "r" and text == "9007199254740993":
                with pytest.raises(InvalidParams) as caught:
                    run(service, "data/create", handle, collection="typed", id=k, data={"r": text})
                assert "9007199254740992.0" in caught.value.message
                continue
            shown = written_in(service, handle, "typed", k, field, text)
            assert type(shown) in (int, float) and Decimal(repr(shown)) == Decimal(text), (
                field, text, shown,
            )  # fmt: skip


def test_sqlite_strings_are_kept_as_written_where_no_affinity_changes_them(
    service: Service, tmp_path: Path
) -> None:
    """Text columns, columns without a type, a STRICT table's ANY, and strings that are no
    decimal literal in any column: written and read back as the same string; a key's text
    stays its id (``"42"`` into an INT key is 42, docs/foreign-tables.md "One rule for ids")."""
    handle = _sqlite_handle(service, tmp_path)
    k = 0
    for table, fields in (("typed", ("t", "x")), ("strict_any", ("a",))):
        for field in fields:
            for text in [*(t for t, _ in NUMBER_TEXTS), *JSON_NUMBER_TEXTS]:
                k += 1
                again = written_in(service, handle, table, k, field, text)
                assert again == text and type(again) is str
    for field in ("i", "r", "n", "d", "b", "dt", "a", "t", "x"):
        for text in KEPT_TEXTS:
            k += 1
            assert written_in(service, handle, "typed", k, field, text) == text
    assert run(service, "data/create", handle, collection="ik", data={"k": "42"})["id"] == "42"
    assert run(service, "data/read", handle, collection="ik", id=42)["data"]["k"] == 42


def written_in(service: Service, handle: str, table: str, k: int, field: str, value: Any) -> Any:
    run(service, "data/create", handle, collection=table, id=k, data={field: value})
    return run(service, "data/read", handle, collection=table, id=k)["data"][field]


def test_sqlite_strict_integer_column_refuses_a_fraction(service: Service, tmp_path: Path) -> None:
    handle = _sqlite_handle(service, tmp_path)
    with pytest.raises(InvalidParams) as caught:
        run(service, "data/create", handle, collection="strict_nums", id=1, data={"i": 3.5})
    assert caught.value.field == "data.i"
    made = run(
        service, "data/create", handle, collection="strict_nums", id=2, data={"i": 3.0, "t": 1e-7}
    )
    assert made["data"]["i"] == 3 and made["data"]["t"] == "1e-7"


# -- SQLite keys of a declared numeric type, on every write door -------------------------------------


@pytest.mark.parametrize("bad", ["abc", "1.5", "", "1e999"])
def test_sqlite_integer_key_refuses_an_id_it_cannot_hold(
    service: Service, tmp_path: Path, bad: str
) -> None:
    handle = _sqlite_handle(service, tmp_path)
    with pytest.raises(InvalidParams) as caught:
        run(service, "data/create", handle, collection="ik", id=bad, data={"v": 1})
    assert caught.value.field == "id"
    with pytest.raises(InvalidParams):
        run(service, "data/create", handle, collection="ik", data={"k": bad, "v": 1})
    with pytest.raises(InvalidParams):
        run(service, "data/batch", handle, operations=[
            {"op": "create", "collection": "ik", "id": "7", "data": {"v": 1}},
            {"op": "create", "collection": "ik", "id": bad, "data": {"v": 2}},
        ])  # fmt: skip
    with pytest.raises(InvalidParams):
        run(
            service,
            "data/create",
            handle,
            collection="pair",
            id=orjson.dumps([bad, "x"]).decode(),
            data={},
        )
    assert (
        run(service, "data/list", handle, collection="ik")["items"] == []
    )  # the batch rolled back
    assert (
        run(service, "data/create", handle, collection="ik", id="7", data={"v": 1})["data"]["k"]
        == 7
    )
    assert (
        run(service, "data/create", handle, collection="ik", id=8.0, data={"v": 1})["data"]["k"]
        == 8
    )
    made = run(service, "data/create", handle, collection="pair", id='[3,"x"]', data={"v": 1})
    assert made["data"]["a"] == 3


def test_sqlite_real_key_takes_numbers_only(service: Service, tmp_path: Path) -> None:
    handle = _sqlite_handle(service, tmp_path)
    with pytest.raises(InvalidParams):
        run(service, "data/create", handle, collection="rk", id="abc", data={})
    assert (
        run(service, "data/create", handle, collection="rk", id="2.5", data={})["data"]["k"] == 2.5
    )


def test_sqlite_integer_key_refuses_a_copied_id(service: Service, tmp_path: Path) -> None:
    handle = _sqlite_handle(service, tmp_path)
    source = str(service.execute("data/open", {"adapter": "memory", "config": {}})["dbHandle"])
    run(service, "data/create", source, collection="rows", id="abc", data={"v": 1})
    with pytest.raises(InvalidParams):
        service.execute("data/copy", {"from": {"dbHandle": source, "collection": "rows"},
                                      "to": {"dbHandle": handle, "collection": "ik"}})  # fmt: skip
    assert run(service, "data/list", handle, collection="ik")["items"] == []


# -- copying reserved fields into a collection ---------------------------------------------------


def _events(tmp_path: Path, rows: list[tuple[Any, ...]]) -> Path:
    path = tmp_path / "events.db"
    conn = sqlite3.connect(path)
    conn.execute('CREATE TABLE ev (id TEXT PRIMARY KEY, "createdAt", "updatedAt", version, v)')
    conn.executemany("INSERT INTO ev VALUES (?, ?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()
    return path


def _events_and_target(
    service: Service, tmp_path: Path, target: str, rows: list[tuple[Any, ...]]
) -> tuple[str, str]:
    """The handle of an SQLite file holding ``rows`` in ``ev`` (``_events``) and of an empty
    ``target`` database to copy them into."""
    path = _events(tmp_path, rows)
    source = service.execute("data/open", {"adapter": "sqlite", "config": {"path": str(path)}})
    folder = tmp_path / "target"
    folder.mkdir()
    config = adapter_config(target, folder)
    into = service.execute("data/open", {"adapter": target, "config": config})
    return str(source["dbHandle"]), str(into["dbHandle"])


STAMP = "2024-05-01T10:00:00.000Z"
LEAP = "2024-02-29T23:59:59.999Z"


@pytest.mark.parametrize("target", ADAPTERS)
@pytest.mark.parametrize(
    ("row", "field"),
    [
        (("e1", STAMP, STAMP, 0, "a"), "version"),
        (("e1", STAMP, "x", 1, "a"), "updatedAt"),
        (("e1", STAMP, None, 1, "a"), "updatedAt"),
        (("e1", 20240501, STAMP, 1, "a"), "createdAt"),
        (("e1", STAMP, STAMP, 2.5, "a"), "version"),
        (("e1", "2024-02-30T00:00:00.000Z", STAMP, 1, "a"), "createdAt"),
        (("e1", STAMP, "2023-02-29T10:00:00.000Z", 1, "a"), "updatedAt"),
        (("e1", STAMP, "2024-05-01T24:00:00.000Z", 1, "a"), "updatedAt"),
        (("e1", "0000-02-30T00:00:00.000Z", STAMP, 1, "a"), "createdAt"),
    ],
)
def test_copy_refuses_reserved_fields_no_record_holds(
    service: Service, tmp_path: Path, target: str, row: tuple[Any, ...], field: str
) -> None:
    source, into = _events_and_target(
        service, tmp_path, target, [("e0", STAMP, STAMP, 3, "ok"), row]
    )
    with pytest.raises(InvalidParams) as caught:
        service.execute("data/copy", {"from": {"dbHandle": source, "collection": "ev"},
                                      "to": {"dbHandle": into, "collection": "events"}})  # fmt: skip
    assert caught.value.field == "from.collection"
    assert '"e1"' in caught.value.message and field in caught.value.message
    # Nothing of the batch was written, and the target reads every record it holds.
    listed = run(service, "data/list", into, collection="events")
    assert listed["items"] == [] and listed.get("unreadable", 0) == 0


@pytest.mark.parametrize("target", ADAPTERS)
def test_copy_keeps_reserved_fields_a_record_holds(
    service: Service, tmp_path: Path, target: str
) -> None:
    source, into = _events_and_target(
        service,
        tmp_path,
        target,
        [("e0", STAMP, STAMP, 3, "ok"), ("e2", LEAP, LEAP, None, "null version")],
    )
    done = service.execute("data/copy", {"from": {"dbHandle": source, "collection": "ev"},
                                         "to": {"dbHandle": into, "collection": "events"}})  # fmt: skip
    assert done["copied"] == 2
    record = run(service, "data/read", into, collection="events", id="e0")["data"]
    assert (record["createdAt"], record["updatedAt"], record["version"], record["v"]) == (
        STAMP,
        STAMP,
        3,
        "ok",
    )
    # NULL is version 0 (not versioned yet): the copy is a record at version 1 (copy.md).
    record = run(service, "data/read", into, collection="events", id="e2")["data"]
    assert (record["createdAt"], record["version"], record["v"]) == (LEAP, 1, "null version")


# -- a NULL version, one answer ----------------------------------------------------------------------


def test_null_version_conflict_says_what_a_read_shows(service: Service, tmp_path: Path) -> None:
    path = tmp_path / "camel.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id TEXT PRIMARY KEY, name TEXT, version INTEGER, "
                 "created_at TEXT, updated_at TEXT)")  # fmt: skip
    conn.execute("INSERT INTO users (id, name) VALUES ('u1', 'a')")
    conn.commit()
    conn.close()
    config = {"path": str(path), "fieldNames": "camel"}
    handle = str(service.execute("data/open", {"adapter": "sqlite", "config": config})["dbHandle"])
    assert run(service, "data/read", handle, collection="users", id="u1")["data"]["version"] is None
    with pytest.raises(Conflict) as caught:
        run(service, "data/update", handle, collection="users", id="u1", data={"name": "b"},
            expectedVersion=1)  # fmt: skip
    assert "version null" in caught.value.message and "counts as 0" in caught.value.message
    updated = run(service, "data/update", handle, collection="users", id="u1", data={"name": "b"},
                  expectedVersion=0)  # fmt: skip
    assert updated["data"]["version"] == 1
