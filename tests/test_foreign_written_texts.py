"""Issue #14, outside round 5: JSON text another tool wrote into SQLite (a collection's ``data``, a
foreign table's JSON TEXT column). Keys spelled with ``\\u`` escapes (``json.dumps`` writes every
non-ASCII key so) read as every filter, count, sort, facet and row filter judges them, on any SQLite
version; a row that is no JSON object dbhandles can read is named by ``data/read`` and left out of
every listing, count, facet, cursor, export and copy, never failing them (docs/filters.md "Values")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbhandles import Service
from dbhandles.evaluate import matches
from dbhandles.filters import RESERVED_FIELDS, parse_filter
from tests.foreign_rows import PLACES, open_sqlite, written_by_another_tool

#: Keys and values spelled with escapes, at the top, nested, and repeated under two spellings.
ESCAPED = [
    '{"\\u006e": 16, "label": "a"}',
    '{"\\u006e": 16, "n": 17, "label": "b"}',  # one key twice: the first spelling wins
    '{"label": "a", "\\u006cabel": "b", "n": 3}',
    '{"m": {"\\u006b": "x"}, "\\u006cabel": "secret", "n": 4}',
    '{"label": "\\u0073ecret", "n": 5, "tags": ["\\u0061"]}',
    json.dumps({"café": 1, "label": "thé", "n": 6}),  # ensure_ascii: "caf\u00e9", "th\u00e9"
    json.dumps({"label": "a", "n": 7, "messages": [{"r\u00f4le": 1, "role": "user"}]}),
]
FILTERS: list[dict[str, Any]] = [
    {"n": 16}, {"n": 17}, {"label": "a"}, {"label": "b"}, {"label": "secret"}, {"label": "thé"},
    {"m.k": "x"}, {"tags": "a"}, {"messages.role": "user"}, {"label": {"$ne": "secret"}},
    {"n": {"$exists": False}}, {"label": {"$regex": "^s"}}, {"n": {"$gte": 5}},
]  # fmt: skip


def _listed(service: Service, db: str, collection: str, **params: Any) -> list[Any]:
    return service.execute("data/list", {"dbHandle": db, "collection": collection,
                                         "orderBy": "id", **params})["items"]  # fmt: skip


def _check_filters(service: Service, db: str, collection: str, field: str) -> None:
    """Every filter lists, and counts, exactly the records whose read value it matches."""
    records = _listed(service, db, collection)
    for spec in FILTERS:
        spec = {f"{field}.{k}" if field else k: v for k, v in spec.items()}
        expected = [r["id"] for r in records if matches(parse_filter(spec), r)]
        assert [r["id"] for r in _listed(service, db, collection, filter=spec)] == expected, spec
        counted = service.execute("data/count", {"dbHandle": db, "collection": collection,
                                                 "filter": spec})["total"]  # fmt: skip
        assert counted == len(expected), spec
    label = f"{field}.label" if field else "label"
    groups = service.execute("data/count", {"dbHandle": db, "collection": collection,
                                            "groupBy": [label]})["groups"]  # fmt: skip
    shown: dict[Any, int] = {}
    for record in records:
        value = (record[field] if field else record).get("label")
        shown[value] = shown.get(value, 0) + 1
    assert {g["key"][label]: g["count"] for g in groups} == shown
    by_label = _listed(service, db, collection, orderBy=[label, "id"])
    assert [(r[field] if field else r).get("label") for r in by_label] == sorted(
        ((r[field] if field else r).get("label") for r in records),
        key=lambda v: (v is not None, v or ""),
    )


@pytest.mark.parametrize("where", PLACES)
def test_keys_spelled_with_escapes_read_as_every_filter_judges_them(
    service: Service, tmp_path: Path, where: str
) -> None:
    db, collection, field = written_by_another_tool(service, tmp_path / "d.sqlite", where, ESCAPED)
    first = service.execute("data/read", {"dbHandle": db, "collection": collection,
                                          "id": "r0" if field == "" else 1})["data"]  # fmt: skip
    # Decoded; in a foreign column, the first of the two spellings of one key.
    assert (first[field] if field else first)["n"] == 16
    if not field:  # a collection's row repeating a key (two spellings) cannot be read in full
        for record_id in ("r1", "r2"):
            envelope = service.dispatch("data/read", {"dbHandle": db, "collection": collection,
                                                      "id": record_id})  # fmt: skip
            assert envelope["code"] == "query_failed" and "repeats a key" in envelope["error"]
    _check_filters(service, db, collection, field)


def test_a_row_filter_never_shows_a_value_spelled_with_escapes_it_refused(
    service: Service, tmp_path: Path
) -> None:
    """The issue's case: ``{"\\u006cabel": "secret"}`` reads ``label: "secret"``, so a handle
    restricted to ``label != "secret"`` neither lists nor reads it."""
    path = tmp_path / "d.sqlite"
    written_by_another_tool(service, path, "collection", ESCAPED)
    public = open_sqlite(service, {"path": str(path)}, rowFilter={"label": {"$ne": "secret"}})
    shown = _listed(service, public, "c")
    assert all(r.get("label") != "secret" for r in shown)
    # r1 and r2 repeat a key under two spellings: unreadable, so hidden like the secret one.
    assert {r["id"] for r in shown} == {"r0", "r5", "r6"}
    for i in range(len(ESCAPED)):
        found = service.execute("data/read", {"dbHandle": public, "collection": "c",
                                              "id": f"r{i}"})  # fmt: skip
        assert found["found"] is (f"r{i}" in {r["id"] for r in shown})
    counted = service.execute("data/count", {"dbHandle": public, "collection": "c"})["total"]
    assert counted == len(shown)


# -- the row-filter property, over texts written by json.dumps and with random escapes --------------

KEYS = st.sampled_from(["a", "b", "é", "ab"])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from(["x", "é", "ü", "x\u00e9"])
)
RECORDS = st.dictionaries(
    KEYS, st.one_of(SCALARS, st.dictionaries(KEYS, SCALARS, max_size=2)), max_size=4
)


def _spell_string(text: str, ascii_only: bool, bits: list[bool]) -> str:
    """``text`` as a JSON string as ``json.dumps`` writes it (``ascii_only``: non-ASCII as
    ``\\uXXXX``), with letters spelled ``\\uXXXX`` (upper or lower hex) where ``bits`` says so."""
    out: list[str] = []
    for i, ch in enumerate(text):
        if ch.isalpha() and bits[i % len(bits)]:
            out.append(f"\\u{ord(ch):04x}" if i % 2 else f"\\u{ord(ch):04X}")
        else:
            out.append(json.dumps(ch, ensure_ascii=ascii_only)[1:-1])
    return '"' + "".join(out) + '"'


def _spell(value: Any, ascii_only: bool, bits: list[bool]) -> str:
    if isinstance(value, dict):
        inner = ", ".join(f"{_spell(k, ascii_only, bits)}: {_spell(v, ascii_only, bits)}"
                          for k, v in value.items())  # fmt: skip
        return "{" + inner + "}"
    if isinstance(value, str):
        return _spell_string(value, ascii_only, bits)
    return json.dumps(value)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    records=st.lists(RECORDS, min_size=1, max_size=5),
    ascii_only=st.booleans(),
    bits=st.lists(st.booleans(), min_size=1, max_size=5),
    field=st.sampled_from(["a", "b", "ab"]),
    value=SCALARS,
    op=st.sampled_from(["$eq", "$ne", "$exists"]),
)
def test_a_row_filter_read_list_and_count_agree_on_any_spelling(
    service: Service, tmp_path_factory: pytest.TempPathFactory, records: list[dict[str, Any]],
    ascii_only: bool, bits: list[bool], field: str, value: Any, op: str,
) -> None:  # fmt: skip
    path = tmp_path_factory.mktemp("spell") / "d.sqlite"
    texts = [_spell(r, ascii_only, bits) for r in records]
    written_by_another_tool(service, path, "collection", texts)
    spec = {field: {op: value if op != "$exists" else bool(value)}}
    handle = open_sqlite(service, {"path": str(path)}, rowFilter=spec)
    everything = open_sqlite(service, {"path": str(path)})
    node = parse_filter(spec)
    reads = [service.execute("data/read", {"dbHandle": everything, "collection": "c",
                                           "id": f"r{i}"})["data"] for i in range(len(texts))]  # fmt: skip
    assert [{k: v for k, v in r.items() if k not in RESERVED_FIELDS} for r in reads] == [
        orjson.loads(orjson.dumps(r)) for r in records
    ]
    expected = [r["id"] for r in reads if matches(node, r)]
    assert [r["id"] for r in _listed(service, handle, "c")] == expected
    assert service.execute("data/count", {"dbHandle": handle, "collection": "c"})["total"] == len(
        expected
    )
    assert [r["id"] for r in _listed(service, everything, "c", filter=spec)] == expected
    for i in range(len(texts)):
        found = service.execute("data/read", {"dbHandle": handle, "collection": "c", "id": f"r{i}"})
        assert found["found"] is (f"r{i}" in expected)
    for db in (handle, everything):
        service.execute("data/close", {"dbHandle": db})


# -- rows that are no JSON object dbhandles can read -------------------------------------------------

UNREADABLE = ["{n:1}", '{"n":Infinity}', '{"n":1e400}', '{"t":"\\ud800"}', "garbage", "[1,2]", "3",
              '"s"', "null", '{"n": 1,}']  # fmt: skip
GOOD = ['{"n": 1, "label": "a"}', '{"n": 2, "label": "b", "tags": ["x"]}']


def test_an_unreadable_row_is_named_by_a_read_and_left_out_of_every_other_door(
    service: Service, tmp_path: Path
) -> None:
    texts = [GOOD[0], *UNREADABLE, GOOD[1]]
    good = {"r0", f"r{len(texts) - 1}"}
    db, _, _ = written_by_another_tool(service, tmp_path / "d.sqlite", "collection", texts)
    for i, text in enumerate(texts):
        envelope = service.dispatch("data/read", {"dbHandle": db, "collection": "c", "id": f"r{i}"})
        if f"r{i}" in good:
            assert envelope["success"], text
            continue
        assert envelope["code"] == "query_failed", text
        assert f'record "r{i}" of collection "c"' in envelope["error"], text
        assert "Traceback" not in envelope["error"]
    ids = lambda items: {r["id"] for r in items}  # noqa: E731
    assert ids(_listed(service, db, "c")) == good
    assert ids(_listed(service, db, "c", filter={"n": {"$gte": 1}})) == good
    assert ids(_listed(service, db, "c", filter={"n": {"$exists": False}})) == set()
    assert ids(_listed(service, db, "c", filter={"label": {"$ne": "zz"}})) == good
    assert ids(_listed(service, db, "c", orderBy=["n", "id"])) == good
    assert _listed(service, db, "c", fields=["n"]) == [{"id": "r0", "n": 1},
                                                         {"id": f"r{len(texts) - 1}", "n": 2}]  # fmt: skip
    for spec in ({"n": {"$gte": 1}}, {"label": {"$ne": "zz"}}, {"tags": "x"}):
        counted = service.execute("data/count", {"dbHandle": db, "collection": "c", "filter": spec})
        assert counted["total"] == len(
            [1 for g in GOOD if matches(parse_filter(spec), orjson.loads(g))]
        )
    groups = service.execute("data/count", {"dbHandle": db, "collection": "c",
                                            "groupBy": ["label"]})["groups"]  # fmt: skip
    assert {g["key"]["label"]: g["count"] for g in groups} == {"a": 1, "b": 1}
    cursor = service.execute("data/query-open", {"dbHandle": db, "collection": "c",
                                                 "filter": {"n": {"$gte": 0}}, "pageSize": 2})  # fmt: skip
    seen: list[Any] = []
    while True:
        page = service.execute("data/query-next", {"queryHandle": cursor["queryHandle"]})
        seen += page["items"]
        if not page.get("hasMore"):
            break
    assert ids(seen) == good
    out = tmp_path / "out.jsonl"
    exported = service.execute("data/export", {"dbHandle": db, "collection": "c",
                                               "output": str(out), "filter": {"n": {"$gte": 0}}})  # fmt: skip
    assert exported["exported"] == 2 and len(out.read_bytes().splitlines()) == 2
    target = open_sqlite(service, {"path": str(tmp_path / "t.sqlite"), "mode": "create"})
    service.execute("data/copy", {"from": {"dbHandle": db, "collection": "c",
                                           "filter": {"n": {"$gte": 0}}},
                                  "to": {"dbHandle": target, "collection": "c"}})  # fmt: skip
    assert ids(_listed(service, target, "c")) == good


def test_an_unreadable_foreign_json_text_is_a_string_for_filters_and_reads(
    service: Service, tmp_path: Path
) -> None:
    """In a foreign table's TEXT column, text that is no JSON dbhandles can read is a string, for
    the filters as for a read (a lone surrogate or a bad number is no JSON to ``loads``)."""
    texts = [GOOD[0], "{n:1}", '{"t":"\\ud800"}', '{"\\u006e": 3}', "[1,2]"]
    db, _, _ = written_by_another_tool(service, tmp_path / "f.sqlite", "foreign column", texts)
    rows = _listed(service, db, "f")
    assert [r["doc"] for r in rows] == [{"n": 1, "label": "a"}, "{n:1}", '{"t":"\\ud800"}',
                                        {"n": 3}, [1, 2]]  # fmt: skip
    for spec, expected in (({"doc.t": {"$exists": True}}, []),
                           ({"doc.n": 3}, [3]), ({"doc": "{n:1}"}, [1])):  # fmt: skip
        assert [r["id"] for r in _listed(service, db, "f", filter=spec)] == expected, spec
