"""A JSON-adapter file edited by hand holding a value a rewrite would change (an integer past 64
bits, nesting past 64 levels) is never rewritten: every write is ``read_only`` naming
the record and field, and the file's bytes stay as they were (docs/filters.md "Values")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import Service
from dbhandles.errors import DbHandlesError

STAMP = (
    '"createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-01T00:00:00.000Z", "version": 1'
)
DEEP = "[" * 70 + "]" * 70

#: (the fields of record "a" as hand-written JSON, the path the message names, a word of it). A key
#: given twice is refused on open instead (tests/test_jsonfile_duplicate_keys.py).
UNKEPT = [
    ('"n": 18446744073709551616', "n: holds the integer 18446744073709551616", "past 64 bits"),
    ('"m": {"k": [1, -9223372036854775809]}', "m.k[1]: holds the integer", "past 64 bits"),
    (f'"deep": {DEEP}', "deep", "deeper than 64 levels"),
]


def _hand_text(record: str, *, with_b: bool = True, top: str = "") -> str:
    """A file as a hand writes it: collection "c" holding ``record`` (JSON text, so it may hold
    what no parser keeps) and, if ``with_b``, a plain record "b"; ``top`` (``"key": value, ``)
    comes before ``collections``."""
    records = [f"  {record}"]
    if with_b:
        records.append(f'  {{"id": "b", "n": 1, {STAMP}}}')
    return (
        f'{{"format": "dbhandles-json", "version": 1, {top}"collections": {{"c": [\n'
        + ",\n".join(records)
        + "\n]}}\n"
    )


def _record_a(fields: str) -> str:
    """Record "a" holding ``fields`` (JSON text) as a hand writes it."""
    return f'{{"id": "a", {fields}, {STAMP}}}'


def _hand_file(tmp_path: Path, record: str, top: str = "") -> Path:
    """``tmp_path/hand.json`` written as ``_hand_text(record, top=top)``."""
    path = tmp_path / "hand.json"
    path.write_text(_hand_text(record, top=top))
    return path


def _hand_edited(tmp_path: Path, fields: str) -> Path:
    """``tmp_path/hand.json`` holding record "a" with ``fields`` and a plain record "b"."""
    return _hand_file(tmp_path, _record_a(fields))


def _open_json(service: Service, path: Path) -> str:
    """A handle to the JSON-adapter file ``path``."""
    return str(service.execute("data/open", {"adapter": "json", "config": {"path": str(path)}})[
        "dbHandle"])  # fmt: skip


def _refuses_every_write(service: Service, path: Path, *words: str) -> str:
    """Open ``path`` (record "b" reads), then check that each of ``WRITES`` is ``read_only`` with
    a message holding every one of ``words`` and leaves the file's bytes as they were; the handle."""
    before = path.read_bytes()
    db = _open_json(service, path)
    assert service.execute("data/read", {"dbHandle": db, "collection": "c", "id": "b"})["found"]
    for command, params in WRITES:
        with pytest.raises(DbHandlesError) as caught:
            service.execute(command, {"dbHandle": db, **params})
        assert caught.value.code == "read_only", (command, caught.value.message)
        assert all(word in caught.value.message for word in words), caught.value.message
        assert path.read_bytes() == before, command
    return db


WRITES: list[tuple[str, dict[str, Any]]] = [
    ("data/update", {"collection": "c", "id": "b", "data": {"n": 2}}),
    ("data/create", {"collection": "c", "id": "z", "data": {"n": 2}}),
    ("data/delete", {"collection": "c", "id": "b"}),
    ("data/create", {"collection": "other", "data": {"n": 2}}),
    ("data/batch", {"operations": [{"op": "delete", "collection": "c", "id": "b"}]}),
    ("data/truncate", {"collection": "c"}),
    ("data/vacuum", {}),
]


@pytest.mark.parametrize(("fields", "named", "word"), UNKEPT)
def test_a_file_a_rewrite_would_change_is_never_rewritten(
    service: Service, tmp_path: Path, fields: str, named: str, word: str
) -> None:
    path = _hand_edited(tmp_path, fields)
    # Readable as it is: the file opens, the other records read; every write is refused.
    words = ('record "a" of collection "c": ', named, word, "nothing was written")
    db = _refuses_every_write(service, path, *words)
    assert sorted(r["id"] for r in service.execute(
        "data/list", {"dbHandle": db, "collection": "c"})["items"]) == ["a", "b"]  # fmt: skip


@pytest.mark.parametrize("fields", ['"n": 18446744073709551615', '"t": "a\\u0000b"', '"n": 1.5'])
def test_values_a_rewrite_keeps_exactly_leave_the_file_writable(
    service: Service, tmp_path: Path, fields: str
) -> None:
    path = _hand_edited(tmp_path, fields)
    db = _open_json(service, path)
    service.execute("data/update", {"dbHandle": db, "collection": "c", "id": "b", "data": {"n": 2}})
    assert fields.split(": ")[1].encode() in path.read_bytes()


def test_a_file_fixed_by_hand_is_writable_again(service: Service, tmp_path: Path) -> None:
    path = _hand_edited(tmp_path, UNKEPT[0][0])
    db = _open_json(service, path)
    update = {"dbHandle": db, "collection": "c", "id": "b", "data": {"n": 2}}
    with pytest.raises(DbHandlesError):
        service.execute("data/update", update)
    _hand_edited(tmp_path, '"n": "18446744073709551616"')
    service.execute("data/update", update)
    read = service.execute("data/read", {"dbHandle": db, "collection": "c", "id": "b"})
    assert read["data"]["n"] == 2 and b'"18446744073709551616"' in path.read_bytes()


def _record(record_id: str, **fields: Any) -> dict[str, Any]:
    stamp = "2026-01-01T00:00:00.000Z"
    return {"id": record_id, **fields, "createdAt": stamp, "updatedAt": stamp, "version": 1}


def _nested(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


def _written(path: Path, records: list[dict[str, Any]], form: str) -> bytes:
    """The file as dbhandles writes it (``compact``, ``pretty``) or with a hand's spaces (``hand``)."""
    doc = {"format": "dbhandles-json", "version": 1, "collections": {"c": records}}
    if form == "hand":
        raw = json.dumps(doc, indent=1).encode()
    else:
        raw = orjson.dumps(doc, option=orjson.OPT_INDENT_2 if form == "pretty" else 0)
    path.write_bytes(raw)
    return raw


@pytest.mark.parametrize("form", ["compact", "pretty", "hand"])
def test_a_record_id_given_twice_leaves_the_file_read_only(
    service: Service, tmp_path: Path, form: str
) -> None:
    """A write kept one of the two records "a" and dropped the other, whatever the file's form;
    both copies are unreadable (issue #14 round 20: left out of listings, named by a read)."""
    path = tmp_path / "twice.json"
    _written(path, [_record("a", n=1), _record("b", n=1), _record("a", n=2)], form)
    _refuses_every_write(service, path, 'record "a" of collection "c" is given 2 times')


@pytest.mark.parametrize("form", ["compact", "pretty", "hand"])
def test_nesting_past_64_levels_is_read_only_whatever_the_file_s_form(
    service: Service, tmp_path: Path, form: str
) -> None:
    path = tmp_path / "deep.json"
    _written(path, [_record("a", deep=_nested(70)), _record("b", n=1)], form)
    _refuses_every_write(service, path, 'record "a" of collection "c": deep', "deeper than 64")


@pytest.mark.parametrize("levels", [64, 200])
def test_nesting_up_to_64_levels_is_writable_and_to_200_is_served(
    service: Service, tmp_path: Path, levels: int
) -> None:
    path = tmp_path / "deep.json"
    _written(path, [_record("a", deep=_nested(levels)), _record("b", n=1)], "compact")
    db = _open_json(service, path)
    listed = service.dispatch("data/list", {"dbHandle": db, "collection": "c"})
    assert "code" not in listed and len(listed["items"]) == 2, listed
    orjson.dumps({"ok": True, "result": listed})  # a response can carry it
    update = service.dispatch(
        "data/update", {"dbHandle": db, "collection": "c", "id": "b", "data": {"n": 2}}
    )
    assert update.get("code") == (None if levels == 64 else "read_only"), update


@pytest.mark.parametrize(("levels", "form"), [(300, "hand"), (1000, "hand"), (1100, "hand")])
def test_a_file_nesting_deeper_than_can_be_sent_back_is_not_a_database(
    service: Service, tmp_path: Path, levels: int, form: str
) -> None:
    """At 300 levels the open answered ``internal_error`` (orjson writes at most 254)."""
    path = tmp_path / "deep.json"
    text = _hand_text(_record_a(f'"deep": {"[" * levels}{"]" * levels}'), with_b=False)
    path.write_text(text if form == "hand" else text.replace(" ", "").replace("\n", ""))
    before = path.read_bytes()
    answer = service.dispatch("data/open", {"adapter": "json", "config": {"path": str(path)}})
    assert answer.get("code") == "not_a_database", answer
    assert path.read_bytes() == before


#: Integers past 64 bits a hand-edited file holds (issue 14): each is served exactly, never as the
#: float orjson reads it as (``1.2345678901234568e+20``).
BIG = 123456789012345678901
BIG_FIELDS = f'"n": {BIG}, "m": {{"k": [1, -99999999999999999999999]}}'


def test_an_integer_past_64_bits_is_served_and_exported_exactly(
    service: Service, tmp_path: Path
) -> None:
    path = _hand_edited(tmp_path, BIG_FIELDS)
    before = path.read_bytes()
    db = _open_json(service, path)
    base = {"dbHandle": db, "collection": "c"}
    read = service.execute("data/read", {**base, "id": "a"})["data"]
    assert type(read["n"]) is int and read["n"] == BIG
    assert read["m"] == {"k": [1, -99999999999999999999999]}
    listed = service.execute("data/list", {**base, "orderBy": "id"})["items"]
    assert [r["n"] for r in listed] == [BIG, 1]
    counted = service.execute("data/count", {**base, "groupBy": ["n"]})["groups"]
    assert sorted(g["key"]["n"] for g in counted) == [1, BIG]
    assert service.execute("data/count", {**base, "filter": {"n": {"$gt": 2**62}}})["total"] == 1
    output = tmp_path / "out.jsonl"
    exported = service.execute("data/export", {**base, "output": str(output)})
    assert exported["exported"] == 2
    first = output.read_bytes().splitlines()[0]
    assert f'"n":{BIG}'.encode() in first and b'"k":[1,-99999999999999999999999]' in first
    assert json.loads(first)["n"] == BIG
    assert path.read_bytes() == before  # read-only: nothing was rewritten


@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_pages_sorted_by_an_integer_past_64_bits_go_on(
    service: Service, tmp_path: Path, direction: str
) -> None:
    """A cursor cannot carry such an integer (the cursor value rule): the page names its last row
    instead (``paging.RowPosition``), and a query cursor stores it exactly."""
    path = _hand_edited(tmp_path, BIG_FIELDS)
    db = _open_json(service, path)
    base = {"dbHandle": db, "collection": "c", "orderBy": [{"field": "n", "direction": direction}]}
    expected = ["b", "a"] if direction == "asc" else ["a", "b"]
    seen: list[str] = []
    cursor = None
    for _ in range(4):
        page = service.execute("data/list", {**base, "limit": 1,
                                             **({"cursor": cursor} if cursor else {})})  # fmt: skip
        seen += [r["id"] for r in page["items"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert seen == expected
    opened = service.execute("data/query-open", {**base, "pageSize": 1})
    pages = [service.execute("data/query-next", {"queryHandle": opened["queryHandle"]})
             for _ in expected]  # fmt: skip
    assert [r["id"] for p in pages for r in p["items"]] == expected
    assert [r["n"] for p in pages for r in p["items"]] == ([1, BIG] if direction == "asc"
                                                           else [BIG, 1])  # fmt: skip


def test_http_and_jtag_answer_the_integer_exactly(service: Service, tmp_path: Path) -> None:
    from dbhandles.cli.output import render_json
    from tests.servers import app_client

    path = _hand_edited(tmp_path, BIG_FIELDS)
    with app_client(service) as client:
        opened = client.post("/commands/data/open",
                             json={"adapter": "json", "config": {"path": str(path)}})  # fmt: skip
        where = {"dbHandle": opened.json()["dbHandle"], "collection": "c"}
        for command, params in (("data/read", {**where, "id": "a"}), ("data/list", where)):
            response = client.post(f"/commands/{command}", json=params)
            assert response.status_code == 200, response.text
            assert f'"n":{BIG}'.encode() in response.content, response.content
            assert json.loads(response.content)["success"] is True
    shown = render_json({"success": True, "data": {"n": BIG, "t": "x"}})
    assert f'"n": {BIG}' in shown and json.loads(shown)["data"]["n"] == BIG
    copied = service.dispatch("data/copy", {
        "from": {"dbHandle": _open_json(service, path), "collection": "c"},
        "to": {"dbHandle": service.execute("data/open", {"adapter": "memory", "config": {}})[
            "dbHandle"], "collection": "d"}})  # fmt: skip
    # Written into another database it is refused by the value rule, naming record and field.
    assert copied.get("code") == "invalid_params" and 'record "a": n: ' in copied["error"], copied


# Issue #14, outside round 20: system fields, top-level keys and format versions of a hand-edited file.

#: (record "a" as hand-written JSON, a word the read and the read-only message give).
BAD_SYSTEM = [
    ('{"id": "a", "n": 1}', "version null"),
    ('{"id": "a", "n": 1, "createdAt": "2026-01-01T00:00:00.000Z", '
     '"updatedAt": "2026-01-01T00:00:00.000Z", "version": true}', "version true"),
    ('{"id": "a", "n": 1, "createdAt": "2026-01-01T00:00:00.000Z", '
     '"updatedAt": "2026-01-01T00:00:00.000Z", "version": 1.5}', "version 1.5"),
    ('{"id": "a", "n": 1, "createdAt": "2026-01-01T00:00:00.000Z", '
     '"updatedAt": "2026-01-01T00:00:00.000Z", "version": "7"}', 'version "7"'),
    ('{"id": "a", "n": 1, "createdAt": {"a": 1}, '
     '"updatedAt": "2026-01-01T00:00:00.000Z", "version": 1}', "createdAt"),
    ('{"id": "a", "n": 1, "createdAt": "2026-01-01T00:00:00.000Z", '
     '"updatedAt": 5, "version": 1}', "updatedAt 5"),
    ('{"id": "a", "n": 1, "createdAt": "2026-01-01T00:00:00.000Z", '
     '"updatedAt": "2026-01-01T00:00:00.000Z", "version": 1}, '
     '{"id": "a", "n": 2, "createdAt": "2026-01-01T00:00:00.000Z", '
     '"updatedAt": "2026-01-01T00:00:00.000Z", "version": 1}', "given 2 times"),
]  # fmt: skip


@pytest.mark.parametrize(("record", "word"), BAD_SYSTEM)
def test_a_record_whose_system_fields_dbhandles_would_not_write_is_unreadable(
    service: Service, tmp_path: Path, record: str, word: str
) -> None:
    path = _hand_file(tmp_path, record)
    before = path.read_bytes()
    db = service.execute("data/open", {"adapter": "json", "config": {"path": str(path)}})
    ask = lambda command, **p: service.dispatch(command, {"dbHandle": db["dbHandle"], **p})  # noqa: E731
    listed = ask("data/list", collection="c")
    assert [r["id"] for r in listed["items"]] == ["b"] and listed["unreadable"] >= 1, listed
    assert ask("data/count", collection="c")["total"] == 1
    assert ask("data/list", collection="c", filter={"version": {"$gte": 1}})["count"] == 1
    groups = ask("data/count", collection="c", groupBy=["n"])["groups"]
    assert groups == [{"key": {"n": 1}, "count": 1}]
    out = tmp_path / "out.jsonl"
    assert ask("data/export", collection="c", output=str(out))["exported"] == 1
    assert [orjson.loads(line)["id"] for line in out.read_bytes().splitlines()] == ["b"]
    read = ask("data/read", collection="c", id="a")
    assert read["code"] == "query_failed" and word in read["error"], read
    assert 'record "a" of collection "c"' in read["error"]
    for command, params in WRITES:
        answer = ask(command, **params)
        assert answer["code"] == "read_only" and word in answer["error"], (command, answer)
    target = service.execute("data/open", {"adapter": "sqlite", "config": {
        "path": str(tmp_path / "t.sqlite"), "mode": "create"}})["dbHandle"]  # fmt: skip
    copied = service.dispatch("data/copy", {"from": {"dbHandle": db["dbHandle"], "collection": "c"},
                                            "to": {"dbHandle": target, "collection": "c"}})  # fmt: skip
    assert copied["copied"] == 1, copied
    moved = service.dispatch("data/copy", {"from": {"dbHandle": db["dbHandle"], "collection": "c"},
                                           "to": {"dbHandle": target, "collection": "d"},
                                           "move": True})  # fmt: skip
    assert moved["code"] == "read_only" and moved["field"] == "move", moved
    assert service.execute("data/count", {"dbHandle": target, "collection": "d"})["total"] == 0
    assert path.read_bytes() == before


@pytest.mark.parametrize("record_id", ["", "a\\u0000b", "x" * 513])
def test_a_record_whose_id_dbhandles_refuses_is_unreadable(
    service: Service, tmp_path: Path, record_id: str
) -> None:
    path = _hand_file(tmp_path, f'{{"id": "{record_id}", "n": 1, {STAMP}}}')
    before = path.read_bytes()
    db = service.execute("data/open", {"adapter": "json", "config": {"path": str(path)}})
    listed = service.execute("data/list", {"dbHandle": db["dbHandle"], "collection": "c"})
    assert [r["id"] for r in listed["items"]] == ["b"] and listed["unreadable"] == 1
    out = tmp_path / "out.jsonl"
    service.execute("data/export", {"dbHandle": db["dbHandle"], "collection": "c",
                                    "output": str(out)})  # fmt: skip
    assert len(out.read_bytes().splitlines()) == 1
    update = service.dispatch("data/update", {"dbHandle": db["dbHandle"], "collection": "c",
                                              "id": "b", "data": {"n": 2}})  # fmt: skip
    assert update["code"] == "read_only" and "its id" in update["error"], update
    assert path.read_bytes() == before


def test_a_top_level_key_a_rewrite_would_drop_leaves_the_file_read_only(
    service: Service, tmp_path: Path
) -> None:
    path = _hand_file(tmp_path, _record_a('"n": 1'), '"note": "hand-written", ')
    _refuses_every_write(service, path, 'top-level key "note"', "drop")


def test_a_top_level_value_too_deep_is_no_database(service: Service, tmp_path: Path) -> None:
    deep = "[" * 300 + "]" * 300
    path = _hand_file(tmp_path, _record_a('"n": 1'), f'"x": {deep}, ')
    opened = service.dispatch("data/open", {"adapter": "json", "config": {"path": str(path)}})
    assert opened["code"] == "not_a_database" and 'top-level key "x"' in opened["error"], opened


def test_a_file_swapped_while_open_for_one_too_deep_answers_a_clear_error(
    service: Service, tmp_path: Path
) -> None:
    path = _hand_file(tmp_path, _record_a('"n": 1'))
    db = service.execute("data/open", {"adapter": "json", "config": {"path": str(path)}})
    swapped = tmp_path / "swap.json"
    swapped.write_text(path.read_text().replace('"version": 1, ', '"version": 1, "x": '
                                                 + "[" * 300 + "]" * 300 + ", ", 1))  # fmt: skip
    swapped.replace(path)
    before = path.read_bytes()
    for command, params in [("data/list", {"collection": "c"}), *WRITES]:
        answer = service.dispatch(command, {"dbHandle": db["dbHandle"], **params})
        assert answer.get("code") == "not_a_database", (command, answer)
    assert path.read_bytes() == before


@pytest.mark.parametrize("version", ["9", "0", "true", '"1"'])
def test_a_file_of_another_format_version_is_refused_at_open(
    service: Service, tmp_path: Path, version: str
) -> None:
    path = tmp_path / "later.json"
    path.write_text(f'{{"format": "dbhandles-json", "version": {version}, "collections": {{}}}}')
    before = path.read_bytes()
    opened = service.dispatch("data/open", {"adapter": "json", "config": {"path": str(path)}})
    assert opened["code"] == "not_a_database", opened
    assert f"format version {version}" in opened["error"], opened
    assert path.read_bytes() == before


def test_a_move_out_of_a_read_only_file_writes_nothing(service: Service, tmp_path: Path) -> None:
    """copy.md: a move from a source that refuses writes is refused before anything is written."""
    path = tmp_path / "twice.json"
    records = [_record("a", n=1), _record("b", n=1), _record("c", n=1), _record("a", n=2)]
    _written(path, records, "compact")
    before = path.read_bytes()
    source = service.execute("data/open", {"adapter": "json", "config": {"path": str(path)}})
    for kind in ["json", "sqlite"]:
        target = service.execute("data/open", {"adapter": kind, "config": {
            "path": str(tmp_path / f"t.{kind}"), "mode": "create"}})["dbHandle"]  # fmt: skip
        moved = service.dispatch("data/copy", {
            "from": {"dbHandle": source["dbHandle"], "collection": "c"},
            "to": {"dbHandle": target, "collection": "c"}, "move": True, "batchSize": 1})  # fmt: skip
        assert moved["code"] == "read_only" and moved["field"] == "move", moved
        assert "nothing was read or written" in moved["error"]
        assert service.execute("data/count", {"dbHandle": target, "collection": "c"})["total"] == 0
    assert path.read_bytes() == before
