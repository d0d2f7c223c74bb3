"""Issue #14, fifth outside round: a value no record can hold that reached a database without
dbhandles' own checks (a JSON-adapter file edited by hand holding U+0000) is refused by every door
that copies it, into every adapter, with ``invalid_params``, the record and the value's path, and
nothing of its batch written. Before, PostgreSQL refused it in the driver's words with no field and
SQLite stored it (its JSON functions cut the text at U+0000)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import DbHandlesError, Service
from tests.conftest import adapter_config

STAMP = {"createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-01T00:00:00.000Z",
         "version": 1}  # fmt: skip
#: Records of a hand-edited file, the id and path of the bad value, a word of the message.
BAD: list[tuple[dict[str, Any], str, str]] = [
    ({"id": "b", "t": {"x": ["ok", "a\x00b"]}}, "t.x[1]", "U+0000"),
    ({"id": "b", "k\x00": 1}, 'the record\'s key "k\\u0000"', "U+0000"),
    ({"id": "b", "n": [1, 2**63]}, "n[1]", "2**63"),
]


def _hand_edited(tmp_path: Path, bad: dict[str, Any]) -> Path:
    path = tmp_path / "hand.json"
    records = [{"id": "a", "n": 1, **STAMP}, {**bad, **STAMP}, {"id": "c", "n": -0.0, **STAMP}]
    path.write_bytes(orjson.dumps({"format": "dbhandles-json", "collections": {"c": records}}))
    return path


def _copy_params(source: str, target: str, batch_size: int) -> dict[str, Any]:
    return {"from": {"dbHandle": source, "collection": "c"},
            "to": {"dbHandle": target, "collection": "d"}, "batchSize": batch_size}  # fmt: skip


def _ids(service: Service, db: str) -> list[str]:
    listed = service.execute("data/list", {"dbHandle": db, "collection": "d", "orderBy": "id"})
    return [r["id"] for r in listed["items"]]


@pytest.mark.parametrize(("bad", "path", "word"), BAD)
@pytest.mark.parametrize("batch_size", [1, 100])
def test_a_value_no_record_can_hold_is_refused_by_data_copy_on_every_target(
    service: Service, adapter_name: str, tmp_path: Path, bad: dict[str, Any], path: str,
    word: str, batch_size: int,
) -> None:  # fmt: skip
    source = service.execute("data/open", {"adapter": "json", "config": {
        "path": str(_hand_edited(tmp_path, bad))}})["dbHandle"]  # fmt: skip
    (tmp_path / "t").mkdir()
    target = service.execute(
        "data/open",
        {"adapter": adapter_name, "config": adapter_config(adapter_name, tmp_path / "t")},
    )
    target = target["dbHandle"]
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/copy", _copy_params(source, target, batch_size))
    error = caught.value
    assert (error.code, error.field) == ("invalid_params", "from.collection"), error.message
    assert error.message.startswith(f'from.collection: record "b": {path}: '), error.message
    assert word in error.message and "nothing of this batch was written" in error.message
    # Batches before the bad one stay (each batch is its own transaction); none of its own.
    assert _ids(service, target) == (["a"] if batch_size == 1 else [])


def test_a_copy_stores_negative_zero_as_zero_as_data_create_does(
    service: Service, db: str, tmp_path: Path
) -> None:
    path = tmp_path / "clean.json"
    path.write_bytes(orjson.dumps({"format": "dbhandles-json", "collections": {
        "c": [{"id": "z", "n": -0.0, "m": [{"k": -0.0}], **STAMP}]}}))  # fmt: skip
    source = service.execute("data/open", {"adapter": "json", "config": {"path": str(path)}})
    service.execute("data/copy", _copy_params(source["dbHandle"], db, 10))
    [record] = service.execute("data/list", {"dbHandle": db, "collection": "d"})["items"]
    assert orjson.dumps([record["n"], record["m"]]) == b'[0.0,[{"k":0.0}]]'


def test_a_copy_job_fails_with_the_same_error(service: Service, tmp_path: Path) -> None:
    source = service.execute("data/open", {"adapter": "json", "config": {
        "path": str(_hand_edited(tmp_path, BAD[0][0]))}})["dbHandle"]  # fmt: skip
    target = service.execute("data/open", {"adapter": "memory", "config": {}})["dbHandle"]
    job = service.execute(
        "data/job-start", {"command": "data/copy", "params": _copy_params(source, target, 100)}
    )
    for _ in range(2000):
        status = service.execute("data/job-status", {"jobId": job["jobId"]})
        if status["status"] not in ("queued", "running"):
            break
        time.sleep(0.01)
    assert status["status"] == "failed", status
    assert (status["error"]["code"], status["error"].get("field")) == (
        "invalid_params", "from.collection"
    )  # fmt: skip
    assert status["error"]["error"].startswith('from.collection: record "b": t.x[1]: ')
    assert _ids(service, target) == []
