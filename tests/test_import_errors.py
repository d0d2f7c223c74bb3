"""Bad input: bad lines with onError abort and skip, blank lines, bad files, bad parameters."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import orjson
import pytest

from dbhandles import Service
from dbhandles.cli.jsonl import import_main
from dbhandles.errors import DbHandlesError, InvalidParams, NotFound, ReadOnly
from tests.test_import_common import run_cli, table_rows, write_jsonl

#: Every test here runs with lines parsed in the writer and in the parser process.
pytestmark = pytest.mark.usefixtures("import_parser")

GOOD = [{"n": i, "text": f"row {i}"} for i in range(10)]
#: Line numbers (1-based) -> bad content, placed among GOOD lines by ``mixed_file``.
BAD = {
    4: (b"{not json\n", "invalid JSON"),
    7: (b"[1, 2, 3]\n", "not a JSON object but an array"),
    9: (b'"just a string"\n', "not a JSON object but a string"),
}


def mixed_file(path: Path) -> Path:
    """GOOD rows with the BAD lines at their line numbers and a blank line at line 2."""
    lines: list[bytes] = []
    good = iter(GOOD)
    for number in range(1, 15):
        if number in BAD:
            lines.append(BAD[number][0])
        elif number == 2:
            lines.append(b"   \n")
        else:
            lines.append(orjson.dumps(next(good)) + b"\n")
    path.write_bytes(b"".join(lines))
    return path


def test_abort_stops_at_the_bad_line_and_keeps_the_committed_batches(
    service: Service, tmp_path: Path
) -> None:
    mixed_file(tmp_path / "in.jsonl")
    out = tmp_path / "o.sqlite"
    code, summary, _ = run_cli(import_main, [f"--input={tmp_path / 'in.jsonl'}", f"--output={out}",
                                             "--batch-size=2", "--quiet"], service)  # fmt: skip
    assert code == 1
    assert summary["success"] is False and summary["code"] == "invalid_params"
    message = summary["error"]
    assert message.startswith("line 4: invalid JSON")
    # Lines 1 and 3 made one full batch, committed before line 4; nothing after it was written.
    assert "exactly the 1 batch(es) committed before it" in message
    assert "nothing after line 3 was written" in message
    assert (summary["imported"], summary["failed"]) == (2, 1)
    assert len(table_rows(out)) == 2


def test_abort_before_any_commit_says_nothing_was_stored(service: Service, tmp_path: Path) -> None:
    mixed_file(tmp_path / "in.jsonl")
    with pytest.raises(InvalidParams, match=r"^line 4: .*this run stored nothing") as info:
        service.execute("data/import", {"input": str(tmp_path / "in.jsonl"),
                                        "output": str(tmp_path / "o.sqlite")})  # fmt: skip
    assert info.value.field == "input"


def test_skip_sets_bad_lines_aside_with_number_and_reason(service: Service, tmp_path: Path) -> None:
    mixed_file(tmp_path / "in.jsonl")
    rejects = tmp_path / "rejects.jsonl"
    code, summary, _ = run_cli(import_main, [f"--input={tmp_path / 'in.jsonl'}", "--on-error=skip",
                                             f"--output={tmp_path / 'o.sqlite'}", f"--rejects={rejects}",
                                             "--batch-size=3", "--quiet"], service)  # fmt: skip
    assert code == 0
    assert (summary["imported"], summary["skipped"], summary["failed"]) == (10, 0, 3)
    assert summary["rejects"] == str(rejects)
    entries = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    assert [e["line"] for e in entries] == sorted(BAD)
    for entry in entries:
        content, reason = BAD[entry["line"]]
        assert entry["reason"].startswith(reason)
        assert entry["text"] == content.decode().rstrip("\n")
    assert [e["line"] for e in summary["errors"]] == sorted(BAD)


def test_skip_defaults_the_rejects_file_beside_the_database(
    service: Service, tmp_path: Path
) -> None:
    mixed_file(tmp_path / "in.jsonl")
    out = tmp_path / "o.sqlite"
    result = service.execute("data/import", {"input": str(tmp_path / "in.jsonl"), "output": str(out),
                                             "onError": "skip"})  # fmt: skip
    assert result["rejects"] == f"{out.resolve()}.rejects.jsonl"
    assert len(Path(result["rejects"]).read_bytes().splitlines()) == 3


@pytest.mark.parametrize("on_error", ["abort", "skip"])
@pytest.mark.parametrize(
    ("rejects_name", "code"),
    [("nodir/r.jsonl", "invalid_params"), ("notes.txt", "file_exists")],
    ids=["missing folder", "not a rejects file"],
)
def test_a_rejects_path_is_refused_before_anything_is_created_whatever_on_error(
    service: Service, tmp_path: Path, on_error: str, rejects_name: str, code: str
) -> None:
    """docs/import.md: every path is decided before the output (and its handle) is created, and a
    rejects path abort never writes is refused as skip would refuse it."""
    work = tmp_path / "work"
    work.mkdir()
    write_jsonl(work / "in.jsonl", GOOD)
    notes = work / "notes.txt"
    notes.write_text("my notes\n")
    rejects = work / rejects_name
    handles = {e.handle for e in service.registry.list_handles()}
    for door in ("service", "jtag"):
        out = work / f"o_{door}.sqlite"
        params = {"input": str(work / "in.jsonl"), "output": str(out), "onError": on_error,
                  "rejects": str(rejects)}  # fmt: skip
        if door == "service":
            with pytest.raises(DbHandlesError) as info:
                service.execute("data/import", params)
            answer = (info.value.code, info.value.field, info.value.message)
        else:
            argv = [f"--{k.replace('onError', 'on-error')}={v}" for k, v in params.items()]
            exit_code, envelope, _ = run_cli(import_main, [*argv, "--quiet"], service)
            assert exit_code == 1
            answer = (envelope["code"], envelope["field"], envelope["error"])
        assert answer[:2] == (code, "rejects"), answer
        assert answer[2].startswith("rejects: "), answer
        assert sorted(p.name for p in work.iterdir()) == ["in.jsonl", "notes.txt"], door
        assert {e.handle for e in service.registry.list_handles()} == handles
    assert notes.read_text() == "my notes\n"


def test_missing_id_field_is_a_bad_line(service: Service, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [{"key": "a"}, {"other": 1}, {"key": [3]}, {"key": ""},
                                        {"key": 3.5}])  # fmt: skip
    result = service.execute("data/import", {"input": str(tmp_path / "in.jsonl"), "idField": "key",
                                             "output": str(tmp_path / "o.sqlite"), "onError": "skip"})  # fmt: skip
    # 3.5 is an id: a number, taken as its text as data/create takes it.
    assert (result["imported"], result["failed"]) == (2, 3)
    reasons = {e["line"]: e["reason"] for e in result["errors"]}
    assert reasons[2] == 'missing id field "key"'
    assert "must be a string or a number, got [3]" in reasons[3]
    assert "non-empty string" in reasons[4]
    with pytest.raises(InvalidParams, match=r'^line 2: missing id field "key"'):
        service.execute("data/import", {"input": str(tmp_path / "in.jsonl"), "idField": "key",
                                        "output": str(tmp_path / "p.sqlite")})  # fmt: skip


def test_reserved_fields_are_checked(service: Service, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [
        {"id": True, "x": 1},
        {"x": 2, "createdAt": "yesterday"},
        {"x": 3, "version": 0},
        {"x": 4, "createdAt": "2025-01-01T10:00:00"},
        {"id": "ok", "x": 5, "createdAt": "2025-01-01T10:00:00+02:00", "version": 3},
    ])  # fmt: skip
    result = service.execute("data/import", {"input": str(tmp_path / "in.jsonl"),
                                             "output": str(tmp_path / "o.sqlite"), "onError": "skip"})  # fmt: skip
    assert (result["imported"], result["failed"]) == (1, 4)
    reasons = [e["reason"] for e in result["errors"]]
    assert "an id must be a string" in reasons[0]
    assert "must be an RFC 3339 timestamp" in reasons[1]
    assert "integer from 1 to 2147483647" in reasons[2]
    assert "no timezone" in reasons[3]
    read = service.execute("data/read", {"dbHandle": result["dbHandle"], "collection": "training_examples",
                                         "id": "ok"})  # fmt: skip
    assert read["data"] == {"id": "ok", "x": 5, "createdAt": "2025-01-01T08:00:00.000Z",
                            "updatedAt": "2025-01-01T08:00:00.000Z", "version": 3}  # fmt: skip


def test_blank_lines_and_a_missing_final_newline_are_fine(service: Service, tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_bytes(b'\n\n{"a":1}\r\n\n  \t\n{"a":2}')
    result = service.execute("data/import", {"input": str(tmp_path / "in.jsonl"),
                                             "output": str(tmp_path / "o.sqlite")})  # fmt: skip
    assert (result["imported"], result["failed"], result["lines"]) == (2, 0, 6)


def test_missing_input_is_not_found(service: Service, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no such file") as info:
        service.execute("data/import", {"input": str(tmp_path / "nope.jsonl"),
                                        "output": str(tmp_path / "o.sqlite")})  # fmt: skip
    assert info.value.code == "not_found" and info.value.field == "input"


def test_a_directory_input_is_invalid(service: Service, tmp_path: Path) -> None:
    with pytest.raises(InvalidParams, match="is a directory"):
        service.execute(
            "data/import", {"input": str(tmp_path), "output": str(tmp_path / "o.sqlite")}
        )


def test_damaged_gzip_stops_with_a_clear_error(service: Service, tmp_path: Path) -> None:
    data = gzip.compress(
        b"".join(orjson.dumps({"n": i, "pad": "x" * 200}) + b"\n" for i in range(3000))
    )
    (tmp_path / "cut.jsonl.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidParams, match="damaged or truncated"):
        service.execute("data/import", {"input": str(tmp_path / "cut.jsonl.gz"),
                                        "output": str(tmp_path / "o.sqlite")})  # fmt: skip


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "output"),
        ({"output": "X", "dbHandle": "default"}, "output"),
        ({"output": "X", "batchSize": 0}, "batchSize"),
        ({"output": "X", "onError": "ignore"}, "onError"),
        ({"output": "X", "idField": "a..b"}, "idField"),
        ({"output": "X", "collection": "bad name"}, "collection"),
        ({"output": "X", "collectoin": "typo"}, "collectoin"),
    ],
)
def test_bad_parameters_are_invalid_params(
    service: Service, tmp_path: Path, params: dict[str, object], field: str
) -> None:
    write_jsonl(tmp_path / "in.jsonl", GOOD)
    if params.get("output") == "X":
        params = {**params, "output": str(tmp_path / "o.sqlite")}
    with pytest.raises(InvalidParams) as info:
        service.execute("data/import", {"input": str(tmp_path / "in.jsonl"), **params})
    assert info.value.field == field


def test_unknown_handle_fails_loud(service: Service, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", GOOD)
    with pytest.raises(DbHandlesError) as info:
        service.execute(
            "data/import", {"input": str(tmp_path / "in.jsonl"), "dbHandle": "no-such-handle"}
        )
    assert info.value.code == "handle_not_found"


def test_read_only_handle_refuses_before_reading(service: Service, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", GOOD)
    service.execute(
        "data/import", {"input": str(tmp_path / "in.jsonl"), "output": str(tmp_path / "o.sqlite")}
    )
    handle = service.execute("data/open", {"adapter": "sqlite", "config": {
        "path": str(tmp_path / "o.sqlite"), "mode": "readonly"}})["dbHandle"]  # fmt: skip
    with pytest.raises(ReadOnly):
        service.execute("data/import", {"input": str(tmp_path / "in.jsonl"), "dbHandle": handle})


def test_cli_errors_are_one_json_envelope_and_exit_1(service: Service, tmp_path: Path) -> None:
    code, envelope, stderr = run_cli(import_main, [f"--input={tmp_path / 'missing.jsonl'}",
                                                   f"--output={tmp_path / 'x.sqlite'}",
                                                   "--batch-size=ten"], service)  # fmt: skip
    assert code == 1
    assert envelope["success"] is False and envelope["code"] == "invalid_params"
    assert envelope["field"] == "batchSize"
    assert "Traceback" not in stderr
    code, envelope, _ = run_cli(import_main, ["--input=x", "--progress=loud"], service)
    assert (code, envelope["field"]) == (1, "progress")


def test_cli_help(service: Service) -> None:
    import io

    out = io.StringIO()
    assert import_main(["--help"], service=service, stdout=out) == 0
    assert "--input=FILE.jsonl" in out.getvalue() and "--on-error=abort|skip" in out.getvalue()


def test_a_line_too_long_stops_the_import_with_bounded_memory(
    service: Service, tmp_path: Path
) -> None:
    source = tmp_path / "array.json"
    # Two records, then what a JSON array file looks like: one enormous line.
    source.write_bytes(b'{"a":1}\n{"a":2}\n[' + b'{"a":3},' * (5 << 20) + b'{"a":4}]\n{"a":5}\n')
    params = {"input": str(source), "output": str(tmp_path / "o.sqlite"), "batchSize": 1,
              "onError": "skip"}  # fmt: skip
    with pytest.raises(
        InvalidParams, match=r"^input: line 3 is 32 MiB or longer.*JSON array"
    ) as info:
        service.execute("data/import", params)
    assert "exactly the 2 batch(es) committed before it" in info.value.message
    assert len(table_rows(tmp_path / "o.sqlite")) == 2


def test_a_pipe_or_a_device_is_refused_without_reading_it(service: Service, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # opening it would block until a writer comes: the check must not open it
    for source in (fifo, Path("/dev/zero")):
        params = {"input": str(source), "output": str(tmp_path / "o.sqlite")}
        with pytest.raises(InvalidParams, match="is not a regular file \\(a pipe or a device\\)"):
            service.execute("data/import", params)
