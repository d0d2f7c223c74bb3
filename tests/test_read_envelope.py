"""The envelope of a read command: records go in as decoded, with the same keys and values.

``success_envelope(..., share_json=True)`` (what ``Service.execute`` uses for read commands) must give
exactly what the model's JSON serializer gives, key order included, for every result model that
declares ``json_fields``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import Service
from dbhandles.commands import builtin_commands
from dbhandles.commands.base import DataResult
from dbhandles.commands.envelope import _wire_plan, success_envelope
from dbhandles.commands.listing import ListResult
from dbhandles.commands.records import ReadResult
from dbhandles.context import Context

RECORD = {
    "id": "r1",
    "messages": [{"role": "user", "content": 'é \u2028 "quoted"'}, {"role": "assistant"}],
    "metadata": {"qualityScore": 0.85, "tokenCount": 12, "topics": ["a", "b"], "git": None},
    "createdAt": "2026-01-01T00:00:00.000Z",
    "updatedAt": "2026-01-01T00:00:00.000Z",
    "version": 1,
}


@pytest.mark.parametrize(
    "result",
    [
        ReadResult(db_handle="h", collection="c", id="r1", data=RECORD, found=True),
        ReadResult(db_handle="h", collection="c", id="r2", data=None, found=False),
        ListResult(
            db_handle="h",
            collection="c",
            items=[RECORD, RECORD],
            count=None,
            has_more=True,
            next_cursor="abc",
        ),
    ],
)
def test_shared_records_give_the_serialized_envelope(result: ReadResult | ListResult) -> None:
    context = Context(session_id="s1")
    shared = success_envelope(result, context, share_json=True)
    serialized = success_envelope(result, context)
    shared.pop("timestamp"), serialized.pop("timestamp")
    assert list(shared) == list(serialized)
    assert orjson.dumps(shared) == orjson.dumps(serialized)


def test_every_json_field_is_a_field_of_its_model() -> None:
    declared = {
        command.result for command in builtin_commands().values() if command.result.json_fields
    }
    assert declared, "no result model declares json_fields"
    for model in declared:
        assert set(model.json_fields) <= set(model.model_fields), model.__name__


def test_a_read_envelope_shares_nothing_with_the_store(tmp_path: Path) -> None:
    with Service(home=tmp_path) as svc:
        handle = svc.execute("data/open", {"adapter": "memory", "config": {}})["dbHandle"]
        fields = {"messages": RECORD["messages"], "metadata": RECORD["metadata"]}
        svc.execute(
            "data/create", {"dbHandle": handle, "collection": "c", "id": "r1", "data": fields}
        )
        first = svc.execute("data/read", {"dbHandle": handle, "collection": "c", "id": "r1"})
        first["data"]["metadata"]["topics"].append("changed by the caller")
        listed = svc.execute("data/list", {"dbHandle": handle, "collection": "c"})
        listed["items"][0]["messages"].clear()
        again = svc.execute("data/read", {"dbHandle": handle, "collection": "c", "id": "r1"})
        assert again["data"]["metadata"]["topics"] == ["a", "b"]
        assert again["data"]["messages"] == RECORD["messages"]


class _Scored(DataResult):
    """A read result with a field the serializer changes (a datetime is written as ISO text)."""

    json_fields = ("items",)

    items: list[dict[str, Any]]
    at: datetime
    note: str | None = None


def test_fields_the_serializer_would_change_still_go_through_it() -> None:
    result = _Scored(db_handle="h", items=[dict(RECORD)], at=datetime(2026, 1, 2, tzinfo=UTC))
    shared = success_envelope(result, share_json=True)
    serialized = success_envelope(result)
    shared.pop("timestamp"), serialized.pop("timestamp")
    assert shared == serialized and shared["at"] == "2026-01-02T00:00:00Z"
    assert list(shared) == list(serialized)


def test_read_and_list_results_are_built_without_the_serializer() -> None:
    # Every field of theirs is a json_field or a type the serializer keeps as it is.
    assert _wire_plan(ReadResult)[1] and _wire_plan(ListResult)[1]
    assert not _wire_plan(_Scored)[1]
