"""``data/read``'s direct path (``commands/read_path.py``): the same answer, the same audit row and
the same checks as the generic dispatcher, and nothing about access kept between reads: a grant
revoked, a row filter narrowed, a handle closed, an alias re-pointed or a collection dropped and
re-created (through another ``Service`` on the same home: another process, as far as the first
knows) is seen by the very next read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dbhandles import Context, Service
from dbhandles.commands.records import ReadParams
from dbhandles.errors import DbHandlesError
from tests.foreign_rows import run_sql
from tests.freshness_helpers import (
    ADMIN,
    ALICE,
    REVOKED,
    created_elsewhere,
    narrow_alice_to_her_rows,
    notes_granted_to_alice,
    one_record,
    open_file,
    two_services,
)


def _without_time(envelope: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in envelope.items() if k != "timestamp"}


def _audit(service: Service) -> list[dict[str, Any]]:
    """Every audit row but ``data/audit``'s own, oldest first, without their times."""
    rows = service.execute("data/audit", {"limit": 10_000})["entries"]
    return [{k: v for k, v in row.items() if k not in {"at", "time", "timestamp"}}
            for row in reversed(rows)]  # fmt: skip


@pytest.mark.parametrize("context", [None, ADMIN, Context(actor="local", session_id="s1")])
def test_the_direct_read_answers_and_audits_as_the_generic_path(
    tmp_path: Path, context: Context | None
) -> None:
    """A dict of strings takes the direct path, a ``ReadParams`` the generic one: the envelopes
    (keys, order, values) and the audit rows are the same, found or not."""
    with Service(home=tmp_path / "home") as service:
        service.execute(
            "data/create", {"collection": "c", "id": "r1", "data": {"a": [1, {"b": 2}]}}
        )
        for record_id in ("r1", "missing"):
            raw = {"collection": "c", "id": record_id}
            before = len(_audit(service))
            direct = service.execute("data/read", raw, context=context)
            generic = service.execute("data/read", ReadParams.model_validate(raw), context=context)
            assert list(direct) == list(generic)
            assert _without_time(direct) == _without_time(generic)
            rows = _audit(service)[before:]
            reads = [row for row in rows if row.get("command") == "data/read"]
            assert len(reads) == 2 and reads[0] == reads[1], rows


def test_the_direct_path_is_taken_for_plain_params_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Params of plain strings never reach the generic parser; anything else (a number for the
    id, an unknown key, a ``sessionId``) does, with the generic path's answer or refusal."""
    with Service(home=tmp_path / "home") as service:
        service.execute("data/create", {"collection": "c", "id": "7", "data": {}})
        parsed: list[object] = []
        generic = Service._parse

        def spy(command: Any, params: Any) -> Any:
            parsed.append(params)
            return generic(command, params)

        monkeypatch.setattr(Service, "_parse", staticmethod(spy))
        assert service.execute("data/read", {"collection": "c", "id": "7"})["found"] is True
        assert parsed == []
        assert service.execute("data/read", {"collection": "c", "id": 7})["found"] is True
        with pytest.raises(DbHandlesError) as refused:
            service.execute("data/read", {"collection": "c", "id": "7", "bogus": "x"})
        assert refused.value.code == "invalid_params"
        assert len(parsed) == 2


def test_a_failed_direct_read_is_audited_once_with_its_code(tmp_path: Path) -> None:
    """A read through a handle closed since the last read fails with the generic path's error
    and one audit row carrying its code."""
    with Service(home=tmp_path / "home") as service:
        handle = open_file(service, tmp_path / "a.sqlite", Context())
        service.execute(
            "data/create", {"dbHandle": handle, "collection": "c", "id": "r", "data": {}}
        )
        read = {"dbHandle": handle, "collection": "c", "id": "r"}
        assert service.execute("data/read", read)["found"] is True
        service.execute("data/close", {"dbHandle": handle})
        before = len(_audit(service))
        with pytest.raises(DbHandlesError) as closed:
            service.execute("data/read", read)
        assert closed.value.code == "handle_not_found"
        rows = [r for r in _audit(service)[before:] if r.get("command") == "data/read"]
        assert len(rows) == 1 and rows[0]["code"] == "handle_not_found", rows


def test_an_alias_re_pointed_elsewhere_is_followed_by_the_next_read(tmp_path: Path) -> None:
    with two_services(tmp_path) as (service, other):
        for name in ("a", "b"):
            handle = open_file(service, tmp_path / f"{name}.sqlite", Context())
            service.execute("data/create", {"dbHandle": handle, "collection": "c", "id": "r",
                                            "data": {"from": name}})  # fmt: skip
        first = open_file(service, tmp_path / "a.sqlite", Context(), alias="train")
        read = {"dbHandle": "train", "collection": "c", "id": "r"}
        for _ in range(2):
            assert service.execute("data/read", read)["data"]["from"] == "a"
        second = open_file(other, tmp_path / "b.sqlite", Context(), alias="train")
        assert second != first
        answer = service.execute("data/read", read)
        assert answer["dbHandle"] == second and answer["data"]["from"] == "b"


def test_grants_revoked_and_row_filters_narrowed_elsewhere_apply_to_the_next_read(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shared.sqlite"
    with two_services(tmp_path) as (service, other):
        _, mine = notes_granted_to_alice(service, path)

        def read(handle: str, record_id: str) -> dict[str, Any]:
            return service.execute("data/read", {"dbHandle": handle, "collection": "notes",
                                                 "id": record_id}, context=ALICE)  # fmt: skip

        for _ in range(3):
            assert read(mine, "r2")["found"] is True
        other_admin = narrow_alice_to_her_rows(other, path)
        with pytest.raises(DbHandlesError) as closed:  # the narrowing closes her handles
            read(mine, "r2")
        assert closed.value.code == "handle_not_found"
        mine = open_file(service, path, ALICE)
        assert read(mine, "r2")["found"] is False  # the row filter, at once
        assert read(mine, "r1")["found"] is True
        other.execute("data/revoke", {"dbHandle": other_admin, "actor": "alice"}, context=ADMIN)
        with pytest.raises(DbHandlesError) as refused:
            read(mine, "r1")
        assert refused.value.code in REVOKED


def test_a_collection_dropped_and_re_created_elsewhere_is_read_as_it_now_is(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.sqlite"
    with two_services(tmp_path) as (service, other):
        handle = one_record(service, path)
        read = {"dbHandle": handle, "collection": "c", "id": "r"}
        for _ in range(3):  # the statement is kept from the first read on
            assert service.execute("data/read", read)["data"]["v"] == 1
        run_sql(path, 'DROP TABLE "c"')
        assert service.execute("data/read", read)["found"] is False
        created_elsewhere(other, path, "c", "r", {"v": 2})
        assert service.execute("data/read", read)["data"]["v"] == 2
