"""Issue #12, outside round 15: a row another tool wrote as no JSON object dbhandles can read
(a lone surrogate, ``1e400``, unquoted keys) behind a row filter. The filter cannot be tested on it,
so every id door (data/read on both of its paths, update, delete, batch update and delete) answers
it exactly as a missing id: no existence oracle, no 500. Without a row filter ``data/read`` names
the record with ``query_failed`` (409), never ``storage_error`` (500) (docs/security.md section 5,
docs/filters.md "Values")."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from tests.unreadable_rows import ID_DOORS, answer_without_id, id_doors

#: What another tool wrote; every row names bob as its owner, as far as a reader could tell.
UNREADABLE = ['{"owner": "bob", "s": "\\ud800"}', '{"owner": "bob", "n": 1e400}', '{owner: "bob"}']
#: The ids a row-filtered handle must answer alike: hidden (bob's readable row), missing, and
#: each unreadable row. Numeric ids take ``data/read``'s generic path (``read_path`` takes only
#: plain strings), string ids its direct one.
HIDDEN, MISSING = "1", "2"
UNREADABLE_IDS = [str(10 + i) for i in range(len(UNREADABLE))]


def _database(service: Service, path: Path) -> None:
    db = service.execute("data/open", {"adapter": "sqlite",
                                       "config": {"path": str(path), "mode": "create"}})["dbHandle"]  # fmt: skip
    for record_id, owner in (
        ("0", "alice"),
        (HIDDEN, "bob"),
        *((i, "bob") for i in UNREADABLE_IDS),
    ):
        service.execute("data/create", {"dbHandle": db, "collection": "c", "id": record_id,
                                        "data": {"owner": owner}})  # fmt: skip
    service.execute("data/close", {"dbHandle": db})
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "UPDATE c SET data = ? WHERE id = ?", list(zip(UNREADABLE, UNREADABLE_IDS, strict=True))
        )
    conn.close()


def _handle(service: Service, path: Path, **permissions: Any) -> str:
    params: dict[str, Any] = {"adapter": "sqlite", "config": {"path": str(path)}}
    if permissions:
        params["permissions"] = permissions
    return str(service.execute("data/open", params)["dbHandle"])


def _doors(db: str, record_id: str, numeric: bool) -> dict[str, tuple[str, dict[str, Any]]]:
    given: Any = int(record_id) if numeric else record_id
    return id_doors(db, record_id, given=given, data={"owner": "alice"})


@pytest.mark.parametrize("numeric", [False, True])
@pytest.mark.parametrize("door", ID_DOORS)
def test_an_unreadable_row_behind_a_row_filter_answers_as_a_missing_id(
    service: Service, tmp_path: Path, door: str, numeric: bool
) -> None:
    path = tmp_path / "d.sqlite"
    _database(service, path)
    db = _handle(service, path, rowFilter={"owner": "alice"})
    missing = answer_without_id(service, *_doors(db, MISSING, numeric)[door], MISSING)
    assert "storage_error" not in missing and "query_failed" not in missing
    for record_id in (HIDDEN, *UNREADABLE_IDS):
        assert (
            answer_without_id(service, *_doors(db, record_id, numeric)[door], record_id) == missing
        ), record_id
    # Nothing was written: the rows are still there, as the other tool wrote them.
    with sqlite3.connect(path) as conn:
        rows = dict(conn.execute("SELECT id, data FROM c").fetchall())
    conn.close()
    assert [rows[i] for i in UNREADABLE_IDS] == UNREADABLE


def test_an_unreadable_row_without_a_row_filter_is_query_failed_naming_it(
    service: Service, tmp_path: Path
) -> None:
    path = tmp_path / "d.sqlite"
    _database(service, path)
    db = _handle(service, path)
    for record_id in UNREADABLE_IDS:
        for given in (record_id, int(record_id)):  # the direct path and the generic one
            envelope = service.dispatch(
                "data/read", {"dbHandle": db, "collection": "c", "id": given}
            )
            assert envelope["code"] == "query_failed", envelope
            assert f'record "{record_id}" of collection "c"' in envelope["error"]
        # A write that reads the record first names it the same way, and writes nothing.
        envelope = service.dispatch("data/update", {"dbHandle": db, "collection": "c",
                                                    "id": record_id, "data": {"n": 2}})  # fmt: skip
        assert envelope["code"] == "query_failed", envelope
