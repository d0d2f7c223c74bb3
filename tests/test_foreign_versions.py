"""The ``version`` column of a table dbhandles did not create holds what other programs wrote
(issue 15): a value that is no version (text, a real, 0, a negative or too large number) is never
overwritten, an update of its row is ``invalid_params`` naming ``version``; NULL is version 0."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.errors import DbHandlesError
from tests.conftest import adapter_config
from tests.test_foreign_copy import _sql

PG = pytest.mark.postgres


def _open(service: Service, tmp_path: Path, adapter: str, rows: list[tuple[Any, ...]]) -> str:
    folder = tmp_path / "v"
    folder.mkdir()
    if adapter == "sqlite":
        conn = sqlite3.connect(folder / "db.sqlite")
        conn.execute("CREATE TABLE ver (k TEXT PRIMARY KEY, version INTEGER, x TEXT)")
        conn.executemany("INSERT INTO ver VALUES (?, ?, ?)", rows)
        conn.commit()
        conn.close()
        config: dict[str, Any] = {"path": str(folder / "db.sqlite")}
    else:
        values = ", ".join(f"('{k}', {'NULL' if v is None else v}, '{x}')" for k, v, x in rows)
        _sql("postgres", folder, "CREATE TABLE ver (k text PRIMARY KEY, version bigint, x text); "
             f"INSERT INTO ver VALUES {values}")  # fmt: skip
        config = adapter_config("postgres", folder)
        config.pop("mode", None)
    return str(service.execute("data/open", {"adapter": adapter, "config": config})["dbHandle"])


def _update(service: Service, handle: str, record_id: str, **params: Any) -> dict[str, Any]:
    return service.execute("data/update", {"dbHandle": handle, "collection": "ver",
                                           "id": record_id, "data": {"x": "9"}, **params})  # fmt: skip


def _read(service: Service, handle: str, record_id: str) -> dict[str, Any]:
    found = service.execute("data/read", {"dbHandle": handle, "collection": "ver", "id": record_id})
    return dict(found["data"])


SQLITE_BAD = [("t", "'abc'"), ("r", 1.5), ("z", 0), ("n", -1), ("big", 2**31)]
PG_BAD = [("z", 0), ("n", -1), ("big", 2**31)]


@pytest.mark.parametrize(
    ("adapter", "bad"),
    [("sqlite", SQLITE_BAD), pytest.param("postgres", PG_BAD, marks=PG)],
)
def test_a_version_that_is_no_version_is_never_overwritten(
    service: Service, tmp_path: Path, adapter: str, bad: list[tuple[str, Any]]
) -> None:
    rows = [(k, v.strip("'") if isinstance(v, str) else v, "x0") for k, v in bad]
    handle = _open(service, tmp_path, adapter, rows)
    for record_id, value in bad:
        with pytest.raises(DbHandlesError) as info:
            _update(service, handle, record_id)
        assert info.value.code == "invalid_params" and info.value.field == "version"
        shown = '"abc"' if value == "'abc'" else value  # a text is quoted as JSON text
        assert f"holds {shown}" in info.value.message and "None" not in info.value.message
        with pytest.raises(DbHandlesError) as info:  # in a batch too
            service.execute("data/batch", {"dbHandle": handle, "operations": [
                {"op": "update", "collection": "ver", "id": record_id, "data": {"x": "9"}}]})  # fmt: skip
        assert info.value.field is not None and info.value.field.endswith("version")
        row = _read(service, handle, record_id)
        assert (row["x"], row["version"]) == ("x0", rows[bad.index((record_id, value))][1])


@pytest.mark.parametrize("adapter", ["sqlite", pytest.param("postgres", marks=PG)])
def test_a_null_version_is_version_0(service: Service, tmp_path: Path, adapter: str) -> None:
    handle = _open(service, tmp_path, adapter, [("a", None, "x0"), ("b", None, "x0")])
    done = _update(service, handle, "a")
    assert (done["previousVersion"], done["newVersion"]) == (0, 1)
    assert _update(service, handle, "b", expectedVersion=0)["newVersion"] == 1
    assert _update(service, handle, "b", expectedVersion=1)["newVersion"] == 2


@pytest.mark.parametrize("adapter", ["sqlite", pytest.param("postgres", marks=PG)])
def test_the_largest_version_is_not_incremented_past_the_bound(
    service: Service, tmp_path: Path, adapter: str
) -> None:
    handle = _open(service, tmp_path, adapter, [("m", 2**31 - 1, "x0")])
    with pytest.raises(DbHandlesError) as info:
        _update(service, handle, "m")
    assert info.value.code == "invalid_params" and info.value.field == "version"
    assert _update(service, handle, "m", incrementVersion=False)["newVersion"] == 2**31 - 1


@pytest.mark.parametrize("adapter", ["sqlite", pytest.param("postgres", marks=PG)])
@pytest.mark.parametrize("target", ["memory", "sqlite"])
def test_a_row_with_a_null_version_is_copied_and_moved_as_a_record_at_version_1(
    service: Service, tmp_path: Path, adapter: str, target: str
) -> None:
    """NULL is version 0 (not versioned yet), so its copy is a record at version 1, as a row of a
    table without the column (copy.md "From a table"); a re-run finds it identical, and a move
    deletes the row it copied."""
    handle = _open(service, tmp_path, adapter, [("a", None, "x0"), ("b", 3, "x1")])
    (tmp_path / "target").mkdir()
    config = adapter_config(target, tmp_path / "target")
    into = service.execute("data/open", {"adapter": target, "config": config})["dbHandle"]
    spec = {"from": {"dbHandle": handle, "collection": "ver"},
            "to": {"dbHandle": into, "collection": "c"}}  # fmt: skip
    assert service.execute("data/copy", spec)["copied"] == 2
    found = service.execute("data/list", {"dbHandle": into, "collection": "c"})["items"]
    assert {r["id"]: (r["version"], r["x"]) for r in found} == {"a": (1, "x0"), "b": (3, "x1")}
    again = service.execute("data/copy", spec)
    assert (again["copied"], again["skipped"], again["conflicts"]) == (0, 2, 0)
    moved = service.execute("data/copy", {**spec, "move": True})
    assert moved["deleted"] == 2
    assert service.execute("data/list", {"dbHandle": handle, "collection": "ver"})["items"] == []
