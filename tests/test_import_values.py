"""Exact values on import (issue 14, part 2): the rule of ``dbhandles.values`` on every adapter, a bad
value sets aside its own line only (``onError=skip``), a duplicated key is stored as the object
orjson reads (the last one wins), and a file that is not UTF-8 is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import DbHandlesError, Service
from tests.conftest import ADAPTERS, adapter_config

#: Each line of the file, and the id it is stored under or (``None``) a word of why it is rejected.
_LINES: list[tuple[bytes, str | None, str]] = [
    (b'{"id": "dup", "label": "a", "label": "b"}', "dup", ""),
    (b'{"id":"nul","t":"a\\u0000b"}', None, "t: text contains U+0000"),
    (b'{"id":"key","x":{"k\\u0000":1}}', None, "x: key"),
    (b'{"id":"big","n":9223372036854775808}', None, "n: numbers must lie"),
    (b'{"id":"bigger","n":[1,18446744073709551616]}', None, "n[1]: numbers must lie"),
    (b'{"id":"huge","f":1e300}', None, "f: numbers must lie"),
    (b'{"id":"surrogate","t":"\\ud800"}', None, "surrogate"),
    (b'{"id":"bytes","t":"\xff\xfe"}', None, "UTF-8"),
    (b'{"id":"zero","z":-0.0,"spaced" :  [ 1 ,2 ]}', "zero", ""),
    (b'{"id":"plain","t":"a\\\\u0000 is not a NUL"}', "plain", ""),
    (b'{"id":"edge","n":9223372036854775807,"m":-9223372036854775807}', "edge", ""),
]


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "values.jsonl"
    path.write_bytes(b"\n".join(line for line, _, _ in _LINES) + b"\n")
    return path


def _read(service: Service, handle: str, record_id: str) -> dict[str, Any]:
    found = service.execute(
        "data/read", {"dbHandle": handle, "collection": "items", "id": record_id}
    )
    assert found["found"], record_id
    data: dict[str, Any] = found["data"]
    return data


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_bad_value_sets_aside_its_line_only(
    service: Service, tmp_path: Path, adapter: str, import_parser: str
) -> None:
    handle = service.execute("data/open", {"adapter": adapter,
                                           "config": adapter_config(adapter, tmp_path)})["dbHandle"]  # fmt: skip
    rejects = tmp_path / "rejects.jsonl"
    result = service.execute(
        "data/import",
        {"dbHandle": handle, "input": str(_file(tmp_path)), "collection": "items",
         "onError": "skip", "rejects": str(rejects)},
    )  # fmt: skip
    stored = [record_id for _, record_id, _ in _LINES if record_id is not None]
    assert (result["imported"], result["failed"]) == (len(stored), len(_LINES) - len(stored))
    rejected = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    expected = [(n, why) for n, (_, record_id, why) in enumerate(_LINES, 1) if record_id is None]
    assert [r["line"] for r in rejected] == [n for n, _ in expected]
    for record, (_, why) in zip(rejected, expected, strict=True):
        assert why in record["reason"], record
    for record_id in stored:
        _read(service, handle, record_id)
    assert _read(service, handle, "dup")["label"] == "b"
    zero = _read(service, handle, "zero")
    assert orjson.dumps([zero["z"], zero["spaced"]]) == b"[0.0,[1,2]]"
    assert _read(service, handle, "plain")["t"] == "a\\u0000 is not a NUL"
    edge = _read(service, handle, "edge")
    assert (edge["n"], edge["m"]) == (2**63 - 1, -(2**63) + 1)
    listed = service.execute(
        "data/list", {"dbHandle": handle, "collection": "items", "filter": {"label": "a"}}
    )
    assert listed["items"] == []  # the duplicated key's first value is nowhere to be seen


def test_a_row_filter_sees_the_last_of_duplicated_keys(
    service: Service, tmp_path: Path, import_parser: str
) -> None:
    """The issue's case: a handle restricted to ``label == "a"`` must not be shown a record whose
    label reads ``"b"`` (SQLite's JSON functions take the first of two equal keys)."""
    path = tmp_path / "labels.sqlite"
    source = tmp_path / "labels.jsonl"
    source.write_bytes(
        b'{"id":"x","label":"a","label":"b"}\n{"id":"y","label":"b","label":"a"}\n'
        b'{"id":"z","meta":{"label":"b","label":"a"}}\n'
    )
    service.execute("data/import", {"output": str(path), "input": str(source), "collection": "c"})
    restricted = service.execute(
        "data/open",
        {"adapter": "sqlite", "config": {"path": str(path)},
         "permissions": {"rowFilter": {"$or": [{"label": "a"}, {"meta.label": "a"}]}}},
    )["dbHandle"]  # fmt: skip
    listed = service.execute("data/list", {"dbHandle": restricted, "collection": "c"})
    assert [(i["id"], i.get("label", i.get("meta"))) for i in listed["items"]] == [
        ("y", "a"),
        ("z", {"label": "a"}),
    ]
    for record_id in ("x", "y", "z"):
        found = service.execute(
            "data/read", {"dbHandle": restricted, "collection": "c", "id": record_id}
        )
        assert found["found"] is (record_id != "x")


@pytest.mark.parametrize(
    ("encoding", "start", "name"),
    [("utf-16", "ff fe", "UTF-16"), ("utf-16-be", "00 7b", "UTF-16BE"),
     ("utf-32-le", "7b 00", "UTF-32LE"), ("utf-32", "ff fe 00 00", "UTF-32")],
)  # fmt: skip
def test_a_file_that_is_not_utf8_is_refused(
    service: Service, tmp_path: Path, encoding: str, start: str, name: str
) -> None:
    source = tmp_path / "wide.jsonl"
    source.write_bytes('{"a": 1}\n{"a": 2}\n'.encode(encoding))
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/import", {"output": str(tmp_path / "w.sqlite"), "input": str(source),
                                        "onError": "skip"})  # fmt: skip
    error = caught.value
    assert (error.code, error.field) == ("invalid_params", "input")
    assert f"the file is {name} (" in error.message and start in error.message
    assert f"iconv -f {name} -t UTF-8" in error.message


def test_a_utf8_byte_order_mark_is_dropped(service: Service, tmp_path: Path) -> None:
    source = tmp_path / "bom.jsonl"
    source.write_bytes(b'\xef\xbb\xbf{"id":"a","v":1}\n')
    result = service.execute(
        "data/import", {"output": str(tmp_path / "b.sqlite"), "input": str(source)}
    )
    assert result["imported"] == 1
