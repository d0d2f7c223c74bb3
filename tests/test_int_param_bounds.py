"""Every integer param of every command has a range, and a number outside it is ``invalid_params``
naming the field when the params are read, on every door (in-process, HTTP, the WebSocket, ``jtag``),
so an integer of 64 bits or more never reaches a job's process (whose JSON hand-off cannot write it)
nor an engine. A job whose request cannot be handed to its process, or whose process dies before or
while reading it, fails at once and frees its slot of the caller's job limit."""

from __future__ import annotations

import json
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import annotated_types
import orjson
import pytest
from pydantic import BaseModel

from dbhandles import Service, Settings
from dbhandles.cli import main as cli_main
from dbhandles.commands import builtin_commands
from dbhandles.context import Context
from dbhandles.server.app import create_app
from dbhandles.server.job_process import ChildJobs
from dbhandles.values import read_json
from tests.door_helpers import cli_home, door_envelope
from tests.servers import app_client

HUGE = 2**64
LOCAL = Context()
SPLIT = {"name": "train", "fractions": {"train": 0.5, "test": 0.5}}

#: (command, field as errors name it) -> (params around the number, whether -1 is in range). The
#: number goes where the placeholder ``N`` is.
TABLE: dict[tuple[str, str], tuple[dict[str, Any], bool]] = {
    ("data/audit", "limit"): ({"limit": "N"}, False),
    ("data/batch", "operations[0].expectedVersion"): ({"operations": [
        {"op": "update", "collection": "c", "id": "r", "data": {}, "expectedVersion": "N"}]}, False),
    ("data/copy", "batchSize"): ({"from": {"dbHandle": "default", "collection": "c"},
                                  "to": {"dbHandle": "default", "collection": "d"},
                                  "batchSize": "N"}, False),
    ("data/copy", "limit"): ({"from": {"dbHandle": "default", "collection": "c"},
                              "to": {"dbHandle": "default", "collection": "d"}, "limit": "N"}, False),
    ("data/count", "limit"): ({"collection": "c", "groupBy": "n", "limit": "N"}, False),
    ("data/export", "pageSize"): ({"dbHandle": "default", "collection": "c", "output": "OUT",
                                   "pageSize": "N"}, False),
    ("data/export", "limit"): ({"dbHandle": "default", "collection": "c", "output": "OUT",
                                "limit": "N"}, False),
    ("data/export", "sample"): ({"dbHandle": "default", "collection": "c", "output": "OUT",
                                 "sample": "N"}, False),
    ("data/export", "seed"): ({"dbHandle": "default", "collection": "c", "output": "OUT",
                               "sample": 1, "seed": "N"}, True),
    ("data/export", "split.seed"): ({"dbHandle": "default", "collection": "c", "output": "OUT",
                                     "split": {**SPLIT, "seed": "N"}}, True),
    ("data/import", "batchSize"): ({"dbHandle": "default", "input": "IN", "batchSize": "N"}, False),
    ("data/list", "limit"): ({"collection": "c", "limit": "N"}, False),
    ("data/list", "sample"): ({"collection": "c", "sample": "N"}, False),
    ("data/list", "seed"): ({"collection": "c", "sample": 1, "seed": "N"}, True),
    ("data/list", "split.seed"): ({"collection": "c", "split": {**SPLIT, "seed": "N"}}, True),
    ("data/list-grants", "limit"): ({"limit": "N"}, False),
    ("data/query-open", "pageSize"): ({"collection": "c", "pageSize": "N"}, False),
    ("data/query-open", "sample"): ({"collection": "c", "sample": "N"}, False),
    ("data/query-open", "seed"): ({"collection": "c", "sample": 1, "seed": "N"}, True),
    ("data/query-open", "split.seed"): ({"collection": "c", "split": {**SPLIT, "seed": "N"}}, True),
    ("data/update", "expectedVersion"): ({"collection": "c", "id": "r", "data": {},
                                          "expectedVersion": "N"}, False),
}  # fmt: skip
#: Params typed as a JSON scalar, not as an integer: the value rule of filters bounds them
#: (``values.check_scalar``; tests/test_number_overflow.py and the checks below).
JSON_SCALARS = {("data/list", "cursor.value")}


def _int_fields(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, list[Any]]]:
    """Each integer field of ``model`` (nested models and lists too) with its constraints."""
    for name, info in model.model_fields.items():
        yield from _ints(info.annotation, list(info.metadata), prefix + (info.alias or name))


def _ints(annotation: Any, meta: list[Any], path: str) -> Iterator[tuple[str, list[Any]]]:
    origin = typing.get_origin(annotation)
    if annotation is int:
        yield path, meta
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield from _int_fields(annotation, path + ".")
    elif origin is typing.Annotated:
        inner, *extra = typing.get_args(annotation)
        flat = [m for e in extra for m in (getattr(e, "metadata", None) or [e])]
        yield from _ints(inner, meta + flat, path)
    elif origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            yield from _ints(arg, meta, path)
    elif origin in (list, tuple):
        for arg in typing.get_args(annotation):
            yield from _ints(arg, [], path + "[0]")


def test_every_integer_param_is_in_the_table_with_both_bounds() -> None:
    found: dict[tuple[str, str], list[Any]] = {}
    for name, command in builtin_commands().items():
        for path, meta in _int_fields(command.params):
            found[(name, path)] = meta
    assert set(found) - JSON_SCALARS == set(TABLE)
    for key in TABLE:
        kinds = {type(m) for m in found[key]}
        assert annotated_types.Ge in kinds and annotated_types.Le in kinds, (key, found[key])
        [top] = [m.le for m in found[key] if isinstance(m, annotated_types.Le)]
        assert top < 2**63, key  # a job's hand-off (orjson) writes it


def _text(key: tuple[str, str], number: int, tmp_path: Path) -> str:
    """The JSON text of the params of ``key`` holding ``number``."""
    template, _ = TABLE[key]
    text = orjson.dumps(template).decode().replace('"N"', str(number))
    text = text.replace('"OUT"', orjson.dumps(str(tmp_path / "out.jsonl")).decode())
    return text.replace('"IN"', orjson.dumps(str(tmp_path / "in.jsonl")).decode())


def _params(key: tuple[str, str], number: int, tmp_path: Path) -> dict[str, Any]:
    return dict(read_json(_text(key, number, tmp_path)))


@pytest.fixture
def client(service: Service) -> Iterator[Any]:
    with app_client(service) as test_client:
        yield test_client


def _check(envelope: dict[str, Any], field: str) -> None:
    assert envelope["success"] is False, envelope
    assert (envelope["code"], envelope["field"]) == ("invalid_params", field), envelope
    assert envelope["error"].startswith(f"{field}: "), envelope


@pytest.mark.parametrize("door", ["in-process", "http", "ws", "cli"])
@pytest.mark.parametrize("key", list(TABLE), ids="{0[0]}:{0[1]}".format)
def test_an_integer_param_of_64_bits_is_refused_naming_it_on_every_door(
    service: Service, client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], door: str, key: tuple[str, str],
) -> None:  # fmt: skip
    command, field = key
    text = _text(key, HUGE, tmp_path)
    params = read_json(text)
    if door == "cli":
        cli_home(monkeypatch, tmp_path / "cli-home")
        # A string param as plain text, any other as its JSON text (exact integers).
        argv = [command] + [f"--{name}={_arg(value)}" for name, value in params.items()]
        assert cli_main(argv) == 1
        envelope = orjson.loads(capsys.readouterr().out)
    else:
        envelope = door_envelope(door, service, client, command, text)
    _check(envelope, field)


def _arg(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)  # the standard library writes big integers exactly


@pytest.mark.parametrize("key", [k for k, (_, negative) in TABLE.items() if not negative],
                         ids="{0[0]}:{0[1]}".format)  # fmt: skip
def test_a_negative_count_is_refused_naming_it(
    service: Service, client: Any, tmp_path: Path, key: tuple[str, str]
) -> None:
    command, field = key
    params = _params(key, -1, tmp_path)
    _check(service.dispatch(command, params), field)
    _check(client.post(f"/commands/{command}", json=params).json(), field)


def test_a_negative_seed_is_a_seed(service: Service, tmp_path: Path) -> None:
    service.execute("data/create", {"collection": "c", "id": "r", "data": {"n": 1}})
    listed = service.execute("data/list", _params(("data/list", "seed"), -1, tmp_path))
    assert [item["id"] for item in listed["items"]] == ["r"]


# -- the job's hand-off to its process ------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Service]:
    """A server's service whose every export runs in a child process, one job per actor."""
    svc = Service(settings=Settings(home=tmp_path / "home", job_process_bytes=0,
                                    max_jobs_per_actor=1))  # fmt: skip
    create_app(svc)
    svc.execute("data/create", {"collection": "c", "id": "r", "data": {"n": 1}})
    try:
        yield svc
    finally:
        svc.close()


def _export(server: Service, tmp_path: Path, name: str, **extra: Any) -> BaseModel:
    command = server.command("data/export")
    values = {"db_handle": "default", "collection": "c", "output": str(tmp_path / name), **extra}
    # Built without validation: the value the bounds refuse reaches the hand-off.
    return command.params.model_construct(**values)


def _still_free(server: Service, tmp_path: Path) -> None:
    """The actor's one job slot is free: a normal export runs to its end."""
    job = server.jobs.start("data/export", {"dbHandle": "default", "collection": "c",
                                            "output": str(tmp_path / "ok.jsonl")}, LOCAL)  # fmt: skip
    assert job.outcome.result(timeout=120)["success"] is True
    assert (tmp_path / "ok.jsonl").read_bytes().count(b"\n") == 1


def test_a_param_past_its_bound_that_reaches_the_hand_off_fails_the_job_at_once(
    server: Service, tmp_path: Path
) -> None:
    """An integer past 64 bits is handed off exactly (``dump_json``: a filter's may be one, issue
    14), and the job's process refuses it by the param's bound before doing anything."""
    words = "at most 9007199254740991, got 18446744073709551616"
    job = server.jobs.start("data/export", _export(server, tmp_path, "a.jsonl", limit=HUGE), LOCAL)
    envelope = job.outcome.result(timeout=60)
    assert job.status == "failed"
    assert (envelope["code"], envelope["field"]) == ("invalid_params", "limit"), envelope
    assert words in envelope["error"]
    assert server.jobs.get(job.id, LOCAL)["status"] == "failed"
    assert not (tmp_path / "a.jsonl").exists()
    _still_free(server, tmp_path)


def test_the_callers_context_is_not_handed_to_the_job_process(
    server: Service, tmp_path: Path
) -> None:
    """The original system's ``context`` is accepted and never stored (docs/compatibility.md): a
    value JSON holds and orjson cannot write (an integer past 64 bits) never reaches the child."""
    params = {"dbHandle": "default", "collection": "c", "output": str(tmp_path / "b.jsonl"),
              "context": {"x": HUGE, "uuid": "abc"}}  # fmt: skip
    job = server.jobs.start("data/export", params, LOCAL)
    envelope = job.outcome.result(timeout=120)
    assert envelope["success"] is True, envelope
    assert (tmp_path / "b.jsonl").read_bytes().count(b"\n") == 1


@pytest.mark.parametrize(
    "child",
    [
        "import sys; sys.exit(3)",  # dies before it reads its request
        "import os, sys; os.read(0, 5); sys.exit(4)",  # dies while reading it
        "import os, sys; os.read(0, 1 << 16); os.write(int(sys.argv[1]), b'{not json\\n')",
    ],
    ids=["before", "while", "garbled answer"],
)
def test_a_child_that_ends_without_an_answer_fails_the_job_and_frees_its_slot(
    server: Service, tmp_path: Path, child: str
) -> None:
    placement = server.jobs.elsewhere
    assert isinstance(placement, ChildJobs)
    normal = placement.argv
    placement.argv = [sys.executable, "-c", child]
    try:
        job = server.jobs.start("data/export", {"dbHandle": "default", "collection": "c",
                                                "output": str(tmp_path / "a.jsonl")}, LOCAL)  # fmt: skip
        envelope = job.outcome.result(timeout=60)
    finally:
        placement.argv = normal
    assert job.status == "failed"
    assert envelope["code"] == "internal_error"
    assert "without an answer" in envelope["error"]
    assert server.jobs.get(job.id, LOCAL)["status"] == "failed"
    _still_free(server, tmp_path)
