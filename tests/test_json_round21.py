"""Issue #14, outside round 21: a hand-edited JSON-adapter file whose names or keys a rewrite would
merge or drop opens read-only, and what it holds is counted, paged and noticed as it is
(docs/filters.md "Values")."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.errors import DbHandlesError

STAMP = (
    '"createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-01T00:00:00.000Z", "version": 1'
)


def _record(record_id: str, n: object) -> str:
    """Record ``record_id`` as hand-written JSON, its field ``n`` holding the literal ``n``."""
    return f'{{"id": "{record_id}", "n": {n}, {STAMP}}}'


def _file(tmp_path: Path, collections: str, top: str = "") -> Path:
    """``tmp_path/hand.json`` holding the hand-written ``collections`` object body, after ``top``
    (top-level members, each with its comma) given first, so a later key of the same name wins."""
    path = tmp_path / "hand.json"
    path.write_text(
        f'{{{top}"format": "dbhandles-json", "version": 1, "collections": {{{collections}}}}}\n'
    )
    return path


def _open(service: Service, path: Path) -> str:
    opened = service.execute("data/open", {"adapter": "json", "config": {"path": str(path)}})
    return str(opened["dbHandle"])


def _refused(service: Service, params: dict[str, Any], command: str = "data/create") -> str:
    with pytest.raises(DbHandlesError) as caught:
        service.execute(command, params)
    assert caught.value.code == "read_only", caught.value.message
    return caught.value.message


def _n(service: Service, db: str) -> object:
    """Field ``n`` of record "a" of collection "c"."""
    return service.execute("data/read", {"dbHandle": db, "collection": "c", "id": "a"})["data"]["n"]


def _ids(service: Service, db: str, collection: str) -> list[str]:
    listed = service.execute("data/list", {"dbHandle": db, "collection": collection})
    return sorted(r["id"] for r in listed["items"])


def test_collections_differing_only_in_case_are_read_only_and_merge_nothing(
    service: Service, tmp_path: Path
) -> None:
    path = _file(
        tmp_path,
        f'"C": [{_record("a", 1)}, {_record("x", 3)}], "c": [{_record("a", 2)}]',
    )
    before = path.read_bytes()
    db = _open(service, path)
    for spelling in ("c", "C"):
        listed = service.execute("data/list", {"dbHandle": db, "collection": spelling})
        # No record served merged: counts equal listings, and all three are counted left out.
        assert listed["items"] == [] and listed["count"] == 0 and listed["unreadable"] == 3
        with pytest.raises(DbHandlesError) as caught:
            service.execute("data/read", {"dbHandle": db, "collection": spelling, "id": "a"})
        assert caught.value.code == "query_failed" and "differ only in case" in caught.value.message
    message = _refused(service, {"dbHandle": db, "collection": "c", "data": {"n": 9}})
    assert '"C" and "c"' in message and "differ only in case" in message
    _refused(service, {"dbHandle": db, "collection": "other", "data": {"n": 9}})
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "top",
    ['"version": 2, ', '"format": "x", ', '"collections": {}, '],
    ids=["version", "format", "collections"],
)
def test_any_top_level_key_given_twice_is_refused(
    service: Service, tmp_path: Path, top: str
) -> None:
    """``"version": 2, "version": 1`` read as its last value once opened writable and was
    rewritten with one of the two; any top-level key so, not only ``collections``. Now refused on
    open, naming the key (tests/test_jsonfile_duplicate_keys.py)."""
    path = _file(tmp_path, f'"c": [{_record("b", 1)}]', top)
    before = path.read_bytes()
    with pytest.raises(DbHandlesError) as caught:
        _open(service, path)
    key = top.split('"')[1]
    assert caught.value.code == "not_a_database"
    assert f'top level gives the key "{key}" twice' in caught.value.message, caught.value.message
    assert path.read_bytes() == before


def test_a_collection_given_twice_in_one_spelling_is_refused(
    service: Service, tmp_path: Path
) -> None:
    path = _file(tmp_path, f'"c": [{_record("a", 1)}], "c": [{_record("b", 1)}]')
    with pytest.raises(DbHandlesError) as caught:
        _open(service, path)
    assert caught.value.code == "not_a_database" and 'key "c" twice' in caught.value.message


@pytest.mark.parametrize(("copies", "others"), [(3, 1), (2, 0)])
def test_unreadable_counts_records_not_ids(
    service: Service, tmp_path: Path, copies: int, others: int
) -> None:
    records = [_record("a", k) for k in range(copies)]
    records += [_record(f"b{k}", 1) for k in range(others)]
    db = _open(service, _file(tmp_path, f'"c": [{", ".join(records)}]'))
    listed = service.execute("data/list", {"dbHandle": db, "collection": "c"})
    assert listed["unreadable"] == copies and listed["count"] == others == len(listed["items"])
    schema = service.execute("data/schema", {"dbHandle": db, "collection": "c"})
    assert schema["unreadable"] == copies


def test_an_edit_in_place_with_the_mtime_set_back_is_noticed(
    service: Service, tmp_path: Path
) -> None:
    """The same length, the same inode, the mtime reset by ``os.utime``: the ctime still moves,
    so the handle reads the edit before writing, never its stale copy over it."""
    path = _file(tmp_path, f'"c": [{_record("a", 1)}]')
    db = _open(service, path)
    assert _n(service, db) == 1
    info = os.stat(path)
    text = path.read_bytes()
    with open(path, "r+b") as file:  # in place: the inode stays
        file.write(text.replace(b'"n": 1', b'"n": 7'))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        info.st_ino,
        info.st_size,
        info.st_mtime_ns,
    )
    if after.st_ctime_ns == info.st_ctime_ns:  # pragma: no cover - a clock too coarse to tell
        pytest.skip("the file system's ctime did not move within its clock's resolution")
    service.execute("data/create", {"dbHandle": db, "collection": "c", "id": "z", "data": {}})
    assert _n(service, db) == 7
    assert b'"n":7' in path.read_bytes()


@pytest.mark.parametrize("name", ["c d", "", "x\\u0001", "1c", "_dbh_x"])
def test_a_collection_name_dbhandles_cannot_address_is_not_a_database(
    service: Service, tmp_path: Path, name: str
) -> None:
    path = _file(tmp_path, f'"{name}": [{_record("a", 1)}]')
    with pytest.raises(DbHandlesError) as caught:
        _open(service, path)
    assert caught.value.code == "not_a_database" and caught.value.field == "config.path"
    assert "cannot address" in caught.value.message and "collection" in caught.value.message


BIG = 2**64 - 1


@pytest.mark.parametrize("direction", ["asc", "desc"])
@pytest.mark.parametrize("limit", [1, 2, 3])
def test_pages_over_unsigned_64_bit_integers_of_a_writable_file_go_on(
    service: Service, tmp_path: Path, direction: str, limit: int
) -> None:
    """Integers in 2**63 .. 2**64 - 1 leave the file writable; a cursor cannot carry them (the
    cursor value rule), so the page names its last row instead and the next page goes on."""
    values = {"a": 1, "b": 2**63, "c": BIG - 1, "d": BIG}
    records = [_record(k, v) for k, v in values.items()]
    db = _open(service, _file(tmp_path, f'"c": [{", ".join(records)}]'))
    service.execute("data/create", {"dbHandle": db, "collection": "c", "id": "e", "data": {"n": 0}})
    values["e"] = 0
    base = {"dbHandle": db, "collection": "c", "limit": limit,
            "orderBy": [{"field": "n", "direction": direction}]}  # fmt: skip
    expected = sorted(values, key=values.__getitem__, reverse=direction == "desc")
    seen: list[Any] = []
    cursor = None
    for _ in range(len(values) + 1):
        page = service.execute("data/list", {**base, **({"cursor": cursor} if cursor else {})})
        seen += [(r["id"], r["n"]) for r in page["items"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert seen == [(k, values[k]) for k in expected]


def test_an_answer_holding_an_integer_past_64_bits_is_decoded_exactly(
    service: Service, tmp_path: Path
) -> None:
    """``jtag`` against a server and ``dbhandles.Client`` read the server's answer through
    ``wire.read_envelope`` (the WebSocket's messages through ``wire.decode_exact``): the integer
    the server sent is the integer they answer, not orjson's float."""
    from dbhandles import wire
    from tests.servers import app_client

    big = 2**70
    path = _file(tmp_path, f'"c": [{_record("a", big)}]')  # read-only, served exactly
    with app_client(service) as client:
        opened = client.post("/commands/data/open",
                             json={"adapter": "json", "config": {"path": str(path)}})  # fmt: skip
        where = {"dbHandle": opened.json()["dbHandle"], "collection": "c"}
        response = client.post("/commands/data/read", json={**where, "id": "a"})
    envelope = wire.read_envelope("http://test", response.status_code, response.content)
    assert envelope["data"]["n"] == big and type(envelope["data"]["n"]) is int
    body = (
        '{"success": true, "data": {"n": -9223372036854775809, "u": 18446744073709551615, '
        '"f": 0.1, "g": 1.2345678901234567890123, "s": "12345678901234567890123"}}'
    )
    for given in (body, body.encode()):
        decoded = wire.decode_exact(given)
        assert decoded["data"] == {"n": -(2**63) - 1, "u": 2**64 - 1, "f": 0.1,
                                   "g": 1.2345678901234567, "s": "12345678901234567890123"}  # fmt: skip
        assert type(decoded["data"]["n"]) is int
