"""Issue #14, second outside round: the words of errors, each finding fixed as a kind.

A library's own words quote the caller's text as JSON too (RE2's detail); no Python repr reaches a
message (``'x'``, ``'\\n'``, ``(None, a)``); a path a collection refuses names its parameter in
``field``; a filter gets one answer on every door; an import reason has one line number; a refused
import or copy creates nothing; pydantic's words never name our classes; names are quoted.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from dbhandles import DbHandlesError, Service, wire
from dbhandles.cli.jsonl import export_main, import_main
from dbhandles.importer.parse import Rejected, parse_chunk
from dbhandles.path_text import check_path_text
from dbhandles.regex import pattern_problem
from dbhandles.security.names import UNSHOWABLE
from dbhandles.values import read_json
from tests.servers import app_client

#: Python's words in a message: a '...' quoted text, a bare None, a tuple or list repr.
PYTHON_WORDS = re.compile(r"(?<!\")\bNone\b(?!\")|(?<![A-Za-z])'[^' ]*'(?![A-Za-z])|\['|\(None")


def _refused(service: Service, command: str, params: dict[str, Any]) -> DbHandlesError:
    with pytest.raises(DbHandlesError) as caught:
        service.execute(command, params)
    error = caught.value
    assert not UNSHOWABLE.search(error.message), ascii(error.message)
    assert error.field is None or not UNSHOWABLE.search(error.field), ascii(error.field)
    return error


def _no_python_words(message: str) -> None:
    # The fixed hint "(for example 'training_examples')" and "'_'" are the service's own words.
    text = message.replace("'training_examples'", "").replace("'_'", "")
    assert not PYTHON_WORDS.search(text), message


# -- 2. a library's detail quotes the pattern as JSON --------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "detail"),
    [("[\x01", 'missing ]: "[\\u0001"'), ("(a\u2028", 'missing ): "(a\\u2028"'),
     ("a**", 'bad repetition operator: "**"')],
)  # fmt: skip
def test_re2s_own_detail_quotes_the_pattern_as_json(
    service: Service, pattern: str, detail: str
) -> None:
    error = _refused(
        service, "data/list", {"collection": "c", "filter": {"m.role": {"$regex": pattern}}}
    )
    assert error.field == "filter.m.role.$regex"
    assert f"({detail})" in error.message, ascii(error.message)
    assert pattern_problem(pattern) == detail


# -- 3. no Python repr in a message --------------------------------------------------------------


@pytest.mark.parametrize(
    ("split", "says"),
    [({"name": "x", "fractions": {"train": 1}}, 'split.name: "x" is not one of the fractions ("train")'),
     ({"name": "x\x07'\"y", "fractions": {"train": 1}},
      'split.name: "x\\u0007\'\\"y" is not one of the fractions ("train")'),
     ({"name": "x", "fractions": {"None": 0.5, "a\x07": 0.5}}, '("None", "a\\u0007")'),
     ({"name": "x", "fractions": {"a\x00": 0.5, "b": 0.5}}, '("a\\u0000", "b")')],
)  # fmt: skip
def test_split_names_are_quoted_as_json(service: Service, split: dict[str, Any], says: str) -> None:
    error = _refused(service, "data/list", {"collection": "c", "split": split})
    assert error.field == "split.name"
    assert says in error.message, ascii(error.message)
    _no_python_words(error.message)


@pytest.mark.parametrize(("path", "says"), [("/tmp/a\nb.jsonl", '"\\n" at position 6'),
                                            ("/tmp/a\tb.jsonl", '"\\t" at position 6'),
                                            ("/tmp/a\u2028b", '"\\u2028" at position 6')])  # fmt: skip
def test_a_control_character_of_a_path_is_quoted_as_json(path: str, says: str) -> None:
    with pytest.raises(DbHandlesError) as caught:
        check_path_text(path, "output")
    assert caught.value.message.endswith(says), ascii(caught.value.message)
    assert caught.value.field == "output"


@pytest.mark.parametrize("main", [import_main, export_main])
@pytest.mark.parametrize("field", ["input", "output"])
def test_jsonl_commands_quote_a_bad_path_as_json(
    service: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str], main: Any, field: str
) -> None:
    work = tmp_path / "work"  # the service's home is tmp_path / "home"
    work.mkdir()
    args = {"input": str(work / "in.jsonl"), "output": str(work / "out.jsonl")}
    args[field] = str(work / "a\nb.jsonl")
    code = main([f"--{k}={v}" for k, v in args.items()] + ["--quiet"], service=service)
    envelope = json.loads(capsys.readouterr().out)
    assert code == 1 and envelope["field"] == field, envelope
    assert '"\\n" at position' in envelope["error"], envelope
    _no_python_words(envelope["error"])
    assert sorted(os.listdir(work)) == []  # nothing created


def test_no_python_repr_is_left_in_a_message_of_the_package() -> None:
    """The sweep: every ``!r`` or ``repr(`` left in the package is in no message a caller sees."""
    root = Path(__file__).parent.parent / "src" / "dbhandles"
    allowed = {  # the few left: internal errors (bugs), cache keys, environment text, __repr__
        "server/workers.py", "lazy.py", "evaluate.py", "cli/help.py", "commands/table.py",
        "adapters/sqlite_foreign.py", "adapters/sqlite.py", "adapters/postgres_compile.py",
        "commands/copy_table.py", "adapters/sql_compile.py", "adapters/__init__.py",
        "security/write_checks.py", "adapters/postgres_foreign.py", "adapters/sqlite_records.py",
    }  # fmt: skip
    found = []
    for path in root.rglob("*.py"):
        name = path.relative_to(root).as_posix()
        for number, line in enumerate(path.read_text().splitlines(), 1):
            shown = ("!r}" in line or "repr(" in line) and "__repr__" not in line
            if shown and name not in allowed:
                found.append(f"{name}:{number}: {line.strip()}")
    assert not found, "\n".join(found)


# -- 4. a path a collection refuses names its parameter -----------------------------------------


@pytest.mark.parametrize(
    ("command", "params", "field"),
    [("data/count", {"groupBy": "x y"}, "groupBy"),
     ("data/count", {"groupBy": ["a", "x y"]}, "groupBy[1]"),
     ("data/list", {"filter": {"x y": 1}}, "filter.x y"),
     ("data/list", {"filter": {"$or": [{"a": 1}, {"x y": 1}]}}, "filter.$or[1].x y"),
     ("data/list", {"filter": {"a": {"$elemMatch": {"x y": 1}}}}, "filter.a.$elemMatch.x y"),
     ("data/list", {"orderBy": [{"field": "x y"}]}, "orderBy[0].field"),
     ("data/list", {"orderBy": ["a", {"field": "7"}]}, "orderBy[1].field"),
     ("data/count", {"filter": {"x y": {"$gt": 1}}}, "filter.x y"),
     ("data/export", {"dbHandle": "default", "filter": {"x y": 1}}, "filter.x y")],
)  # fmt: skip
def test_a_path_a_collection_refuses_names_its_parameter(
    service: Service, tmp_path: Path, command: str, params: dict[str, Any], field: str
) -> None:
    service.execute("data/create", {"collection": "c", "data": {"id": "r", "a": [1]}})
    if command == "data/export":
        params = {**params, "output": str(tmp_path / "out.jsonl")}
    error = _refused(service, command, {"collection": "c", **params})
    assert (error.code, error.field) == ("invalid_filter", field)
    assert error.message.startswith(f"{field}: "), error.message
    assert "is not a valid field path" in error.message
    assert not (tmp_path / "out.jsonl").exists()


def test_a_copys_source_path_is_named_under_from(service: Service) -> None:
    service.execute("data/create", {"collection": "c", "data": {"id": "r"}})
    params = {"from": {"dbHandle": "default", "collection": "c", "filter": {"x y": 1}},
              "to": {"dbHandle": "default", "collection": "d"}}  # fmt: skip
    error = _refused(service, "data/copy", params)
    assert error.field == "from.filter.x y"


# -- 5. one answer on every door -------------------------------------------------------------------


def test_an_overflowed_filter_literal_gets_one_answer_on_every_door(service: Service) -> None:
    params = {"collection": "c", "filter": read_json('{"a": 1e400}')}
    in_process = service.dispatch("data/count", params)
    assert (in_process["code"], in_process["field"]) == ("invalid_filter", "filter.a")
    assert "cannot be compared" in in_process["error"]
    body = wire.encode_params(params)  # what jtag and dbhandles.Client send to a server
    with app_client(service) as client:
        sent = client.post("/commands/data/count", content=body).json()
        direct = client.post("/commands/data/count", content=b'{"collection": "c", '
                             b'"filter": {"a": 1e400}}').json()  # fmt: skip
    for envelope in (sent, direct):
        assert (envelope["code"], envelope["field"], envelope["error"]) == (
            in_process["code"],
            in_process["field"],
            in_process["error"],
        )


# -- 6. one line number in an import reason --------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reason"),
    [(b'{"a":', "invalid JSON: unexpected end of data at column 6"),
     (b'{"a": \n', "invalid JSON: unexpected end of data at column 7"),
     (b'{"a":1}x\r\n', "invalid JSON: unexpected content after document at column 8")],
)  # fmt: skip
def test_an_import_reason_places_bad_json_by_column_only(line: bytes, reason: str) -> None:
    item = parse_chunk([line], None).items[0]
    assert item == Rejected(reason)


def test_a_rejected_lines_reason_has_the_files_line_number_only(
    service: Service, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"a": 1}\n{"a":\n')
    error = _refused(service, "data/import", {"input": str(source),
                                              "output": str(tmp_path / "o.sqlite")})  # fmt: skip
    assert error.message.startswith("line 2: invalid JSON: unexpected end of data at column")
    assert "line 1" not in error.message and "char" not in error.message


# -- 7. a refused import or copy creates nothing ---------------------------------------------------


@pytest.mark.parametrize("name", ["bad name", "7up", "a.b"])
def test_an_import_into_a_name_no_collection_may_have_creates_nothing(
    service: Service, tmp_path: Path, name: str
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    source = work / "in.jsonl"
    source.write_text("".join(json.dumps({"id": str(i)}) + "\n" for i in range(200)))
    before = service.execute("data/list-handles", {})["handles"]
    error = _refused(service, "data/import", {"input": str(source), "collection": name,
                                              "output": str(work / "o.sqlite")})  # fmt: skip
    assert (error.code, error.field) == ("invalid_params", "collection")
    assert "batch" not in error.message and "line" not in error.message, error.message
    assert sorted(os.listdir(work)) == ["in.jsonl"]
    assert service.execute("data/list-handles", {})["handles"] == before


def test_an_import_into_an_existing_database_refuses_before_reading(
    service: Service, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "1"}\n')
    output = tmp_path / "o.sqlite"
    service.execute("data/import", {"input": str(source), "output": str(output)})
    for handle in [h["handle"] for h in service.execute("data/list-handles", {})["handles"]]:
        if handle != "default":
            service.execute("data/close", {"dbHandle": handle})
    before = service.execute("data/list-handles", {})["handles"]
    error = _refused(service, "data/import", {"input": str(source), "collection": "bad name",
                                              "output": str(output)})  # fmt: skip
    assert (error.code, error.field) == ("invalid_params", "collection")
    assert "batch" not in error.message, error.message
    assert service.execute("data/list-handles", {})["handles"] == before  # its handle closed again


def test_a_copy_into_a_name_no_collection_may_have_names_to_collection(service: Service) -> None:
    service.execute("data/create", {"collection": "c", "data": {"id": "r"}})
    params = {"from": {"dbHandle": "default", "collection": "c"},
              "to": {"dbHandle": "default", "collection": "bad name"}}  # fmt: skip
    error = _refused(service, "data/copy", params)
    assert (error.code, error.field) == ("invalid_params", "to.collection")
    assert error.message.startswith('to.collection: no collection, table or view is named "bad')


# -- 8. split and pydantic wording -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("split", "field", "says"),
    [({"name": "t", "fractions": {"t": 0.5, "": 0.5}}, "split.fractions",
      'a fraction name must be a non-empty string, got ""'),
     ({"name": "t", "fractions": {"t" * 65: 1}}, "split.fractions",
      "a fraction name is at most 64 characters"),
     ("train", "split", 'expects an object, got "train"'),
     ({"name": "t", "fractions": {"t": float("nan")}}, "split.fractions.t", "NaN is not a number (JSON has no NaN)")],
)  # fmt: skip
def test_split_errors_say_what_is_wrong_in_the_services_words(
    service: Service, split: Any, field: str, says: str
) -> None:
    error = _refused(service, "data/list", {"collection": "c", "split": split})
    assert error.field == field
    assert says in error.message, error.message
    assert "SplitSpec" not in error.message and "instance of" not in error.message
    assert "less than" not in error.message and "another type" not in error.message


@pytest.mark.parametrize(
    ("command", "params"),
    [("data/copy", {"from": "x", "to": {"dbHandle": "default", "collection": "d"}}),
     ("data/copy", {"from": {"dbHandle": "default", "collection": "c"}, "to": 5}),
     ("data/open", {"adapter": "sqlite", "config": {"path": "x", "mode": "create"},
                    "permissions": "read"})],
)  # fmt: skip
def test_no_model_class_name_reaches_a_message(
    service: Service, command: str, params: dict[str, Any]
) -> None:
    error = _refused(service, command, params)
    assert "instance of" not in error.message and "Spec" not in error.message, error.message
    assert "expects an object" in error.message, error.message


# -- 9. names quoted as JSON -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("group_by", "field", "says"),
    [("id", "groupBy", 'groupBy: "id" is a system field'),
     ("m", "groupBy", 'groupBy: "m" holds objects'),
     (["m.role", "m.role"], "groupBy[1]", 'groupBy[1]: "m.role" is named twice')],
)  # fmt: skip
def test_group_by_names_are_quoted(service: Service, group_by: Any, field: str, says: str) -> None:
    service.execute("data/create", {"collection": "c", "data": {"m": [{"role": "u"}]}})
    error = _refused(service, "data/count", {"collection": "c", "groupBy": group_by})
    assert error.field == field
    assert error.message.startswith(says), error.message


@pytest.mark.parametrize(
    ("line", "id_field", "says"),
    [({"a": 1}, "a b", 'missing id field "a b"'),
     ({"m": [{"c": "x"}]}, "m.c", 'id field "m.c": "m" is an array')],
)  # fmt: skip
def test_import_id_field_names_are_quoted(
    service: Service, tmp_path: Path, line: dict[str, Any], id_field: str, says: str
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(line) + "\n")
    error = _refused(service, "data/import", {"input": str(source), "idField": id_field,
                                              "output": str(tmp_path / "o.sqlite")})  # fmt: skip
    assert error.message.startswith(f"line 1: {says}"), error.message


# -- 10. export and import inputs ------------------------------------------------------------------


def test_an_export_input_that_is_no_database_names_input(service: Service, tmp_path: Path) -> None:
    clean = tmp_path / "clean.jsonl"
    clean.write_text('{"a": 1}\n')
    for given, code in ((clean, "not_a_database"), (tmp_path / "missing.sqlite",
                                                     "database_not_found")):  # fmt: skip
        error = _refused(service, "data/export", {"input": str(given),
                                                  "output": str(tmp_path / "o.jsonl")})  # fmt: skip
        assert (error.code, error.field) == (code, "input")
        assert error.message.startswith("input: "), error.message
        assert "mode" not in error.message and "create" not in error.message, error.message
    assert not (tmp_path / "o.jsonl").exists() and not (tmp_path / "missing.sqlite").exists()


@pytest.mark.parametrize(("adapter", "name"), [("json", "c.json"), ("sqlite", "c.sqlite")])
def test_an_open_handles_database_is_never_an_import_input(
    service: Service, tmp_path: Path, adapter: str, name: str
) -> None:
    path = tmp_path / name
    opened = service.execute("data/open", {"adapter": adapter,
                                           "config": {"path": str(path), "mode": "create"}})  # fmt: skip
    service.execute("data/create", {"dbHandle": opened["dbHandle"], "collection": "c",
                                    "data": {"id": "r"}})  # fmt: skip
    error = _refused(service, "data/import", {"input": str(path),
                                              "output": str(tmp_path / "o.sqlite")})  # fmt: skip
    assert (error.code, error.field) == ("path_not_allowed", "input")
    assert "open" in error.message, error.message
    assert not (tmp_path / "o.sqlite").exists()
