"""What the dispatcher decides once (``service._Plan`` per command, the sessions ``check_session``
accepted): the size quota still guards every call that may write, a batch's by its operations, the
calls that only read still answer, and a session accepted for one actor is not another's."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from dbhandles import InvalidParams, Service
from dbhandles.context import Context
from dbhandles.settings import Settings


def _full(tmp_path: Path) -> tuple[Service, str]:
    """A service with a 64 KiB quota and a handle whose database is past it."""
    service = Service(settings=Settings(home=tmp_path / "home", max_db_bytes=64 * 1024))
    handle = service.execute(
        "data/open",
        {"adapter": "sqlite", "config": {"path": str(tmp_path / "db.sqlite"), "mode": "create"}},
    )["dbHandle"]
    for i in range(200):
        envelope = service.dispatch(
            "data/create",
            {"dbHandle": handle, "collection": "c", "id": f"r{i}", "data": {"pad": "x" * 2000}},
        )
        if not envelope["success"]:
            assert envelope["code"] == "quota_exceeded"
            return service, handle
    raise AssertionError("the quota never refused a write")


def test_a_batch_that_writes_is_refused_past_the_quota(tmp_path: Path) -> None:
    service, handle = _full(tmp_path)
    with service:
        for op in ({"op": "create", "collection": "c", "data": {"a": 1}},
                   {"op": "update", "collection": "c", "id": "r0", "data": {"a": 1}},
                   {"op": "delete", "collection": "c", "id": "r0"}):  # fmt: skip
            refused = service.dispatch("data/batch", {"dbHandle": handle, "operations": [op]})
            assert refused["code"] == "quota_exceeded", op
        # Asked again after the plans were made: still refused.
        again = service.dispatch(
            "data/create", {"dbHandle": handle, "collection": "c", "data": {"a": 1}}
        )
        assert again["code"] == "quota_exceeded"


def test_reads_answer_past_the_quota(tmp_path: Path) -> None:
    service, handle = _full(tmp_path)
    with service:
        read = service.execute("data/read", {"dbHandle": handle, "collection": "c", "id": "r0"})
        assert read["found"] is True
        listed = service.execute("data/list", {"dbHandle": handle, "collection": "c", "limit": 2})
        assert listed["items"][0]["id"] == "r0"


@pytest.mark.parametrize("times", [1, 3])
def test_a_session_accepted_once_stays_its_actors_only(tmp_path: Path, times: int) -> None:
    # check_session keeps the (session id, actor) pairs it accepted: another actor's use of the
    # same scoped id, and an id that is no session id, are refused every time.
    with Service(home=tmp_path / "home") as service:
        params = {"collection": "c", "limit": 1}
        alice = Context(actor="alice", session_id="alice/s1", is_admin=True, trusted_local=False)
        bob = Context(actor="bob", session_id="alice/s1", is_admin=True, trusted_local=False)
        odd = Context(actor="alice", session_id=["alice/s1"], is_admin=True)  # type: ignore[arg-type]
        for _ in range(times):
            assert service.execute("data/list", params, context=alice)["success"]
            for refused in (bob, odd, replace(alice, session_id="alice/s 1")):
                with pytest.raises(InvalidParams) as caught:
                    service.execute("data/list", params, context=refused)
                assert caught.value.field == "sessionId"


def test_a_plan_is_made_again_for_another_command_under_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command put under a name that already has a plan (tests do) gets a plan of its own: one
    that now writes is quota-checked, and its session param is still checked."""
    from dbhandles.commands import COMMANDS

    service, handle = _full(tmp_path)
    with service:
        read = {"dbHandle": handle, "collection": "c", "id": "r0"}
        assert service.execute("data/read", read)["found"] is True
        monkeypatch.setitem(
            COMMANDS, "data/read", replace(COMMANDS["data/read"], operation="write")
        )
        envelope = service.dispatch("data/read", read)
        assert envelope["code"] == "quota_exceeded", envelope
        assert service._plans["data/read"].command is COMMANDS["data/read"]


def test_a_session_named_in_the_params_is_still_checked(tmp_path: Path) -> None:
    """The plan runs ``caller_context`` only when a ``sessionId`` is sent: one that is not the
    call's own session is refused, one sent without a session of its own names the call's."""
    with Service(home=tmp_path / "home") as service:
        params = {"collection": "c", "id": "x", "sessionId": "s1"}
        refused = service.dispatch("data/read", params, context=Context(session_id="s2"))
        assert refused["code"] == "session_mismatch", refused
        assert service.dispatch("data/read", params)["success"] is True
        assert service.dispatch("data/read", {"collection": "c", "id": "x"})["success"] is True
