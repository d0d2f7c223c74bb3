"""A JSON-adapter file edited by hand holding a value a rewrite would change (an integer past 64
bits, a key twice, nesting past 64 levels) is never rewritten: every write is ``read_only`` naming
the record and field, and the file's bytes stay as they were (docs/filters.md "Values")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
