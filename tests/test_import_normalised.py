"""Import ids of the record as stored (issue 14): the content hash sees the normalised record, so a
timestamp written another way or a ``null`` reserved key gives the same id; ``null`` in a reserved
key is the key left out; an id field through an array says so; an aborted import counts its lines."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from dbhandles import Service
from dbhandles.adapters.memory import MemoryAdapter
from dbhandles.errors import InvalidParams
from dbhandles.importer.ids import content_id
from dbhandles.importer.parse import parse_chunk
from dbhandles.importer.run import ImportOptions, run_import
from dbhandles.importer.stats import ImportStats


def _ids(lines: list[str]) -> list[object]:
    items = parse_chunk([(line + "\n").encode() for line in lines], None).items
    return [item if isinstance(item, str) else getattr(item, "reason", None) or item[0]
            for item in items]  # fmt: skip


@pytest.mark.parametrize(
    "same",
    [
        ['{"updatedAt":"2020-01-01T00:00:00+00:00","h":1}',
         '{"updatedAt":"2020-01-01T00:00:00.000Z","h":1}',
         '{"h":1,"updatedAt":"2020-01-01T02:00:00+02:00"}',
         '{"h":1,"createdAt":"2020-01-01T00:00:00Z","updatedAt":"2020-01-01T00:00:00.000Z"}',
         '{"createdAt":"2020-01-01T00:00:00.000Z","h":1}'],
        ['{"h":1}', '{"h":1,"createdAt":null}', '{"h":1,"version":null}', '{"h":1,"id":null}',
         '{"h":1,"updatedAt":null,"createdAt":null,"version":null}', '{"h":1,"version":1}',
         '{ "h" : 1 }'],
        ['{"h":1,"version":3}', '{"version":3,"h":1,"createdAt":null}'],
    ],
)  # fmt: skip
def test_the_same_record_gets_the_same_id_however_written(same: list[str]) -> None:
    ids = _ids(same)
    assert len(set(ids)) == 1, ids


def test_records_that_differ_get_different_ids() -> None:
    ids = _ids(['{"h":1}', '{"h":1,"version":2}', '{"h":1,"createdAt":"2020-01-01T00:00:00Z"}',
                '{"h":1,"createdAt":"2020-01-01T00:00:00Z","updatedAt":"2021-01-01T00:00:00Z"}',
                '{"h":2}'])  # fmt: skip
    assert len(set(ids)) == 5


def test_a_line_without_reserved_keys_keeps_its_documented_hash() -> None:
    assert _ids(['{"b":[1,2],"a":"x"}']) == [content_id({"a": "x", "b": [1, 2]})]


def test_null_reserved_fields_are_missing(service: Service, tmp_path: Path) -> None:
    source = tmp_path / "nulls.jsonl"
    lines = [{"id": "n", "createdAt": None, "updatedAt": None, "version": None, "x": 1},
             {"id": "u", "createdAt": None, "updatedAt": "2020-01-01T00:00:00Z"}]  # fmt: skip
    source.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    handle = service.execute("data/open", {"adapter": "memory", "config": {}})["dbHandle"]
    result = service.execute(
        "data/import", {"dbHandle": handle, "input": str(source), "collection": "c"}
    )
    assert (result["imported"], result["failed"]) == (2, 0)
    n = service.execute("data/read", {"dbHandle": handle, "collection": "c", "id": "n"})["data"]
    assert n["version"] == 1 and n["createdAt"] == n["updatedAt"] and n["x"] == 1
    u = service.execute("data/read", {"dbHandle": handle, "collection": "c", "id": "u"})["data"]
    assert u["createdAt"] == u["updatedAt"] == "2020-01-01T00:00:00.000Z"


def test_an_id_field_through_an_array_says_so() -> None:
    lines = [b'{"messages":[{"content":"a"}]}\n', b'{"messages":{"content":"b"}}\n',
             b'{"other":1}\n']  # fmt: skip
    items = parse_chunk(lines, "messages.content").items
    assert '"messages" is an array' in items[0].reason  # type: ignore[union-attr]
    assert "through objects only" in items[0].reason  # type: ignore[union-attr]
    assert items[1] == "b"
    assert items[2].reason == 'missing id field "messages.content"'  # type: ignore[union-attr]


def test_an_aborted_import_counts_the_lines_it_read(tmp_path: Path) -> None:
    source = tmp_path / "abort.jsonl"
    source.write_bytes(b'{"id":"a","x":1}\n{"id":"b","version":"two"}\n{"id":"c"}\n')
    adapter = MemoryAdapter(MemoryAdapter.prepare(MemoryAdapter.parse_config({})))
    stats = ImportStats()
    try:
        with pytest.raises(InvalidParams, match="line 2"):
            run_import(adapter, ImportOptions(input=source, collection="c", parser="inline"),
                       stats=stats)  # fmt: skip
    finally:
        adapter.close()
    assert stats.lines == 2
