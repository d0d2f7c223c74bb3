"""No caller's text can make its audit row unwritable (issue 14, item 1): control characters and
lone surrogates are escaped by the store, on SQLite and PostgreSQL defaults, and ``sessionId`` /
``queryHandle`` with a control character are refused before anything runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Context, Service, Settings
from dbhandles.store import AuditRow, audit_text
from tests.pgserver import require_postgres, schema_for
from tests.servers import app_client

ADMIN = Context(actor="admin", is_admin=True, session_id="s-admin")


def test_audit_text_escapes_controls_and_lone_surrogates() -> None:
    assert audit_text("plain") == "plain"
    assert audit_text("café") == "café"
    assert audit_text("s1\x00") == "s1\\x00"
    assert audit_text("a\nb\x7f\x85") == "a\\x0ab\\x7f\\x85"
    assert audit_text("a\nb", keep_newlines=True) == "a\nb"
    assert audit_text("x\ud800") == "x\\ud800"
    row = AuditRow(
        "t", "alice", "alice/s\x00", None, "data/list", "read", "c\x00", None, True, None
    )
    assert row.storable().session_id == "alice/s\\x00"
    assert row.storable().collection == "c\\x00"
    clean = AuditRow("t", "alice", "alice/s", None, "data/list", "read", "c", None, True, None)
    assert clean.storable() is clean


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Service]:
    if request.param == "postgres":
        url = f"{require_postgres().url}&schema={schema_for(tmp_path)}"
        settings = Settings(home=tmp_path / "home", default_url=url)
    else:
        settings = Settings(home=tmp_path / "home")
    with Service(settings=settings) as svc:
        yield svc


def _audit(service: Service) -> list[dict[str, Any]]:
    service.audit.flush()
    entries = service.execute("data/audit", {"actor": "alice", "limit": 1000}, context=ADMIN)
    return list(entries["entries"])


def test_a_nul_carrying_request_leaves_an_audit_row(service: Service) -> None:
    token = service.tokens.create("alice")[0]
    headers = {"Authorization": f"Bearer {token}"}
    with app_client(service, require_token=True) as client:

        def post(name: str, **params: Any) -> dict[str, Any]:
            body: dict[str, Any] = client.post(
                f"/commands/{name}", json=params, headers=headers
            ).json()
            return body

        refused = post("data/list", collection="notes", sessionId="s1\x00")
        assert refused["code"] == "invalid_params" and refused["field"] == "sessionId"
        assert "control characters" in refused["error"]
        refused = post("data/query-next", queryHandle="q\x00", sessionId="s1")
        assert refused["code"] == "invalid_params" and refused["field"] == "queryHandle"
        refused = post("data/list", collection="notes\x00", dbHandle="h\x01")
        assert refused["code"] == "invalid_params"
    rows = _audit(service)
    assert [row["command"] for row in rows].count("data/list") == 2
    assert any(row["collection"] == "notes\\x00" for row in rows), rows
    assert all("\x00" not in str(row) for row in rows)


def test_the_store_keeps_rows_with_any_text(service: Service) -> None:
    service.audit.record_call(
        0.0, "alice", "alice/s\x00\ud800", "h\x00", "data/list", "read", "c\x00", "r\x00", None,
        "file:/x\n/y\x00",
    )  # fmt: skip
    (row,) = _audit(service)
    assert row["sessionId"] == "alice/s\\x00\\ud800"
    assert (row["collection"], row["recordId"]) == ("c\\x00", "r\\x00")
