"""A JSON-adapter file edited by hand holding a value a rewrite would change (an integer past 64
bits, a key twice, nesting past 64 levels) is never rewritten: every write is ``read_only`` naming
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

#: (the fields of record "a" as hand-written JSON, the path the message names, a word of it).
UNKEPT = [
    ('"n": 18446744073709551616', "n: holds the integer 18446744073709551616", "past 64 bits"),
    ('"m": {"k": [1, -9223372036854775809]}', "m.k[1]: holds the integer", "past 64 bits"),
    ('"label": "x", "label": "y"', 'repeats the key "label"', "repeats"),
    ('"m": {"k": 1, "k": 2}', 'm: repeats the key "k"', "repeats"),
    (f'"deep": {DEEP}', "deep", "deeper than 64 levels"),
]


def _hand_edited(tmp_path: Path, fields: str) -> Path:
    path = tmp_path / "hand.json"
    path.write_text(
        '{"format": "dbhandles-json", "version": 1, "collections": {"c": [\n'
        f'  {{"id": "a", {fields}, {STAMP}}},\n  {{"id": "b", "n": 1, {STAMP}}}\n]}}}}\n'
    )
    return path


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
    before = path.read_bytes()
    db = service.execute("data/open", {"adapter": "json", "config": {"path": str(path)}})
    db = db["dbHandle"]
    # Readable as it is: the file opens, the other records read.
    assert service.execute("data/read", {"dbHandle": db, "collection": "c", "id": "b"})["found"]
    for command, params in WRITES:
        with pytest.raises(DbHandlesError) as caught:
            service.execute(command, {"dbHandle": db, **params})
        error = caught.value
        assert error.code == "read_only", (command, error.message)
        assert 'record "a" of collection "c": ' in error.message, error.message
        assert named in error.message and word in error.message, error.message
        assert "nothing was written" in error.message
        assert path.read_bytes() == before, command
    assert sorted(r["id"] for r in service.execute(
        "data/list", {"dbHandle": db, "collection": "c"})["items"]) == ["a", "b"]  # fmt: skip


@pytest.mark.parametrize("fields", ['"n": 18446744073709551615', '"t": "a\\u0000b"', '"n": 1.5'])
def test_values_a_rewrite_keeps_exactly_leave_the_file_writable(
    service: Service, tmp_path: Path, fields: str
) -> None:
    path = _hand_edited(tmp_path, fields)
    db = service.execute("data/open", {"adapter": "json", "config": {"path": str(path)}})
    db = db["dbHandle"]
    service.execute("data/update", {"dbHandle": db, "collection": "c", "id": "b", "data": {"n": 2}})
    assert fields.split(": ")[1].encode() in path.read_bytes()


def test_a_file_fixed_by_hand_is_writable_again(service: Service, tmp_path: Path) -> None:
    path = _hand_edited(tmp_path, UNKEPT[0][0])
    db = service.execute("data/open", {"adapter": "json", "config": {"path": str(path)}})
    db = db["dbHandle"]
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


def _refuses_every_write(service: Service, path: Path, *words: str) -> None:
    before = path.read_bytes()
    db = service.execute("data/open", {"adapter": "json", "config": {"path": str(path)}})
    db = db["dbHandle"]
    assert service.execute("data/read", {"dbHandle": db, "collection": "c", "id": "b"})["found"]
    for command, params in WRITES:
        with pytest.raises(DbHandlesError) as caught:
            service.execute(command, {"dbHandle": db, **params})
        assert caught.value.code == "read_only", (command, caught.value.message)
        assert all(word in caught.value.message for word in words), caught.value.message
        assert path.read_bytes() == before, command


@pytest.mark.parametrize("form", ["compact", "pretty", "hand"])
def test_a_record_id_given_twice_leaves_the_file_read_only(
    service: Service, tmp_path: Path, form: str
) -> None:
    """A write kept one of the two records "a" and dropped the other, whatever the file's form."""
    path = tmp_path / "twice.json"
    _written(path, [_record("a", n=1), _record("b", n=1), _record("a", n=2)], form)
    _refuses_every_write(service, path, 'collection "c" holds the record id "a" twice')


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
    db = service.execute("data/open", {"adapter": "json", "config": {"path": str(path)}})
    db = db["dbHandle"]
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
    text = '{"format": "dbhandles-json", "version": 1, "collections": {"c": [\n'
    text += f'{{"id": "a", "deep": {"[" * levels}{"]" * levels}, {STAMP}}}]}}}}'
    path.write_text(text if form == "hand" else text.replace(" ", "").replace("\n", ""))
    before = path.read_bytes()
    answer = service.dispatch("data/open", {"adapter": "json", "config": {"path": str(path)}})
    assert answer.get("code") == "not_a_database", answer
    assert path.read_bytes() == before
