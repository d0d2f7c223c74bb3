"""Issue 12: a JSON database is known by its content whatever its size. Past the 64 MiB the
recognizer parses, the head decides what it can, and a file that could be a JSON database but is
too big to tell is taken for one: an export or an import's rejects file never writes over it
(docs/security.md, "A database is never a data file"). The files are made cheaply in tmp: runs
of whitespace, and a sparse tail where only a non-database matters."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dbhandles import Service
from dbhandles.adapters.jsonfile import JsonFileAdapter
from tests.security_helpers import ALICE, refused, space, two_tenants

LIMIT = JsonFileAdapter.recognize_bytes
DATABASE = b'{"format":"dbhandles-json","collections":{"c":{}}}'
PAD = b" " * (LIMIT + 16)

#: Files past the limit that are (or could be) one JSON database: refused as outputs.
BIG_DATABASES = {
    "one line then whitespace": DATABASE + b"\n" + PAD,
    "one line holding whitespace": DATABASE[:27] + PAD + DATABASE[27:],
    "whitespace then one line": PAD + b"\n" + DATABASE,
    "whitespace only as far as read": b"\n" + PAD + DATABASE,
    "pretty": b'{\n  "format": "dbhandles-json",\n' + PAD + b'\n  "collections": {}\n}\n',
}
#: Files past the limit whose head proves they are no JSON database.
BIG_OTHERS = {
    "json lines": b'{"id": "1"}\n{"id": "2"}\n' + PAD,
    "json lines of databases": DATABASE + b"\n" + DATABASE + b"\n" + PAD,
    "another object then whitespace": b'{"format": "other"}\n' + PAD,
    "an array": b"[" + PAD + b"]",
}


@pytest.mark.parametrize("shape", sorted(BIG_DATABASES))
def test_a_big_file_that_could_be_a_json_database_is_recognized(shape: str) -> None:
    raw = BIG_DATABASES[shape][: LIMIT + 1]
    assert JsonFileAdapter.may_recognize(raw[:4096])
    assert JsonFileAdapter.recognizes_head(raw)


@pytest.mark.parametrize("shape", sorted(BIG_OTHERS))
def test_a_big_file_its_head_proves_no_database_is_not(shape: str) -> None:
    raw = BIG_OTHERS[shape][: LIMIT + 1]
    assert not (JsonFileAdapter.may_recognize(raw[:4096]) and JsonFileAdapter.recognizes_head(raw))


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with two_tenants(tmp_path) as svc:
        yield svc


def _source(service: Service) -> str:
    opened = service.execute(
        "data/open", {"config": {"path": "src.sqlite", "mode": "create"}}, context=ALICE
    )
    handle = str(opened["dbHandle"])
    service.execute("data/create", {"dbHandle": handle, "collection": "c", "id": "1",
                                    "data": {"n": 1}}, context=ALICE)  # fmt: skip
    return handle


@pytest.mark.parametrize("shape", ["one line then whitespace", "whitespace only as far as read"])
def test_an_export_never_writes_over_a_big_json_database(service: Service, shape: str) -> None:
    handle = _source(service)
    big = space(service, "alice") / "big.json"
    big.write_bytes(BIG_DATABASES[shape])
    size = big.stat().st_size
    for command, params in (
        ("data/export", {"dbHandle": handle, "collection": "c", "output": "big.json"}),
        ("data/import", {"input": "in.jsonl", "dbHandle": handle, "collection": "c",
                         "onError": "skip", "rejects": "big.json"}),
    ):  # fmt: skip
        (space(service, "alice") / "in.jsonl").write_text('{"id": "2"}\n')
        error = refused(service, command, params)
        assert error.code == "path_not_allowed", error.message
        assert "is a database file" in error.message
    assert big.stat().st_size == size
    with big.open("rb") as file:
        assert file.read(len(DATABASE)) == BIG_DATABASES[shape][: len(DATABASE)]


def test_an_export_still_replaces_a_big_json_lines_file(service: Service) -> None:
    handle = _source(service)
    big = space(service, "alice") / "big.jsonl"
    with big.open("wb") as file:
        file.write(b'{"id": "1"}\n{"id": "2"}\n')
        file.truncate(LIMIT + 16)  # sparse: NUL bytes, no whitespace
    service.execute("data/export", {"dbHandle": handle, "collection": "c",
                                    "output": "big.jsonl", "overwrite": True}, context=ALICE)  # fmt: skip
    assert big.stat().st_size < 1024
