"""The importer's parts on their own: ids, reserved fields, the chunk reader, parsing, progress, export."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbhandles.adapters.memory import MemoryAdapter, MemorySession
from dbhandles.errors import InvalidParams, StorageError
from dbhandles.importer import frames
from dbhandles.importer.export import ExportStats, run_export
from dbhandles.importer.ids import BadLine, content_id, id_function
from dbhandles.importer.interrupt import StopOnInterrupt
from dbhandles.importer.parse import Rejected, parse_chunk
from dbhandles.importer.progress import (
    LineProgress,
    NullProgress,
    TerminalBar,
    eta_seconds,
    make_progress,
)
from dbhandles.importer.reader import ChunkReader
from dbhandles.importer.rows import complete, timestamp
from dbhandles.importer.run import ImportOptions, run_import
from dbhandles.importer.stats import ImportStats

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)  # fmt: skip


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_content_id_ignores_key_order_and_formatting(obj: dict[str, Any]) -> None:
    reordered = dict(reversed(list(obj.items())))
    spaced = orjson.loads(orjson.dumps(obj, option=orjson.OPT_INDENT_2))
    assert content_id(obj) == content_id(reordered) == content_id(spaced)
    assert len(content_id(obj)) == 32


def test_content_id_differs_for_different_content() -> None:
    assert content_id({"a": 1}) != content_id({"a": 2}) != content_id({"a": "1"})


def test_id_function_rules() -> None:
    own = id_function(None)
    assert own({"id": "x", "a": 1}) == "x"
    assert own({"a": 1}) == content_id({"a": 1})
    assert own({"id": None, "a": 1}) == content_id({"id": None, "a": 1})
    # A number is an id as on every door (values.number_text).
    numbers = (3, 3.0, 2.5, 1e-7, -(2**63) + 1)
    assert [own({"id": n}) for n in numbers] == ["3", "3", "2.5", "1e-7", str(-(2**63) + 1)]
    for bad in (True, [1], {"a": 1}, 2**63, -(2**63), 1e19, ""):
        with pytest.raises(BadLine, match=r"^id: "):
            own({"id": bad})
    nested = id_function("metadata.git.hash")
    assert nested({"metadata": {"git": {"hash": "abc"}}}) == "abc"
    for obj in ({}, {"metadata": 5}, {"metadata": {"git": {}}}):
        with pytest.raises(BadLine, match=r'^missing id field "metadata\.git\.hash"$'):
            nested(obj)
    assert id_function("n")({"n": 12}) == "12"
    assert id_function("n")({"n": 12.5}) == "12.5"
    with pytest.raises(BadLine):
        id_function("n")({"n": True})
    with pytest.raises(InvalidParams) as info:
        id_function("a..b")
    assert info.value.code == "invalid_params" and info.value.field == "idField"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-01-02T03:04:05.678Z", "2025-01-02T03:04:05.678Z"),
        ("2025-01-02T03:04:05Z", "2025-01-02T03:04:05.000Z"),
        ("2025-01-02T05:04:05.1+02:00", "2025-01-02T03:04:05.100Z"),
        (None, None),
    ],
)
def test_reserved_timestamps_are_normalised_to_utc(value: str | None, expected: str | None) -> None:
    assert timestamp(value, "createdAt") == expected


@pytest.mark.parametrize("value", ["2025-01-02", "2025-01-02T03:04:05", "soon", 17, ["x"]])
def test_bad_reserved_timestamps_reject_the_line(value: object) -> None:
    with pytest.raises(BadLine, match="createdAt"):
        timestamp(value, "createdAt")


def test_parse_chunk_items() -> None:
    chunk = b'{"a":1}\n\n{"id":"k","createdAt":"2025-01-01T00:00:00Z","b":2}\nnope\n7\n{"c":2}\n'
    parsed = parse_chunk(chunk.splitlines(keepends=True), None)
    items = parsed.items
    assert not parsed.plain
    assert items[0] == content_id({"a": 1})
    assert items[1] is None
    assert items[2] == ("k", '{"b":2}', "2025-01-01T00:00:00.000Z", None, 1)
    assert isinstance(items[3], Rejected) and items[3].reason.startswith("invalid JSON")
    assert items[4] == Rejected("not a JSON object but a number; each line must be one object")
    assert items[5] == content_id({"c": 2})
    assert parse_chunk([b'{"a":1}\n', b'{"c":2}'], None).plain
    # A line that is not orjson's own text of its object is stored as that text (parse.py).
    spaced = parse_chunk([b'{"a":1}\n', b'{"c": 2, "c": 3}'], None)
    assert not spaced.plain
    assert spaced.items[1] == (content_id({"c": 3}), '{"c":3}', None, None, 1)


def test_missing_reserved_timestamps_are_completed_by_the_writer() -> None:
    assert complete(("k", "{}", None, None, 3), "NOW") == ("k", "{}", "NOW", "NOW", 3)
    assert complete(("k", "{}", None, "U", 1), "NOW") == ("k", "{}", "U", "U", 1)
    assert complete(("k", "{}", "C", None, 1), "NOW") == ("k", "{}", "C", "C", 1)


@pytest.mark.parametrize(
    "lines",
    [
        [b'{"a":1}\n', b'{"b":[1,2]}\n'],
        [b'{"a":1}\n', b"\n", b'{"id":"x","version":2}\n', b"[1]\n", b"{bad\n"],
        [b'{"id":"x","t":"a\\nb \\u00e9"}\n', b'{"id":"y","createdAt":"2025-01-01T00:00:00Z"}\n'],
        [],
    ],
)
def test_frames_round_trip(lines: list[bytes]) -> None:
    parsed = parse_chunk(lines, None)
    frame = frames.encode(parsed, lines)
    length, extra = frames.HEADER.unpack(frame[: frames.HEADER.size])
    assert length + extra == len(frame) - frames.HEADER.size
    body = frame[frames.HEADER.size : frames.HEADER.size + length]
    count, size, back = frames.decode(body, frame[frames.HEADER.size + length :])
    assert (count, size) == (len(lines), sum(map(len, lines)))
    assert back == parsed


def test_an_id_key_must_agree_with_the_id_field() -> None:
    items = parse_chunk([b'{"id":"a","k":"b"}\n', b'{"id":"b","k":"b"}\n'], "k").items
    assert isinstance(items[0], Rejected) and "differs from its id field" in items[0].reason
    assert items[1] == ("b", '{"k":"b"}', None, None, 1)


def test_reader_yields_numbered_chunks_of_whole_lines(tmp_path: Path) -> None:
    data = b'\xef\xbb\xbf{"a":1}\n\n' + b'{"long":"' + b"x" * 300 + b'"}\n' + b'{"b":2}\n{"c":3}'
    (tmp_path / "f.jsonl").write_bytes(data)
    (tmp_path / "f.jsonl.gz").write_bytes(gzip.compress(data))
    for name in ("f.jsonl", "f.jsonl.gz"):
        with ChunkReader(tmp_path / name, chunk_size=16) as reader:
            chunks = list(reader)
            assert reader.bytes_read == reader.total_bytes == (tmp_path / name).stat().st_size
            assert reader.compressed is name.endswith(".gz")
        lines = [line for _, chunk in chunks for line in chunk]
        assert b"".join(lines) == data[3:]
        assert len(lines) == 5 and all(line.endswith(b"\n") for line in lines[:-1])
        seen = 0
        for first, chunk in chunks:
            assert first == seen + 1
            seen += len(chunk)


def test_memory_stays_flat_chunks_are_bounded(tmp_path: Path) -> None:
    line = orjson.dumps({"pad": "y" * 1000}) + b"\n"
    (tmp_path / "big.jsonl").write_bytes(line * 5000)
    with ChunkReader(tmp_path / "big.jsonl", chunk_size=64 * 1024) as reader:
        # A chunk holds about chunk_size bytes (plus at most one line): bounded, whatever the file.
        assert max(sum(map(len, chunk)) for _, chunk in reader) <= 64 * 1024 + len(line)


def test_plain_progress_lines_and_terminal_bar() -> None:
    stats = ImportStats(total_bytes=1000, bytes_read=250, imported=40, skipped=10, lines=70)
    out = io.StringIO()
    lines = LineProgress(out, interval=0.0)
    lines.update(stats)
    text = out.getvalue()
    assert text.startswith(
        "import: 70 lines read, 50 committed (40 imported, 10 already present, 0 rejected)"
    )
    assert "25%" in text and "lines/s" in text and "ETA" in text
    bar_out = io.StringIO()
    bar = TerminalBar(bar_out, interval=0.0)
    bar.update(stats)
    bar.close(stats)
    rendered = bar_out.getvalue()
    assert rendered.startswith("\rimport [") and " 25%" in rendered and rendered.endswith("\n")
    assert "70 lines" in rendered and "50 committed" in rendered
    assert eta_seconds(ImportStats(total_bytes=10)) is None
    assert isinstance(make_progress("auto", io.StringIO()), LineProgress)
    assert isinstance(make_progress("bar", io.StringIO()), TerminalBar)


def test_run_import_on_an_adapter_directly(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_bytes(b'{"a":1}\n{"a":2}\n{"a":3}\n')
    adapter = MemoryAdapter(MemoryAdapter.parse_config({}))
    stats = run_import(
        adapter, ImportOptions(tmp_path / "in.jsonl", collection="things", batch_size=2)
    )
    assert (stats.imported, stats.batches, stats.committed_line) == (3, 2, 3)
    with adapter.session() as session:
        assert session.count("things", None) == 3


def test_a_failed_export_removes_its_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = MemoryAdapter(MemoryAdapter.parse_config({}))
    with adapter.session(write=True) as session:
        session.insert_many("t", [{"id": f"r{i}", "createdAt": "x", "updatedAt": "x", "version": 1}
                                  for i in range(10)])  # fmt: skip
    calls = []
    original = MemorySession.find

    def failing_find(self: MemorySession, *args: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise StorageError("disk on fire")
        return original(self, *args)

    monkeypatch.setattr(MemorySession, "find", failing_find)
    stats = ExportStats()
    with pytest.raises(StorageError):
        run_export(adapter, "t", tmp_path / "x.jsonl", page_size=4, stats=stats)
    assert stats.exported == 4
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_waits_for_the_next_chunk_and_a_second_one_stops_at_once() -> None:
    stopper = StopOnInterrupt(NullProgress())
    stats = ImportStats()
    stopper.update(stats)  # nothing asked: carries on
    stopper.on_signal(2, None)
    assert stopper.requested and not stopper.hard
    with pytest.raises(KeyboardInterrupt):
        stopper.update(stats)  # the next chunk boundary
    with pytest.raises(KeyboardInterrupt):
        stopper.on_signal(2, None)
    assert stopper.hard


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"batch_size": 0}, "batchSize"),
        ({"parser": "threads"}, "parser"),
        ({"id_field": "a..b"}, "idField"),
    ],
)
def test_run_import_checks_its_options_before_reading(
    tmp_path: Path, options: dict[str, Any], field: str
) -> None:
    (tmp_path / "in.jsonl").write_bytes(b'{"a":1}\n')
    adapter = MemoryAdapter(MemoryAdapter.parse_config({}))
    with pytest.raises(InvalidParams) as info:
        run_import(adapter, ImportOptions(tmp_path / "in.jsonl", **options))
    assert info.value.field == field
