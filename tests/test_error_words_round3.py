"""Issue #14, third outside round: the words of errors, each finding fixed as a kind.

Every path of an import is decided before anything is created, with onError abort as with skip;
an element of a list param is named by its index (``groupBy[1]``); a request-body place is spelled
as values are (``operations[0]["x.y"]``) and a batch's field says which operation; pydantic's words
never reach a caller (``expects an integer, got "5x"``); a refused sum shows the sum; every path
in a message is quoted as JSON; NaN has one wording everywhere.
"""

from __future__ import annotations

import json
import os
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from dbhandles import DbHandlesError, Service
from dbhandles.cli.jsonl import import_main
from dbhandles.commands.base import COMMANDS
from dbhandles.values import NAN_WORDS, json_text
from tests.servers import app_client


def _refused(service: Service, command: str, params: dict[str, Any]) -> DbHandlesError:
    with pytest.raises(DbHandlesError) as caught:
        service.execute(command, params)
    return caught.value


def _handles(service: Service) -> list[str]:
    return sorted(h["handle"] for h in service.execute("data/list-handles", {})["handles"])


# -- 1. every path of an import is decided before anything is created ---------------------------


def _import(service: Service, door: str, params: dict[str, Any], capsys: Any) -> dict[str, Any]:
    """The envelope of a refused ``data/import`` through ``door``."""
    if door == "in-process":
        return service.dispatch("data/import", params)
    if door == "http":
        with app_client(service) as client:
            return dict(client.post("/commands/data/import", json=params).json())
    flags = {"input": "--input", "output": "--output", "rejects": "--rejects",
             "onError": "--on-error", "dbHandle": "--db-handle"}  # fmt: skip
    code = import_main([f"{flags[k]}={v}" for k, v in params.items()] + ["--quiet"],
                       service=service)  # fmt: skip
    envelope = json.loads(capsys.readouterr().out)
    assert code == 1, envelope
    return dict(envelope)


@pytest.mark.parametrize("door", ["in-process", "http", "cli"])
@pytest.mark.parametrize("on_error", ["skip", "abort"])
@pytest.mark.parametrize("same", ["output", "output by another spelling", "input"])
def test_a_rejects_path_that_is_another_file_of_the_import_is_refused_creating_nothing(
    service: Service, tmp_path: Path, capsys: Any, door: str, on_error: str, same: str
) -> None:
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    source = work / "r3.jsonl"
    source.write_text('{"a": 1}\n')
    output = work / "r3.sqlite"
    rejects = {"output": output, "output by another spelling": work / "sub" / ".." / "r3.sqlite",
               "input": source}[same]  # fmt: skip
    before = _handles(service)
    envelope = _import(service, door, {"input": str(source), "output": str(output),
                                       "rejects": str(rejects), "onError": on_error}, capsys)  # fmt: skip
    assert (envelope["code"], envelope["field"]) == ("path_not_allowed", "rejects"), envelope
    assert envelope["error"].startswith(f"rejects: {json_text(str(rejects))} is the same file as "
                                        f"the import's {same.split()[0]}"), envelope  # fmt: skip
    assert sorted(os.listdir(work)) == ["r3.jsonl", "sub"]  # no database, no -wal, no -shm
    assert source.read_text() == '{"a": 1}\n'
    assert _handles(service) == before


@pytest.mark.parametrize("on_error", ["skip", "abort"])
def test_a_rejects_path_that_is_the_database_of_the_dbhandle_target_is_refused(
    service: Service, tmp_path: Path, on_error: str
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"a": 1}\n')
    database = tmp_path / "db.sqlite"
    handle = service.execute("data/open", {"adapter": "sqlite", "config":
                                           {"path": str(database), "mode": "create"}})["dbHandle"]  # fmt: skip
    error = _refused(service, "data/import", {"input": str(source), "dbHandle": handle,
                                              "rejects": str(database), "onError": on_error})  # fmt: skip
    assert (error.code, error.field) == ("path_not_allowed", "rejects")
    assert json_text(str(database)) in error.message


# -- 2. an element of a list param is named by its index -----------------------------------------

BAD_PATHS = ["", "a..b", "x\x00", "$x", "t.0", 5, None, ".".join(["a"] * 65), "x y"]


@pytest.mark.parametrize("bad", BAD_PATHS)
@pytest.mark.parametrize(
    ("command", "param", "wrap", "field"),
    [("data/count", "groupBy", lambda b: ["t", b], "groupBy[1]"),
     ("data/list", "fields", lambda b: ["t", b], "fields[1]"),
     ("data/list", "orderBy", lambda b: ["t", b], "orderBy[1]"),
     ("data/list", "orderBy", lambda b: [{"field": "t"}, {"field": b}], "orderBy[1].field")],
)  # fmt: skip
def test_every_element_error_of_a_list_param_names_its_index(
    service: Service, command: str, param: str, wrap: Any, field: str, bad: Any
) -> None:
    if field == "fields[1]" and bad in ("t.0", "x y"):
        pytest.skip("a projection may name an array index or a foreign table's column")
    error = _refused(service, command, {"collection": "c", param: wrap(bad)})
    assert error.field is not None and error.field.startswith(field), (error.field, error.message)
    assert error.message.startswith(f"{error.field}: "), error.message


def test_too_many_group_by_paths_name_the_list(service: Service) -> None:
    error = _refused(service, "data/count", {"collection": "c", "groupBy": ["t"] * 65})
    assert (error.field, error.message.endswith("got a list of 65")) == ("groupBy", True)


# -- 3. request-body places are spelled as value places ------------------------------------------

OP = {"op": "create", "collection": "c", "data": {}}


@pytest.mark.parametrize(
    ("command", "params", "field"),
    [("data/batch", {"operations": [{"op": "create", "data": {}}]}, "operations[0].collection"),
     ("data/batch", {"operations": [{**OP, "x.y": 1}]}, 'operations[0]["x.y"]'),
     ("data/batch", {"operations": [OP, {"op": "zap"}]}, "operations[1].op"),
     ("data/list", {"collection": "c", "split": {"name": "a", "fractions": {"a": 1}, "b.c": 1}},
      'split["b.c"]'),
     ("data/list", {"collection": "c", "": 1}, '[""]'),
     ("data/batch", {"operations": [OP, {**OP, "collection": "x y"}]}, "operations[1].collection"),
     ("data/batch", {"operations": [OP, {**OP, "data": {"a": {"b.c": float("nan")}}}]},
      'operations[1].data.a["b.c"]')],
)  # fmt: skip
def test_a_body_place_is_spelled_with_indexes_and_bracketed_keys(
    service: Service, command: str, params: dict[str, Any], field: str
) -> None:
    error = _refused(service, command, params)
    assert error.field == field, (error.field, error.message)
    operation = re.fullmatch(r"(operations\[\d\])\.(collection|data.*)", field)
    if operation and not error.message.startswith(
        field
    ):  # refused by the operation: the message says which operation first
        assert error.message.startswith(f"{operation[1]} (create): {operation[2]}: "), error.message
    else:
        assert error.message.startswith(f"{field}: "), error.message


def test_a_batch_place_reaches_http_as_in_process(service: Service) -> None:
    params = {"operations": [OP, {**OP, "collection": "x y"}]}
    with app_client(service) as client:
        envelope = client.post("/commands/data/batch", json=params).json()
    assert envelope["field"] == "operations[1].collection", envelope


# -- 4. pydantic's words never reach a caller ----------------------------------------------------

IMPORT = {"input": "in.jsonl", "output": "out.sqlite"}
SPLIT = {"name": "a", "fractions": {"a": 1}}


@pytest.mark.parametrize(
    ("command", "params", "message"),
    [("data/list", {"filter": {"a": {"$eq": {"x": 1}}}},
      'filter.a.$eq: filters compare scalar values (string, number, boolean or null), not an '
      'object: got {"x":1};'),
     ("data/list", {"filter": {"a": {"$in": [[1]]}}}, "not an array: got [1];"),
     ("data/list", {"limit": "5x"}, 'limit: expects an integer, got "5x"'),
     ("data/list", {"limit": True}, "limit: expects an integer, got true"),
     ("data/list", {"limit": 1.5}, "limit: expects an integer"),
     ("data/list", {"sample": float("inf")}, "sample: expects an integer"),
     ("data/import", {**IMPORT, "onError": "ignore"},
      'onError: expects "abort" or "skip", got "ignore"'),
     ("data/import", {**IMPORT, "parser": None},
      'parser: expects "auto", "process" or "inline", got null'),
     ("data/list", {"split": {"name": "train", "fractions": {"train": True}}},
      "split.fractions.train: expects a number, got true"),
     ("data/list", {"split": {**SPLIT, "name": ""}}, 'split.name: expects a non-empty string, got ""'),
     ("data/list", {"split": {**SPLIT, "fractions": {}}},
      "split.fractions: expects at least 1 key, got 0"),
     ("data/list", {"split": {"name": "a0", "fractions": {f"a{i}": 1 / 17 for i in range(17)}}},
      "split.fractions: expects at most 16 keys, got 17: ")],
)  # fmt: skip
def test_a_refused_param_is_told_in_the_services_words_quoting_the_value(
    service: Service, command: str, params: dict[str, Any], message: str
) -> None:
    params = params if command == "data/import" else {"collection": "c", **params}
    error = _refused(service, command, params)
    assert message in error.message, error.message
    _no_library_words(error.message)


#: Words of the validation library or of Python a message must never hold.
LIBRARY_WORDS = re.compile(
    r"Input should|validation|Dictionary|String should|\b(?:dict|str|NoneType|int|float|bool)\b"
    r"|\bnot (?:list|tuple)\b|\blist\[|expects a list\b"
    r"|(?<![A-Za-z])'[^' ]*'(?![A-Za-z])"
)
#: The service's own fixed hints that hold single quotes ('training_examples', 'jtag help ...').
OWN_QUOTES = re.compile(r"'(?:training_examples|_|jtag help [^']*|metadata\.qualityScore|"
                        r"\.|\$|v1\.2|<id>|name|-name|name desc|default|primary|training|[^'\w\s])'")  # fmt: skip


def _no_library_words(message: str) -> None:
    text = OWN_QUOTES.sub("", message)
    assert not LIBRARY_WORDS.search(text), message


BAD_VALUES: list[Any] = ["x'y", "", 1.5, -1, 2**70, True, None, [], [[1]], {}, {"zz": 1},
                         float("nan"), float("inf"), "a" * 300]  # fmt: skip


def _models(annotation: Any) -> Iterator[type[BaseModel]]:
    """The params models nested in ``annotation`` (a field's type)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in typing.get_args(annotation):
        if typing.get_origin(annotation) is typing.Literal:
            return
        yield from _models(arg)


def _bad_params(model: type[BaseModel], depth: int = 0) -> Iterator[dict[str, Any]]:
    """For each field of ``model`` (and of the models nested in it): params holding one bad value
    there and nothing else."""
    for name, info in model.model_fields.items():
        key = info.alias or name
        for bad in BAD_VALUES:
            yield {key: bad}
        if depth < 2:
            for inner in _models(info.annotation):
                for nested in _bad_params(inner, depth + 1):
                    yield {key: nested}
                    yield {key: [nested]}


def test_no_refusal_of_any_command_holds_the_validation_librarys_words() -> None:
    """The sweep: every command's params, with generated bad values in every field (nested too)."""
    refusals: list[DbHandlesError] = []
    for command in COMMANDS.values():
        for params in _bad_params(command.params):
            try:
                Service._parse(command, params)
            except DbHandlesError as error:
                refusals.append(error)
    assert len(refusals) > 1000
    for refusal in refusals:
        _no_library_words(refusal.message)
        field = refusal.field or ""
        assert not LIBRARY_WORDS.search(field), field
        assert not re.search(r"\.\d", field), field  # an index is [0], never .0


# -- 5. a refused sum shows the sum --------------------------------------------------------------


@pytest.mark.parametrize(
    ("fractions", "total"),
    [({"a": 0.5, "b": 0.4999999}, "0.9999998999999999"), ({"a": 0.5, "b": 0.500001}, "1.0000010000000001")],
)  # fmt: skip
def test_a_refused_sum_of_fractions_shows_the_sum_and_the_tolerance(
    service: Service, fractions: dict[str, float], total: str
) -> None:
    error = _refused(service, "data/list",
                     {"collection": "c", "split": {"name": "a", "fractions": fractions}})  # fmt: skip
    assert error.message == (
        f"split.fractions: the fractions must sum to 1 within 1e-9 (they sum to {total})"
    )


# -- 6. every path in a message is quoted as JSON ------------------------------------------------


def test_every_refused_path_is_quoted_as_json(service: Service, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"a": 1}\n')
    weird = tmp_path / 'we"ird name.jsonl'
    weird.write_text("not a database\n")
    said = json_text(str(weird))
    cases: list[tuple[str, dict[str, Any], str, str]] = [
        ("data/export", {"dbHandle": "default", "output": str(weird)}, "file_exists", "output"),
        ("data/import", {"input": str(source), "output": str(weird)}, "not_a_database", "output"),
        ("data/open", {"adapter": "sqlite", "config": {"path": str(weird)}}, "not_a_database",
         "config.path"),
        ("data/export", {"input": str(weird), "output": str(tmp_path / "o.jsonl")},
         "not_a_database", "input"),
        ("data/import", {"input": str(source), "output": str(tmp_path / "d.sqlite"),
                         "rejects": str(weird), "onError": "skip"}, "file_exists", "rejects"),
    ]  # fmt: skip
    for command, params, code, field in cases:
        error = _refused(service, command, params)
        assert (error.code, error.field) == (code, field), (command, error.message)
        assert error.message.startswith(f"{field}: {said} "), error.message
    wal = str(tmp_path / 'we"ird.sqlite-wal')
    error = _refused(service, "data/import", {"input": str(source), "output": wal})
    assert f"output: {json_text(wal)} is one of SQLite's own side files" in error.message
    database = tmp_path / 'op"en.sqlite'
    service.execute("data/open", {"adapter": "sqlite",
                                  "config": {"path": str(database), "mode": "create"}})  # fmt: skip
    error = _refused(service, "data/import", {"input": str(source), "output": str(tmp_path / "x.sqlite"),
                                              "rejects": str(database), "onError": "skip"})  # fmt: skip
    assert f"rejects: {json_text(str(database))} is a database file" in error.message, error.message


# -- 7. NaN is worded one way everywhere ---------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "params", "field"),
    [("data/list", {"filter": {"a": float("nan")}}, "filter.a"),
     ("data/create", {"data": {"a": float("nan")}}, "data.a"),
     ("data/list", {"limit": float("nan")}, "limit"),
     ("data/list", {"sample": float("nan")}, "sample"),
     ("data/list", {"split": {"name": "a", "fractions": {"a": float("nan")}}}, "split.fractions.a")],
)  # fmt: skip
def test_nan_is_worded_one_way_on_every_place(
    service: Service, command: str, params: dict[str, Any], field: str
) -> None:
    error = _refused(service, command, {"collection": "c", **params})
    assert error.field == field
    assert error.message.startswith(f"{field}: ") and NAN_WORDS in error.message, error.message


def test_the_walk_covers_union_and_nested_annotations() -> None:
    """``_models`` finds models behind unions, lists and Annotated (the walk above relies on it)."""

    class Inner(BaseModel):
        n: int

    found = list(_models(typing.Annotated[list[Inner] | None, "x"]))
    assert found == [Inner]
    assert list(_models(types.NoneType)) == []
