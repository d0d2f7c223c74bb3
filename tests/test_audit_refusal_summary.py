"""Issue 13: refusals before authentication are summarised in the audit log, and the audit log never
counts against a user's quota (docs/security.md, "Audit log").

A flood of refused requests (no token, a bad token, a wrong ``Host``, another site's page) writes one
row per (address, claimed actor, code) and window at once, and one summary row carrying the count of
the rest when the window closes (or at shutdown): O(windows) rows, with the right counts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service, Settings
from dbhandles.security import audit
from dbhandles.security.audit import MAX_REFUSAL_KEYS, REFUSAL_WINDOW_SECONDS, AuditLog
from tests.servers import app_client

#: The text of a summary row's ``target`` (``AuditLog.close_windows``).
SUMMARY = re.compile(r"summary: (\d+) more refusals from (.+) between (\S+) and (\S+)")


def auth_rows(service: Service) -> list[dict[str, Any]]:
    service.audit.flush()
    rows = service.execute("data/audit", {"operation": "auth", "limit": 5000})
    return list(reversed(rows["entries"]))  # oldest first, as written


def counted(rows: list[dict[str, Any]]) -> int:
    """How many refusals the rows stand for: 1 per first row, the count of each summary row."""
    total = 0
    for row in rows:
        found = SUMMARY.fullmatch(row["target"] or "")
        total += int(found.group(1)) if found else 1
    return total


@pytest.fixture
def service(tmp_path: Path) -> Any:
    # No public rate: past its burst, refusals before authentication are its 429s, not audited.
    svc = Service(settings=Settings(home=tmp_path / "home", public_rate=0))
    try:
        yield svc
    finally:
        svc.close()


def test_a_flood_of_requests_without_a_token_writes_two_rows_with_its_count(
    service: Service,
) -> None:
    flood = 300
    with app_client(service, require_token=True) as client:
        for _ in range(flood):
            assert client.post("/commands/data/list", json={}).status_code == 401
        assert len(auth_rows(service)) == 1  # the first at once, the rest counted
    service.audit.close_windows(every=True)
    rows = auth_rows(service)
    assert [(r["actor"], r["code"], r["command"]) for r in rows] == [
        ("anonymous", "unauthorized", "data/list")
    ] * 2
    assert counted(rows) == flood
    assert SUMMARY.fullmatch(rows[-1]["target"]).group(1) == str(flood - 1)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("headers", "actor", "code"),
    [
        ({"Authorization": "Bearer not-a-token"}, "invalid-token", "unauthorized"),
        ({"Authorization": "Bearer dbh_abcdefgh_secret"}, None, "unauthorized"),
        ({"Host": "evil.example"}, "anonymous", "forbidden"),
        ({"Origin": "http://evil.example"}, "anonymous", "forbidden"),
    ],
    ids=["bad-token", "unknown-token-id", "wrong-host", "cross-site"],
)
def test_every_refusal_at_the_door_is_summarised(
    service: Service, headers: dict[str, str], actor: str | None, code: str
) -> None:
    flood = 50
    with app_client(service, require_token=True) as client:
        for _ in range(flood):
            assert client.post("/commands/data/list", json={}, headers=headers).status_code in (
                401,
                403,
            )
    service.audit.close_windows(every=True)
    rows = auth_rows(service)
    assert len(rows) == 2, rows
    assert {r["code"] for r in rows} == {code}
    if actor is not None:
        assert {r["actor"] for r in rows} == {actor}
    assert counted(rows) == flood


def test_windows_close_by_time_and_a_new_window_writes_its_first_row_at_once(
    tmp_path: Path,
) -> None:
    service = Service(settings=Settings(home=tmp_path / "home"))
    log = service.audit
    try:
        t0 = 1_000_000.0
        for i in range(10):
            log.record_refusal(
                "anonymous", "data/list", "unauthorized", address="10.0.0.1", at=t0 + i
            )
        log.record_refusal("anonymous", "data/list", "unauthorized", address="10.0.0.2", at=t0)
        assert log.close_windows(t0 + REFUSAL_WINDOW_SECONDS - 1) == 0  # still open
        # The window of 10.0.0.1 counted 9 more; 10.0.0.2's counted none: no summary row.
        assert log.close_windows(t0 + REFUSAL_WINDOW_SECONDS) == 1
        log.record_refusal(
            "anonymous", "data/list", "unauthorized", address="10.0.0.1",
            at=t0 + REFUSAL_WINDOW_SECONDS + 1,
        )  # fmt: skip
        rows = auth_rows(service)
        assert [r["target"] for r in rows[:2]] == ["from 10.0.0.1", "from 10.0.0.2"]
        found = SUMMARY.fullmatch(rows[2]["target"])
        assert found is not None and found.group(1, 2) == ("9", "10.0.0.1")
        assert rows[3]["target"] == "from 10.0.0.1"  # the next window's first, written at once
        assert len(rows) == 4
    finally:
        service.close()


def test_forged_token_ids_fold_into_one_key_and_are_never_dropped(service: Service) -> None:
    log = service.audit
    extra = 500
    for i in range(MAX_REFUSAL_KEYS + extra):
        log.record_refusal(f"token:{i:08d}", "data/list", "unauthorized", at=1_000_000.0 + i / 1e3)
    log.close_windows(every=True)
    rows = auth_rows(service)
    # One row per key up to the bound, then one first row and one summary for the rest.
    assert len(rows) == MAX_REFUSAL_KEYS + 2
    assert counted(rows) == MAX_REFUSAL_KEYS + extra
    assert {r["actor"] for r in rows[-2:]} == {audit.OTHER}


def test_close_writes_the_open_windows(tmp_path: Path) -> None:
    home = tmp_path / "home"
    service = Service(settings=Settings(home=home))
    for _ in range(5):
        service.audit.record_refusal("anonymous", "GET /", "forbidden", address="10.0.0.9")
    service.close()
    again = Service(settings=Settings(home=home))
    try:
        rows = auth_rows(again)
        assert counted(rows) == 5 and len(rows) == 2
    finally:
        again.close()


def test_a_disabled_log_writes_no_refusal(tmp_path: Path) -> None:
    service = Service(settings=Settings(home=tmp_path / "h", audit=False))
    try:
        log = service.audit
        assert isinstance(log, AuditLog) and not log.enabled
        log.record_refusal("anonymous", "data/list", "unauthorized")
        assert log.close_windows(every=True) == 0
    finally:
        service.close()


def test_the_audit_log_never_counts_against_the_quota(tmp_path: Path) -> None:
    """``DBHANDLES_MAX_DB_BYTES`` bounds the actors' data: a default database that holds a large
    audit log (and handle tables) still takes writes while its own collections are small."""
    quota = 3_000_000
    home = tmp_path / "home"
    service = Service(settings=Settings(home=home, max_db_bytes=quota))
    try:
        start = service.registry.store.own_bytes()
        # Rows as many as a flood of distinct refusals could leave: well past the quota.
        text = "x" * 900
        batch = [(1_000_000.0 + i, f"token:{i:08d}", None, None, text, "auth", None, None,
                  "unauthorized", None) for i in range(500)]  # fmt: skip
        while service.registry.store.own_bytes() - start < 2 * quota:
            for row in batch:
                service.audit.record(row)
            service.audit.flush()
        created = service.dispatch(
            "data/create", {"collection": "notes", "id": "n1", "data": {"a": 1}}
        )
        assert created["success"] is True, created
    finally:
        service.close()


def test_the_quota_still_bounds_the_actors_data(tmp_path: Path) -> None:
    from dbhandles.errors import QuotaExceeded

    service = Service(settings=Settings(home=tmp_path / "home", max_db_bytes=200_000))
    try:
        blob = "y" * 50_000
        written = 0
        for i in range(400):  # 20 MB: past a checkpoint of the write-ahead log (4 MB)
            answer = service.dispatch(
                "data/create", {"collection": "big", "id": f"b{i}", "data": {"b": blob}}
            )
            if not answer["success"]:
                assert answer["code"] == QuotaExceeded.code, answer
                assert "over the quota of 200000" in answer["error"], answer
                break
            written += 1
        assert 2 <= written < 400  # the records count: refused once they pass the quota
    finally:
        service.close()


def test_a_refusal_through_the_server_names_its_client_address(service: Service) -> None:
    """The front doors pass the request's client address (``http.client_address``: the test
    client's peer is ``testclient``), so an administrator sees who knocked: a missing token, a bad
    token and another site's page alike."""
    with app_client(service, require_token=True) as client:
        assert client.post("/commands/data/list", json={}).status_code == 401
        bad = {"Authorization": "Bearer not-a-token"}
        assert client.post("/commands/data/read", json={}, headers=bad).status_code == 401
        site = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
        assert client.post("/commands/data/count", json={}, headers=site).status_code == 403
    rows = auth_rows(service)
    assert len(rows) == 3
    assert {r["target"] for r in rows} == {"from testclient"}
