"""A JSON-adapter file that gives an object key twice is refused, naming the key, where it is and
its line (issue #14): ``{"collections": {"a": [...], "a": [...]}}`` was served as its last copy, a
hand-edited file losing the first without a word. RFC 8259 §4: names SHOULD be unique, and a reader
of an object whose names are not may report the last pair only or an error; dbhandles reports the
error, for every object of the file (the top level, ``collections``, a record and any value inside
it), whatever escapes spell the key (``"a"`` and ``"\\u0061"`` are one name), on open and when the
file is read again after an edit (docs/filters.md "Values")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbhandles import Service
from dbhandles.errors import DbHandlesError

STAMP = (
    '"createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-01T00:00:00.000Z", "version": 1'
)


def record(record_id: str, fields: str = '"n": 1') -> str:
    return f'{{"id": "{record_id}", {fields}, {STAMP}}}'


def database(collections: str, top: str = "") -> str:
    """A file's text, one member a line: ``top`` members first, then ``collections``' body."""
    return f'{{{top}\n"format": "dbhandles-json",\n"version": 1,\n"collections": {{\n{collections}\n}}\n}}\n'


def open_json(service: Service, path: Path) -> dict[str, Any]:
    return service.execute("data/open", {"adapter": "json", "config": {"path": str(path)}})


def refused(service: Service, path: Path) -> DbHandlesError:
    before = path.read_bytes()
    with pytest.raises(DbHandlesError) as caught:
        open_json(service, path)
    assert caught.value.code == "not_a_database", caught.value.message
    assert caught.value.field == "config.path"
    assert path.read_bytes() == before  # never rewritten
    return caught.value


R1 = record("r1")
R2 = record("r2")
#: Record r1 whose fields run over two lines (the second copy of a name on the second).
FIELD_TWICE = record("r1", '"n": 1,\n"n": 2')
NESTED_TWICE = record("r1", '"m": {"k": 1,\n"\\u006b": 2}')
IN_ARRAY_TWICE = record("r1", '"m": [{"x": "{\\"k\\": 1, \\"k\\": 2}", "k": 1,\n"k": 2}]')
#: (file text, words the message names: the key, where it is, the line of its second copy).
TWICE = [
    (database(f'"a": [{R1}],\n"a": [{R2}]'), ['key "a"', "collections", "line 6"]),
    (database(f'"a": [{R1}],\n"\\u0061": [{R2}]'), ['key "a"', "collections", "line 6"]),
    (database(f'"a": [{R1}]', top='"version": 2,'), ['key "version"', "top level", "line 3"]),
    (database(f'"a": [{R1}]', top='"collections": {},'), ['key "collections"', "top level", "line 4"]),
    (database(f'"a": [\n{FIELD_TWICE}]'), ['key "n"', 'record "r1" of collection "a"', "line 7"]),
    (database(f'"a": [{NESTED_TWICE}]'), ['key "k"', 'record "r1" of collection "a"', "m", "line 6"]),
    (database(f'"a": [{IN_ARRAY_TWICE}]'), ['key "k"', 'record "r1" of collection "a"', "m[0]", "line 6"]),
]  # fmt: skip


@pytest.mark.parametrize(("text", "words"), TWICE)
def test_a_key_given_twice_is_refused_naming_it_and_its_line(
    service: Service, tmp_path: Path, text: str, words: list[str]
) -> None:
    path = tmp_path / "twice.json"
    path.write_text(text)
    error = refused(service, path)
    for word in words:
        assert word in error.message, (word, error.message)


def test_a_key_twice_written_after_the_open_is_refused_at_the_next_read(
    service: Service, tmp_path: Path
) -> None:
    """Another program edits the file under an open handle: the next read refuses it rather than
    serving the last copy."""
    path = tmp_path / "edited.json"
    path.write_text(database(f'"a": [{R1}]'))
    db = open_json(service, path)["dbHandle"]
    assert service.execute("data/read", {"dbHandle": db, "collection": "a", "id": "r1"})["found"]
    path.write_text(database(f'"a": [{R1}],\n"a": [{R2}]'))
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/list", {"dbHandle": db, "collection": "a"})
    assert caught.value.code == "not_a_database" and 'key "a"' in caught.value.message


def test_the_same_text_in_a_string_or_in_another_object_is_no_repeat(
    service: Service, tmp_path: Path
) -> None:
    """Only a name given twice in one object counts: the same name in sibling objects, nested
    ones, or inside a string value, is fine (the file opens writable)."""
    records = [record("r1", '"n": {"n": {"n": 1}}, "s": "\\"n\\": 1, \\"n\\": 2"'), record("r2")]
    path = tmp_path / "fine.json"
    body = ", ".join(records)
    path.write_text(database(f'"a": [{body}],\n"b": [{R1}]'))
    db = open_json(service, path)["dbHandle"]
    service.execute("data/create", {"dbHandle": db, "collection": "a", "id": "r3", "data": {}})
    listed = service.execute("data/list", {"dbHandle": db, "collection": "a", "orderBy": "id"})
    assert [r["id"] for r in listed["items"]] == ["r1", "r2", "r3"]


NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=4)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    fields=st.lists(st.tuples(NAMES, st.integers(0, 9)), min_size=1, max_size=6),
    escape=st.booleans(),
)
def test_any_record_object_with_a_name_twice_is_refused_and_no_other_is(
    service: Service, tmp_path: Path, fields: list[tuple[str, int]], escape: bool
) -> None:
    """The oracle: Python's ``json`` with a hook that lists each object's pairs. A record whose
    object ``m`` repeats a name (spelled with or without escapes) is refused; one that does not
    opens."""
    members = ", ".join(
        f"{json.dumps(name, ensure_ascii=escape)}: {value}" for name, value in fields
    )
    path = tmp_path / "hypothesis.json"
    text = record("r1", f'"m": {{{members}}}')
    path.write_text(database(f'"a": [{text}]'))
    names = [name for name, _ in fields]
    if len(set(names)) < len(names):
        error = refused(service, path)
        assert 'record "r1" of collection "a"' in error.message
    else:
        db = open_json(service, path)["dbHandle"]
        read = service.execute("data/read", {"dbHandle": db, "collection": "a", "id": "r1"})
        assert read["data"]["m"] == dict(fields)
        service.execute("data/close", {"dbHandle": db})
