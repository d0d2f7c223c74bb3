"""Issue #12/#14, outside round 17: what reading a SQLite row in full costs, and integers past 64
bits in rows another tool wrote (docs/filters.md "Values").

Rows dbhandles wrote (canonical, named by no ``sqlite_records.foreign_rows``) are decoded by
``orjson.loads`` alone; the checks on other rows run in C (orjson's own nesting limit, byte
searches) but for the rare text that may break them; decoding a page looks at the command's budget
and stop between rows. A row holding an integer literal that orjson or SQLite's JSON functions
read as an inexact float is unreadable on every door, as ``data/create`` refuses such a number."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from dbhandles import Service, budget
from dbhandles.adapters import sqlite_records, sqlite_values
from dbhandles.adapters.sqlite_records import Foreign, decode_all
from dbhandles.adapters.sqlite_values import Unreadable, load_record, loads
from dbhandles.errors import InvalidParams, JobCancelled, QueryTimeout
from dbhandles.values import MAX_DEPTH, check_value
from tests.foreign_rows import open_sqlite


def _nest(levels: int, inner: Any) -> Any:
    value = inner
    for _ in range(levels):
        value = [value]
    return value


def _ask(service: Service, db: str, command: str, **params: Any) -> Any:
    return service.execute(command, {"dbHandle": db, "collection": "c", **params})


def _stored(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        rows = dict(conn.execute("SELECT id, data FROM c").fetchall())
    conn.close()
    return rows


# --- the depth, NUL and integer checks: exact, whatever form the text takes ---------------------


@pytest.mark.parametrize("levels", range(MAX_DEPTH - 3, MAX_DEPTH + 3))
@pytest.mark.parametrize("inner", [[], {}, 0, {"k": 1}, "s"], ids=repr)
@pytest.mark.parametrize("spaced", [False, True])
def test_the_depth_of_a_stored_row_is_judged_as_create_judges_it(
    levels: int, inner: Any, spaced: bool
) -> None:
    """``_dumped`` (orjson's nesting limit, then a walk of the deepest level only) agrees with
    ``check_value`` at every level around the bound, for canonical and spaced text, and beside a
    wide shallow value (whose bracket count passes the bound)."""
    record = {"wide": [[] for _ in range(80)], "x": _nest(levels, inner)}
    text = orjson.dumps(record).decode()
    if spaced:
        text = text.replace(",", ", ").replace(":", ": ")
    assert _reads(load_record, text, record) == _allowed(record)
    # A foreign JSON column's text is a field's value (level 1), read as a record's field is.
    column = orjson.dumps(record["x"]).decode()
    assert _reads(loads, column, record["x"]) == _allowed({"x": record["x"]})


def _allowed(record: dict[str, Any]) -> bool:
    try:
        check_value(record, "")
    except InvalidParams:
        return False
    return True


def _reads(read: Any, text: str, value: Any) -> bool:
    try:
        got, why = read(text), ""
    except Unreadable as exc:
        got, why = None, exc.why
    assert why in ("", f"nests a value deeper than {MAX_DEPTH} levels")
    assert why or got == value
    return not why


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    return isinstance(value, list) and any(_holds_nul(v) for v in value)


@pytest.mark.parametrize(
    ("text", "readable"),
    [
        ('{"a":"x\\u0000y"}', False),  # U+0000
        ('{"a\\u0000":1}', False),  # in a key
        ('{"a":"\\\\u0000"}', True),  # a backslash, then "u0000"
        ('{"a":"\\\\\\u0000"}', False),  # a backslash, then U+0000
        ('{"a":"\\\\\\\\u0000"}', True),  # two backslashes, then "u0000"
        ('{"a":"\\u005cu0000"}', True),  # a backslash spelled by its escape, then "u0000"
    ],
)
def test_u0000_is_found_in_the_text_whatever_escapes_precede_it(text: str, readable: bool) -> None:
    assert _holds_nul(orjson.loads(text)) == (not readable)
    if readable:
        assert load_record(text) == orjson.loads(text)
    else:
        with pytest.raises(Unreadable, match="U\\+0000"):
            load_record(text)


#: Rows another tool wrote holding an integer no 64-bit reader keeps: orjson reads one past 64
#: bits as a float, SQLite's JSON functions one at or past 2**63.
WIDE = {
    "w30": '{"owner":"alice","n":123456789012345678901234567890}',
    "w63": '{"owner":"alice","n":9223372036854775808}',
    "w64": '{"owner":"alice","n":18446744073709551615}',
    "wneg": '{"owner":"alice","n":-9223372036854775809}',
    "wdeep": '{"owner":"alice","a":[{"b":[1, 2, 100000000000000000000000]}]}',
    "whuge": '{"owner":"alice","n":' + "9" * 300 + "}",  # a finite double, 300 digits
}
#: Read in full: the range's ends, a long number in a string, a long float (every reader reads the
#: same nearest double), a long exponent.
KEPT = {
    "max": ('{"owner":"alice","n":9223372036854775807}', 9223372036854775807),
    "min": ('{"owner":"alice","n":-9223372036854775808}', -9223372036854775808),
    "str": (
        '{"owner":"alice","n":"123456789012345678901234567890"}',
        "123456789012345678901234567890",
    ),
    "float": ('{"owner":"alice","n":1.2345678901234567890123}', 1.2345678901234568),
    "exp": ('{"owner":"alice","n":1234567890123456789e-10}', 123456789.0123456789),
}


@pytest.mark.parametrize("text", WIDE.values(), ids=WIDE.keys())
def test_an_integer_past_64_bits_makes_a_row_unreadable(text: str) -> None:
    with pytest.raises(Unreadable, match="integer outside SQLite's 64 bits"):
        load_record(text)
    assert sqlite_values._record(text.encode()) is None  # RECORD_FUNCTION: no record


@pytest.mark.parametrize("name", KEPT)
def test_integers_within_64_bits_and_floats_are_read_in_full(name: str) -> None:
    text, number = KEPT[name]
    assert load_record(text) == {"owner": "alice", "n": number}


def _wide_database(service: Service, path: Path) -> str:
    db = open_sqlite(service, {"path": str(path), "mode": "create"})
    for record_id in ["a1", "b1", *WIDE, *KEPT]:
        owner = "bob" if record_id == "b1" else "alice"
        _ask(service, db, "data/create", id=record_id, data={"owner": owner, "n": 1})
    with sqlite3.connect(path) as conn:  # another tool, while the handle is open
        conn.executemany(
            "UPDATE c SET data = ? WHERE id = ?",
            [*((t, i) for i, t in WIDE.items()), *((t, i) for i, (t, _) in KEPT.items())],
        )
    conn.close()
    return db


def test_a_row_with_an_integer_past_64_bits_is_unreadable_on_every_door(
    service: Service, tmp_path: Path
) -> None:
    path = tmp_path / "shared.sqlite"
    db = _wide_database(service, path)
    readable = sorted(["a1", "b1", *KEPT])
    listed = _ask(service, db, "data/list", orderBy="id")
    assert [r["id"] for r in listed["items"]] == readable
    assert listed["count"] == len(readable) and listed["unreadable"] == len(WIDE)
    assert all(
        not isinstance(r["n"], float) or r["id"] in ("float", "exp") for r in listed["items"]
    )
    assert _ask(service, db, "data/count")["total"] == len(readable)
    assert _ask(service, db, "data/count", filter={"n": {"$gt": 10**18}})["total"] == 1  # max
    assert _ask(service, db, "data/count", filter={"owner": "alice"})["total"] == len(readable) - 1
    groups = _ask(service, db, "data/count", groupBy=["owner"])["groups"]
    assert {g["key"]["owner"]: g["count"] for g in groups} == {"alice": len(readable) - 1, "bob": 1}
    for record_id in WIDE:
        for command, extra in (("data/read", {}), ("data/update", {"data": {"t": 1}})):
            envelope = service.dispatch(command, {"dbHandle": db, "collection": "c",
                                                  "id": record_id, **extra})  # fmt: skip
            assert envelope["code"] == "query_failed", (record_id, envelope)
            assert f'record "{record_id}" of collection "c"' in envelope["error"]
            assert "integer outside SQLite's 64 bits" in envelope["error"]
    for record_id, (_, number) in KEPT.items():
        assert _ask(service, db, "data/read", id=record_id)["data"]["n"] == number
    assert {i: t for i, t in _stored(path).items() if i in WIDE} == WIDE  # nothing written back
    target = open_sqlite(service, {"path": str(tmp_path / "t.sqlite"), "mode": "create"})
    copied = service.dispatch("data/copy", {"from": {"dbHandle": db, "collection": "c"},
                                            "to": {"dbHandle": target, "collection": "c"}})  # fmt: skip
    # -2**63 is read in full but data/create's range refuses it: the copy says so, writes nothing.
    assert copied["code"] == "invalid_params" and '"min"' in copied["error"], copied
    _ask(service, db, "data/delete", id="min")
    service.execute("data/copy", {"from": {"dbHandle": db, "collection": "c"},
                                  "to": {"dbHandle": target, "collection": "c"}})  # fmt: skip
    copied_ids = [r["id"] for r in _ask(service, target, "data/list", orderBy="id")["items"]]
    assert copied_ids == [i for i in readable if i != "min"]
    service.execute("data/copy", {"from": {"dbHandle": db, "collection": "c"},
                                  "to": {"dbHandle": db, "collection": "d"}, "move": True})  # fmt: skip
    assert _stored(path) == WIDE  # the rows not read in full stay, as written


# --- rows dbhandles wrote pay no check; a page's decode stops at the budget ---------------------


def test_rows_dbhandles_wrote_are_read_with_no_check(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wide records (far more brackets than the depth bound) written by ``data/create``: once the
    fast state knows the collection, listings, counts and filters call no check at all, and a
    point read walks nothing (the depth is orjson's nesting limit, in C)."""
    db = open_sqlite(service, {"path": str(tmp_path / "w.sqlite"), "mode": "create"})
    for i in range(4):
        _ask(service, db, "data/create", id=f"r{i}", data={"a": [[] for _ in range(2000)], "i": i})
    assert _ask(service, db, "data/count")["total"] == 4  # the fast state: every row canonical
    calls: dict[str, int] = {}

    def counted(name: str, module: Any) -> None:
        real = getattr(module, name)

        def count(*args: Any, **kwargs: Any) -> Any:
            calls[name] = calls.get(name, 0) + 1
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, count)

    for name in ("_read", "_holds_at", "_first_keys", "_wide_integer"):
        counted(name, sqlite_values)
    counted("load_record", sqlite_records)
    listed = _ask(service, db, "data/list", orderBy="id", limit=10)
    assert [len(r["a"]) for r in listed["items"]] == [2000] * 4
    assert _ask(service, db, "data/count", filter={"i": {"$gte": 1}})["total"] == 3
    assert len(_ask(service, db, "data/list", filter={"i": 2})["items"]) == 1
    assert calls == {}
    assert len(_ask(service, db, "data/read", id="r1")["data"]["a"]) == 2000
    assert calls == {"_read": 1}  # orjson.loads, one orjson.dumps, byte searches: no walk


def _rows(count: int, size: int) -> list[tuple[str, str, str, str, int]]:
    text = orjson.dumps({"a": "x" * size}).decode()
    return [(f"r{i}", text, "t", "t", 1) for i in range(count)]


#: ``data`` a page may hold in a row ``foreign_rows`` does not name (NULL, which stays NULL through
#: ``RECORD_FUNCTION``), and values it names (the test feeds them anyway: whatever the row-by-row
#: loop answers or raises, the fast way must too).
ODD_DATA: list[object] = [None, 5, 2.5, b"{}", "[1]", '"x"', "not json", "{"]


def _decoded(rows: list[tuple[Any, ...]], foreign: Foreign) -> object:
    try:
        records, complete = decode_all(rows, foreign)
    except (TypeError, ValueError) as exc:
        return type(exc)
    return [list(r.items()) for r in records], complete


@pytest.mark.parametrize("odd", [*ODD_DATA, "none"])
def test_a_page_of_rows_dbhandles_wrote_decodes_as_row_by_row(
    monkeypatch: pytest.MonkeyPatch, odd: object
) -> None:
    """The one-comprehension decode of a page no other tool wrote (``decode_all``'s fast way)
    gives the records (keys in order), completeness or error of the row-by-row loop (which the
    page takes when a look at the budget is due: ``DECODE_CHECK_BYTES`` of 0 here)."""
    rows: list[tuple[Any, ...]] = [
        (f"r{i}", orjson.dumps({"b": i, "a": [i]}).decode(), "c", "u", i) for i in range(5)
    ]
    if odd != "none":
        rows.insert(2, ("odd", odd, "c", "u", 9))
    canonical = Foreign((0, 0, 0), (), frozenset(), 0)
    fast = _decoded(rows, canonical)
    monkeypatch.setattr(sqlite_records, "DECODE_CHECK_BYTES", 0)
    assert fast == _decoded(rows, canonical)
    if odd in ("none", None):
        records, complete = decode_all(rows, canonical)
        assert complete is (odd == "none") and len(records) == 5
        assert list(records[0]) == ["id", "b", "a", "createdAt", "updatedAt", "version"]


@pytest.mark.parametrize("canonical", [True, False])
def test_the_decode_of_a_page_stops_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch, canonical: bool
) -> None:
    monkeypatch.setattr(sqlite_records, "DECODE_CHECK_BYTES", 100)
    rows = _rows(10, 60)
    foreign = Foreign((0, 0, 0), (), frozenset(), 0) if canonical else None
    decoded: list[object] = []
    real = sqlite_records.orjson.loads if canonical else sqlite_records.load_record

    def spending(text: Any) -> Any:  # the deadline passes while the third row is decoded
        decoded.append(text)
        if len(decoded) == 3:
            budget.spend()
        return real(text)

    if canonical:
        monkeypatch.setattr(sqlite_records, "orjson", SimpleNamespace(loads=spending))
    else:
        monkeypatch.setattr(sqlite_records, "load_record", spending)
    with budget.query_budget(60_000), pytest.raises(QueryTimeout):
        decode_all(rows, foreign)
    assert len(decoded) == 3  # stopped between rows, at the next look (every ~100 bytes here)
    decoded.clear()
    assert len(decode_all(rows, foreign)[0]) == 10  # without a budget: every row


def test_the_decode_of_a_page_stops_when_the_command_is_told_to_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sqlite_records, "DECODE_CHECK_BYTES", 100)
    told = False

    def stop() -> JobCancelled | None:
        return JobCancelled("the job was cancelled") if told else None

    rows = _rows(10, 60)
    with budget.stopping(stop):
        assert len(decode_all(rows)[0]) == 10
        told = True
        with pytest.raises(JobCancelled):
            decode_all(rows)


def test_a_listing_answers_query_timeout_at_the_deadline_not_after_all_the_work(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A collection of long rows another tool wrote is read through ``RECORD_FUNCTION`` (to find
    which rows are canonical): once the deadline passed, it reads no further long row, and the
    listing is ``query_timeout``, as is a page whose decode passes it."""
    path = tmp_path / "long.sqlite"
    db = open_sqlite(service, {"path": str(path), "mode": "create"})
    for i in range(6):
        _ask(service, db, "data/create", id=f"r{i}", data={"t": "x" * 70_000, "i": i})
    with sqlite3.connect(path) as conn:  # another tool's spacing: every row read by the function
        conn.execute("UPDATE c SET data = replace(data, '\"i\":', '\"i\": ')")
    conn.close()
    read: list[object] = []
    real = sqlite_values._read

    def spending(text: object, depth: int, record: bool) -> Any:
        read.append(text)
        if len(read) == 2:
            budget.spend()  # the deadline passes while the second long row is read
        return real(text, depth, record)

    monkeypatch.setattr(sqlite_values, "_read", spending)
    envelope = service.dispatch("data/list", {"dbHandle": db, "collection": "c", "limit": 10})
    assert envelope["code"] == "query_timeout", envelope
    assert len(read) == 2  # no long row read past the deadline
    monkeypatch.setattr(sqlite_values, "_read", real)
    assert len(_ask(service, db, "data/list", limit=10)["items"]) == 6
