"""Exact values on import (issue 14, part 2): the rule of ``dbhandles.values`` on every adapter, a bad
value sets aside its own line only (``onError=skip``), a duplicated key is stored as the object
orjson reads (the last one wins), and a file that is not UTF-8 is refused. The importer's fast check
decides every line as the exact check does, and a numeric id is the same id through every door."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbhandles import DbHandlesError, Service
from dbhandles.errors import InvalidParams
from dbhandles.importer.ids import content_id
from dbhandles.importer.parse import Rejected, parse_chunk
from dbhandles.values import MAX_DEPTH, canonical, check_value
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


# -- the fast check against the exact one ----------------------------------------------------------

#: Number texts around every edge of the rule: the bound, past 64 bits (orjson reads those as
#: floats), negative zero in each spelling, exponents, and plain ones.
_NUMBER_TEXTS = st.one_of(
    st.integers(-(2**66), 2**66).map(str),
    st.sampled_from([2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) + 1, -(2**63),
                     -(2**63) - 1, -(2**64) - 1]).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(json.dumps),
    st.sampled_from(["-0.0", "-0", "0.0", "0", "-0e0", "-0.0e+5", "0E-3", "1e16", "1E16", "9.2e18",
                     "9.3e18", "-9.3e18", "9223372036854775807.0", "1e-7", "1.5e300", "2.5"]),
)  # fmt: skip
#: String texts with U+0000 (escaped, as JSON must), a backslash before "u0000" (no NUL), other
#: escapes and text orjson writes differently (``\u00e9``, ``\/``).
_STRING_TEXTS = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=5).map(json.dumps),
    st.sampled_from(['"a\\u0000b"', '"\\\\u0000"', '"\\u00e9"', '"\\/"', '"e+1"', '"-0.0"', '""']),
)
_SCALAR_TEXTS = st.one_of(_NUMBER_TEXTS, _STRING_TEXTS, st.sampled_from(["null", "true", "false"]))
_KEY_TEXTS = st.one_of(st.sampled_from(['"a"', '"b"', '"id"', '"k\\u0000"']), _STRING_TEXTS)
_SPACE = st.sampled_from(["", "", "", " "])


def _object_text(pairs: list[tuple[str, str]], space: str) -> str:
    # Keys may repeat: a duplicated key is part of what is checked.
    return "{" + f",{space}".join(f"{k}:{space}{v}" for k, v in pairs) + "}"


_VALUE_TEXTS = st.recursive(
    _SCALAR_TEXTS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda items: "[" + ",".join(items) + "]"),
        st.builds(_object_text, st.lists(st.tuples(_KEY_TEXTS, inner), max_size=3), _SPACE),
    ),
    max_leaves=8,
)
#: Nesting around ``MAX_DEPTH``: a value wrapped in that many arrays (empty or not at the bottom).
_DEEP_TEXTS = st.builds(
    lambda depth, leaf: "[" * depth + leaf + "]" * depth,
    st.integers(MAX_DEPTH - 2, MAX_DEPTH + 2),
    st.sampled_from(["", "1", "{}", '{"a":1}', "[]"]),
)
#: Lines of ordinary values with one edge value put in (alone, so nothing else decides the line),
#: and lines of anything.
_PLAIN_TEXTS = st.one_of(
    st.integers(-1000, 1000).map(str), st.sampled_from(['"text"', "1.5", "null", "[]"])
)
_EDGE_LINES = st.builds(
    lambda before, edge, path: _object_text([*before, ('"x"', path.replace("*", edge))], ""),
    st.lists(st.tuples(st.sampled_from(['"a"', '"b"']), _PLAIN_TEXTS), max_size=2),
    st.one_of(_NUMBER_TEXTS, _STRING_TEXTS, _DEEP_TEXTS),
    st.sampled_from(["*", "[*]", '{"y":*}', '[1,{"y":[*]}]']),
)
_LINE_TEXTS = st.one_of(
    _EDGE_LINES,
    st.builds(
        _object_text,
        st.lists(st.tuples(_KEY_TEXTS, st.one_of(_VALUE_TEXTS, _DEEP_TEXTS)), max_size=4),
        _SPACE,
    ),
)


def _decision(check: Any) -> tuple[str, Any]:
    """``("stored", text)`` or ``("refused", message)``."""
    try:
        return ("stored", check())
    except InvalidParams as exc:
        return ("refused", exc.message)


def _exact(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(check_value(obj, ""))


_PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_PROPERTY
@given(line=_LINE_TEXTS)
def test_the_fast_check_decides_every_line_as_the_exact_check(line: str) -> None:
    """For any JSON text line, ``values.canonical`` (the importer's single pass) refuses exactly what
    ``check_value`` refuses, with its message, and stores the same text; and that decision on the
    object orjson reads is the one on the exact numbers of the text (Python's json keeps an integer
    past 64 bits whole, where orjson reads a float)."""
    obj = orjson.loads(line)
    fast = _decision(lambda: canonical(obj, "")[1])
    assert fast == _decision(lambda: _exact(obj))
    exact_numbers = json.loads(line)
    assert (fast[0] == "refused") == (_decision(lambda: _exact(exact_numbers))[0] == "refused")
    if fast[0] == "stored":
        assert fast[1] == _exact(exact_numbers)


@_PROPERTY
@given(lines=st.lists(_LINE_TEXTS, min_size=1, max_size=4))
def test_parse_chunk_stores_what_the_exact_check_stores(lines: list[str]) -> None:
    """Each line parses to the item the exact check gives: its own text when that is the stored
    text (the fast path), else the stored text; or the reason it is refused."""
    raw = [line.encode() + b"\n" for line in lines]
    items = parse_chunk(raw, None).items
    for line, item in zip(raw, items, strict=True):
        decision, text = _decision(lambda line=line: _exact(orjson.loads(line)))
        if decision == "refused":
            assert item == Rejected(text)
            continue
        stored = orjson.loads(text)
        if "id" in stored:
            continue  # a reserved key: its id rule is tested below
        record_id = content_id(stored)
        if line == text + b"\n":
            assert item == record_id
        else:
            assert item == (record_id, text.decode(), None, None, 1)


# -- one id rule on every door ---------------------------------------------------------------------

#: An ``id`` as a line (and ``data/create``) gives it, and the id it is stored under; ``None``: refused.
_IDS: list[tuple[str, str | None]] = [
    ('"a"', "a"),
    ("7", "7"),
    ("-7", "-7"),
    ("3.0", "3"),
    ("2.5", "2.5"),
    ("1e-7", "1e-7"),
    ("9223372036854775807", "9223372036854775807"),
    ("-9223372036854775807", "-9223372036854775807"),
    ("9223372036854775808", None),
    ("-9223372036854775808", None),
    ("1e19", None),
    ('""', None),
    ("true", None),
    ('"' + "x" * 513 + '"', None),
]


@pytest.mark.parametrize(("given", "stored"), _IDS, ids=[given[:12] for given, _ in _IDS])
def test_a_numeric_id_is_the_same_id_on_import_and_create(
    service: Service, tmp_path: Path, given: str, stored: str | None
) -> None:
    handle = service.execute(
        "data/open", {"adapter": "sqlite", "config": adapter_config("sqlite", tmp_path)}
    )["dbHandle"]
    source = tmp_path / "ids.jsonl"
    source.write_text(f'{{"id":{given},"v":1}}\n')
    imported = service.execute(
        "data/import",
        {"dbHandle": handle, "input": str(source), "collection": "imported", "onError": "skip",
         "rejects": str(tmp_path / "rejects.jsonl")},
    )  # fmt: skip
    params = {"dbHandle": handle, "collection": "created", "id": json.loads(given),
              "data": {"v": 1}}  # fmt: skip
    if stored is None:
        assert imported["failed"] == 1
        with pytest.raises(InvalidParams) as caught:
            service.execute("data/create", params)
        assert caught.value.field == "id"
        return
    assert imported["imported"] == 1
    created = service.execute("data/create", params)
    assert created["id"] == stored
    for collection in ("imported", "created"):
        listed = service.execute("data/list", {"dbHandle": handle, "collection": collection})
        assert [item["id"] for item in listed["items"]] == [stored], collection


@pytest.mark.parametrize(
    ("value", "stored"),
    [('"h1"', "h1"), ("42", "42"), ("4.0", "4"), ("0.5", "0.5"), ("1e-7", "1e-7")],
)
def test_an_id_field_takes_the_same_ids(
    service: Service, tmp_path: Path, value: str, stored: str
) -> None:
    source = tmp_path / "nested.jsonl"
    source.write_text(f'{{"meta":{{"key":{value}}},"id":{value}}}\n{{"meta":{{"key":true}}}}\n')
    output = tmp_path / "nested.sqlite"
    result = service.execute(
        "data/import",
        {"output": str(output), "input": str(source), "collection": "c", "idField": "meta.key",
         "onError": "skip", "rejects": str(tmp_path / "rejects.jsonl")},
    )  # fmt: skip
    assert (result["imported"], result["failed"]) == (1, 1)
    opened = service.execute("data/open", {"adapter": "sqlite", "config": {"path": str(output)}})
    listed = service.execute("data/list", {"dbHandle": opened["dbHandle"], "collection": "c"})
    assert [item["id"] for item in listed["items"]] == [stored]
