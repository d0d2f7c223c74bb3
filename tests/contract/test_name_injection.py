"""Contract: a hostile name in any name-taking option is refused cleanly and reads nothing it should not.

Every option that names a field (filter keys, ``$elemMatch`` keys, ``orderBy``, ``fields``,
``groupBy``) or a collection is tried with names built to break out of SQL text (quotes, comments,
``;``, ``)``, backslashes, NUL, ``$``, unicode quotes, very long names, the payloads of the issue #14
report), through a handle limited by ``allowedCollections`` and a ``rowFilter``. Every adapter must
answer the same way: a field name that is not an identifier is ``invalid_filter`` (or
``invalid_params``) in a collection, never a ``storage_error`` or an internal error, and no answer
(result or error message) ever holds a row or a collection the handle may not read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.errors import DbHandlesError
from tests.conftest import adapter_config

SECRET = "hunter2-top-secret"
HIDDEN = "hidden-row-secret"

HOSTILE = [
    # The issue #14 reports, SQLite then PostgreSQL.
    "nope' AS dummy, json_quote((SELECT group_concat(data) FROM secrets)) AS xf0, '",
    "nope' AS dummy, json_quote((SELECT group_concat(id) FROM ex)) AS xf0, '",
    "x' -> (SELECT current_user || ' ' || version())::int -> '",
    "x' || pg_read_file('/etc/passwd') || '",
    "a'",
    "a''b",
    'a"b',
    "a' --",
    "a -- comment",
    "a; DROP TABLE secrets",
    "a)",
    "a) OR (1=1",
    "a\\",
    "a\\'b",
    "a\x00b",
    "a$b",
    "$where",
    "a\u2019b",  # right single quotation mark
    "a\u02bcb",  # modifier letter apostrophe
    "a\uff07b",  # fullwidth apostrophe
    "a b",
    "café",
    "content-type",
    "x" * 5000,
    "'" * 300,
]


def _options(name: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each name-taking option, as (command, params) naming ``name``."""
    return {
        "filter key": ("data/list", {"filter": {name: SECRET}}),
        "filter key under $or": ("data/list", {"filter": {"$or": [{"n": 1}, {name: 1}]}}),
        "filter key in $elemMatch": (
            "data/list",
            {"filter": {"tags": {"$elemMatch": {name: {"$exists": True}}}}},
        ),
        "filter key in $not": ("data/list", {"filter": {name: {"$not": {"$eq": 1}}}}),
        "orderBy text": ("data/list", {"orderBy": name}),
        "orderBy field": ("data/list", {"orderBy": [{"field": name, "direction": "desc"}]}),
        "fields": ("data/list", {"fields": [name]}),
        "sample filter": ("data/list", {"sample": 2, "filter": {name: 1}}),
        "query-open filter": ("data/query-open", {"filter": {name: 1}}),
        "query-open orderBy": ("data/query-open", {"orderBy": [{"field": name}]}),
        "count filter": ("data/count", {"filter": {name: 1}}),
        "groupBy": ("data/count", {"groupBy": name}),
        "groupBy list": ("data/count", {"groupBy": ["owner", name]}),
        "groupBy with filter": ("data/count", {"groupBy": [name], "filter": {"n": 1}}),
    }


#: Options refused for every hostile name on every adapter (a collection's fields are identifiers).
REFUSED = {name for name in _options("x") if name != "fields"}


@pytest.fixture
def limited(service: Service, adapter_name: str, tmp_path: Path) -> str:
    """A handle on a database holding ``ex`` (two rows, one hidden by the row filter) and
    ``secrets``, limited to ``ex`` and to the rows of owner ``me``."""
    config = adapter_config(adapter_name, tmp_path)
    if adapter_name == "memory":
        config["name"] = f"injection-{tmp_path.name}"
    full = service.execute("data/open", {"adapter": adapter_name, "config": config})["dbHandle"]
    ops = [
        {"op": "create", "collection": "ex",
         "data": {"id": "mine", "owner": "me", "n": 1, "tags": [{"k": 1}]}},
        {"op": "create", "collection": "ex",
         "data": {"id": "hidden", "owner": "other", "n": 1, "note": HIDDEN, "tags": [{"k": 2}]}},
        {"op": "create", "collection": "secrets", "data": {"id": "s", "pw": SECRET}},
    ]  # fmt: skip
    service.execute("data/batch", {"dbHandle": full, "operations": ops})
    reopen = {k: v for k, v in config.items() if k != "mode"}
    permissions = {"allowedCollections": ["ex"], "rowFilter": {"owner": "me"}}
    opened = service.execute(
        "data/open", {"adapter": adapter_name, "config": reopen, "permissions": permissions}
    )
    return str(opened["dbHandle"])


def _answer(service: Service, command: str, params: dict[str, Any]) -> tuple[str, str]:
    """(error code or "ok", the whole answer as text)."""
    try:
        result = service.execute(command, params)
    except DbHandlesError as exc:
        return exc.code, f"{exc.code}: {exc}"
    return "ok", json.dumps(result, default=str)


def _assert_no_leak(text: str, name: str = "") -> None:
    """No secret row, hidden row or server detail in ``text`` (the hostile ``name`` echoed in an
    error message is left out first: it is the caller's own text)."""
    for echo in (json.dumps(name), repr(name), name):
        if echo:
            text = text.replace(echo, "")
    assert SECRET not in text
    assert HIDDEN not in text
    assert '"hidden"' not in text
    assert "PostgreSQL 1" not in text and "root:" not in text


@pytest.mark.parametrize("name", HOSTILE, ids=lambda n: repr(n)[:40])
def test_a_hostile_field_name_is_refused_on_every_option(
    service: Service, limited: str, name: str
) -> None:
    for option, (command, params) in _options(name).items():
        code, text = _answer(service, command, {"dbHandle": limited, "collection": "ex", **params})
        if command == "data/query-open" and code == "ok":
            # The order is first used by the first page: the refusal may come there.
            handle = json.loads(text)["queryHandle"]
            code, text = _answer(service, "data/query-next", {"queryHandle": handle})
        where = f"{option} {command}: {text[:300]}"
        assert code not in ("storage_error", "internal_error", "query_timeout"), where
        _assert_no_leak(text, name)
        if option in REFUSED:
            assert code in ("invalid_filter", "invalid_params"), where
        elif code == "ok":
            items = json.loads(text)["items"]
            assert [item["id"] for item in items] == ["mine"], where


def test_the_reported_group_by_payloads_read_nothing(service: Service, limited: str) -> None:
    """The issue #14 reproductions, one by one: each is a clean invalid_filter naming groupBy's
    path, on every adapter."""
    for name in HOSTILE[:4]:
        code, text = _answer(
            service, "data/count", {"dbHandle": limited, "collection": "ex", "groupBy": name}
        )
        assert code == "invalid_filter", text
        assert "not a valid field path" in text
        _assert_no_leak(text, name)


@pytest.mark.parametrize("name", HOSTILE, ids=lambda n: repr(n)[:40])
def test_a_hostile_collection_name_reads_nothing(service: Service, limited: str, name: str) -> None:
    calls = [
        ("data/list", {"collection": name}),
        ("data/list", {"collection": name, "filter": {"n": 1}, "orderBy": "-n"}),
        ("data/count", {"collection": name}),
        ("data/count", {"collection": name, "groupBy": "owner"}),
        ("data/read", {"collection": name, "id": "s"}),
        ("data/query-open", {"collection": name}),
        ("data/schema", {"collection": name}),
    ]
    for command, params in calls:
        code, text = _answer(service, command, {"dbHandle": limited, **params})
        assert code not in ("storage_error", "internal_error", "query_timeout"), (command, text)
        assert code in ("invalid_params", "forbidden", "permission_denied", "ok"), (command, text)
        _assert_no_leak(text, name)


def test_the_limited_handle_still_counts_and_lists_its_own_rows(
    service: Service, limited: str
) -> None:
    """The fixture is what the other tests rely on: the handle sees its one row only."""
    listed = service.execute("data/list", {"dbHandle": limited, "collection": "ex"})
    assert [item["id"] for item in listed["items"]] == ["mine"]
    counted = service.execute(
        "data/count", {"dbHandle": limited, "collection": "ex", "groupBy": "tags.k"}
    )
    assert [(g["key"], g["count"]) for g in counted["groups"]] == [({"tags.k": 1}, 1)]
    code, _ = _answer(service, "data/list", {"dbHandle": limited, "collection": "secrets"})
    assert code in ("forbidden", "permission_denied")


@pytest.mark.parametrize("name", ["a'b", "x' || 1 || '", "café", "a b"])
def test_a_hostile_index_path_is_refused(service: Service, db: str, name: str) -> None:
    """Declared indexes name fields too: the same path rule, before any SQL."""
    with pytest.raises(DbHandlesError) as info:
        service.declare("ix", indexes=[name])
    assert info.value.code == "invalid_filter"
    service.declare("ix", indexes=["a", "b.c"])
    service.execute("data/create", {"dbHandle": db, "collection": "ix", "data": {"a": name}})
    assert service.execute("data/count", {"dbHandle": db, "collection": "ix"})["total"] == 1
