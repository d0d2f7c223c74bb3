"""Issue 13: one filter must not freeze the server. ``$regex`` runs in linear time (RE2) on every
adapter, and every query has a time budget (``DBHANDLES_QUERY_TIMEOUT_MS``) that stops it with
``query_timeout``, leaving the service working. The bounds below are generous (seconds): what they
catch is a pattern or a scan that runs for minutes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from dbhandles import InvalidFilter, QueryTimeout, Service
from dbhandles.budget import check, expired, query_budget
from dbhandles.regex import MAX_PROGRAM_SIZE, pattern_problem, search
from dbhandles.settings import Settings
from tests.conftest import ADAPTERS, adapter_config
from tests.servers import ServerProcess

#: System fields as dbhandles writes them (SQLite leaves out a row with others: round 20).
_STAMP = "2024-01-01T00:00:00.000Z"

#: The patterns of the issue: each backtracks exponentially in Python's ``re``.
PATHOLOGICAL = ["(a|a)*$", "(?:a|a)*$", "((a+))+$", "(a|aa)+$", "(a+)+$", "(a+)+", "(.*)*x"]
#: A bound no linear-time match of 31 characters comes near, and any backtracking one exceeds.
QUICK = 3.0

#: A filter that makes every adapter evaluate 100 regexes per record: seconds over 10,000 records.
HEAVY_FILTER = {"$or": [{"text": {"$regex": f"zz{i}(a|b)+q"}} for i in range(100)]}
ROWS = 10_000


def _service(home: Path, timeout_ms: int) -> Service:
    return Service(settings=Settings(home=home, query_timeout_ms=timeout_ms))


def _open(service: Service, adapter: str, tmp_path: Path) -> str:
    config = adapter_config(adapter, tmp_path)
    return str(service.execute("data/open", {"adapter": adapter, "config": config})["dbHandle"])


def _jsonl(path: Path, rows: int) -> Path:
    lines = (f'{{"id": "r{i:05d}", "text": "{f"word{i} " * 8}", "n": {i}}}' for i in range(rows))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(params=ADAPTERS)
def adapter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- linear-time regexes ----------------------------------------------------------------------------


def test_pathological_patterns_finish_quickly(adapter: str, tmp_path: Path) -> None:
    with _service(tmp_path / "home", 10_000) as service:
        handle = _open(service, adapter, tmp_path)
        values = {"full": "a" * 30, "spoilt": "a" * 30 + "!", "short": "b"}
        for record_id, text in values.items():
            service.execute(
                "data/create",
                {
                    "dbHandle": handle,
                    "collection": "items",
                    "id": record_id,
                    "data": {"text": text},
                },
            )
        for pattern in PATHOLOGICAL:
            started = time.monotonic()
            result = service.execute(
                "data/list",
                {"dbHandle": handle, "collection": "items",
                 "filter": {"text": {"$regex": pattern}}},
            )  # fmt: skip
            elapsed = time.monotonic() - started
            assert elapsed < QUICK, (pattern, elapsed)
            everything = ["full", "short", "spoilt"]  # an empty match at the end of any text
            want = {"(a|a)*$": everything, "(?:a|a)*$": everything, "(.*)*x": [],
                    "(a+)+": ["full", "spoilt"]}.get(pattern, ["full"])  # fmt: skip
            assert [item["id"] for item in result["items"]] == want, pattern
            assert result["count"] == len(want)


@pytest.mark.parametrize(
    ("pattern", "what"),
    [
        (r"(a)\1", "backreference"),
        ("a(?=b)", "look-ahead"),
        ("(?<!a)b", "look-behind"),
        (r"a\Z", r"\Z (RE2 spells it \z)"),
        (r"\C", r"\C"),
        ("(?P<n>a)(?P=n)", "named backreference"),
        ("a++", "possessive quantifier"),
    ],
)
def test_patterns_re2_refuses_are_invalid_filters_naming_the_field(
    service: Service, pattern: str, what: str
) -> None:
    with pytest.raises(InvalidFilter) as caught:
        service.execute(
            "data/list", {"collection": "items", "filter": {"name": {"$regex": pattern}}}
        )
    assert caught.value.code == "invalid_filter", what
    assert caught.value.field == "filter.name.$regex"
    assert "filter.name.$regex" in caught.value.message and "RE2" in caught.value.message


def test_re2_semantics_are_the_same_on_every_adapter(adapter: str, tmp_path: Path) -> None:
    """The documented syntax (docs/filters.md), where it differs from Python's ``re``."""
    cases = {
        "a$": ("a\n", False),  # no match before a final newline
        r"a\z": ("a", True),
        r"(?i)k": ("\u212a", True),  # Unicode simple case folding: the Kelvin sign
        r"\d": ("\u0663", False),  # \d is ASCII
        r"\w": ("é", False),  # so is \w
        r"\bé": ("é", False),  # and \b
        r"\pL": ("é", True),
        "a{,2}": ("a{,2}", True),  # {,n} is literal text
        r"(?s).": ("\n", True),
        ".": ("\n", False),
    }
    with _service(tmp_path / "home", 10_000) as service:
        handle = _open(service, adapter, tmp_path)
        for i, (pattern, (text, matches)) in enumerate(cases.items()):
            service.execute(
                "data/create",
                {"dbHandle": handle, "collection": "c", "id": f"r{i}", "data": {"text": text}},
            )
            result = service.execute(
                "data/list",
                {"dbHandle": handle, "collection": "c",
                 "filter": {"id": f"r{i}", "text": {"$regex": pattern}}},
            )  # fmt: skip
            assert result["count"] == int(matches), (pattern, text)


# -- the time budget --------------------------------------------------------------------------------


def test_a_slow_query_ends_with_query_timeout_and_the_service_carries_on(
    adapter: str, tmp_path: Path
) -> None:
    # Imports are long jobs: a budget far too small for any query does not cut them.
    with _service(tmp_path / "home", 200) as service:
        handle = _open(service, adapter, tmp_path)
        source = _jsonl(tmp_path / "rows.jsonl", ROWS)
        imported = service.execute(
            "data/import", {"dbHandle": handle, "input": str(source), "collection": "items"}
        )
        assert imported["imported"] == ROWS
        for command in ("data/list", "data/query-open"):
            started = time.monotonic()
            with pytest.raises(QueryTimeout) as caught:
                service.execute(
                    command, {"dbHandle": handle, "collection": "items", "filter": HEAVY_FILTER}
                )
            # A bound against a hang (60 s), not a speed check: a loaded CI machine may take seconds.
            assert time.monotonic() - started < 20 * QUICK, command
            assert caught.value.code == "query_timeout"
            assert caught.value.http_status == 504
            assert "200 ms" in caught.value.message
            assert "DBHANDLES_QUERY_TIMEOUT_MS" in caught.value.message
        # The same database and service serve the next commands.
        page = service.execute(
            "data/list", {"dbHandle": handle, "collection": "items", "limit": 2, "skipCount": True}
        )
        assert [item["id"] for item in page["items"]] == ["r00000", "r00001"]
        read = service.execute(
            "data/read", {"dbHandle": handle, "collection": "items", "id": "r00042"}
        )
        assert read["data"]["n"] == 42
        service.execute(
            "data/create",
            {"dbHandle": handle, "collection": "items", "id": "new", "data": {"n": -1}},
        )
        found = service.execute(
            "data/list", {"dbHandle": handle, "collection": "items", "filter": {"id": "new"}}
        )
        assert found["count"] == 1


def test_the_budget_stops_a_statement_where_it_runs(adapter: str, tmp_path: Path) -> None:
    """At the adapter: the deadline interrupts the statement itself (not only the next one)."""
    from dbhandles.adapters import get_adapter_class
    from dbhandles.adapters.base import Query, Session
    from dbhandles.filters import parse_filter

    cls = get_adapter_class(adapter)
    database = cls(cls.prepare(cls.parse_config(adapter_config(adapter, tmp_path))))
    try:
        with database.session(write=True) as session:
            session.insert_many(
                "items",
                [{"id": f"r{i:05d}", "text": f"word{i} " * 8, "createdAt": _STAMP, "updatedAt": _STAMP,
                  "version": 1} for i in range(ROWS)],
            )  # fmt: skip
        heavy = parse_filter(HEAVY_FILTER)
        runs: dict[str, Callable[[Session], object]] = {
            "count": lambda session: session.count("items", heavy),
            "find": lambda session: session.find("items", Query(heavy, limit=10)),
        }
        for name, run in runs.items():
            started = time.monotonic()
            with pytest.raises(QueryTimeout), query_budget(300), database.session() as session:
                run(session)
            assert time.monotonic() - started < 20 * QUICK, name
        with database.session() as session:  # no budget: the connection works as before
            assert session.count("items", parse_filter({"text": {"$regex": "^word7 "}})) == 1
    finally:
        database.close()


def test_a_zero_budget_means_none(tmp_path: Path) -> None:
    with _service(tmp_path / "home", 0) as service:
        handle = _open(service, "memory", tmp_path)
        service.execute("data/import", {"dbHandle": handle, "input": str(_jsonl(tmp_path / "r.jsonl", 300)),
                                        "collection": "items"})  # fmt: skip
        result = service.execute(
            "data/list", {"dbHandle": handle, "collection": "items", "filter": HEAVY_FILTER}
        )
        assert result["count"] == 0


def test_the_budget_is_a_setting() -> None:
    assert Settings().query_timeout_ms == 10_000
    assert Settings.from_env({"DBHANDLES_QUERY_TIMEOUT_MS": "250"}).query_timeout_ms == 250


# -- the server stays responsive --------------------------------------------------------------------


@pytest.fixture
def slow_database(tmp_path: Path) -> Path:
    """An SQLite file holding ``ROWS`` records, written before the server starts."""
    from dbhandles.adapters.sqlite import SqliteAdapter

    path = tmp_path / "data" / "slow.sqlite"
    config = SqliteAdapter.parse_config({"path": str(path), "mode": "create"})
    database = SqliteAdapter(SqliteAdapter.prepare(config))
    try:
        with database.session(write=True) as session:
            session.insert_many(
                "items",
                [{"id": f"r{i:05d}", "text": "a" * 24 + "!" if i % 2 else f"word{i} " * 8,
                  "createdAt": _STAMP, "updatedAt": _STAMP, "version": 1} for i in range(ROWS)],
            )  # fmt: skip
    finally:
        database.close()
    return path


@pytest.mark.needs_server
def test_health_answers_while_a_regex_query_runs(tmp_path: Path, slow_database: Path) -> None:
    from dbhandles import Client

    server = ServerProcess(tmp_path / "home")
    server.env["DBHANDLES_QUERY_TIMEOUT_MS"] = "2000"
    with server, Client(server.url, server.token) as client:
        handle = client.execute(
            "data/open", {"adapter": "sqlite", "config": {"path": str(slow_database)}}
        )["dbHandle"]
        # The issue's filter: with Python's re, 24 characters took /health 5-12 s to answer.
        started = time.monotonic()
        issue = client.execute(
            "data/list",
            {"dbHandle": handle, "collection": "items", "filter": {"text": {"$regex": "(a|aa)+$"}}},
        )
        assert issue["count"] == 0 and time.monotonic() - started < QUICK

        answer: dict[str, Any] = {}

        def heavy() -> None:
            response = httpx.post(
                f"{server.url}/commands/data/list",
                json={"dbHandle": handle, "collection": "items", "filter": HEAVY_FILTER},
                headers={"Authorization": f"Bearer {server.token}"},
                timeout=60,
            )
            answer.update(status=response.status_code, body=response.json())

        worker = threading.Thread(target=heavy)
        worker.start()
        time.sleep(0.2)  # the query is running now
        latencies = []
        while worker.is_alive():
            started = time.monotonic()
            health = httpx.get(f"{server.url}/health", timeout=10)
            latencies.append(time.monotonic() - started)
            assert health.status_code == 200
            time.sleep(0.05)
        worker.join()
        assert latencies, "the query ended before /health was asked"
        assert max(latencies) < QUICK, latencies
        # ...and the budget stopped it, with its code and status.
        assert answer["status"] == 504
        assert answer["body"]["code"] == "query_timeout"
        # Another command of the same actor works at once.
        page = client.execute(
            "data/list", {"dbHandle": handle, "collection": "items", "limit": 1, "skipCount": True}
        )
        assert [item["id"] for item in page["items"]] == ["r00000"]


# -- the cost of one match -------------------------------------------------------------------------

#: Linear, but one RE2 search of a 1 MB value takes 20 to 40 s: no clock check can interrupt it.
COSTLY = ["(?:a?){999}a{999}x", "(?:.?){999}x"]


def test_a_match_that_cannot_finish_in_the_budget_ends_the_query(
    adapter: str, tmp_path: Path
) -> None:
    """A pattern whose match over a long value would outlast the budget is stopped before that
    match starts (``query_timeout``); PostgreSQL refuses these repetition counts outright."""
    expected = ("invalid_filter", "query_timeout") if adapter == "postgres" else ("query_timeout",)
    with _service(tmp_path / "home", 3_000) as service:
        handle = _open(service, adapter, tmp_path)
        values = {"a1": "a" * 1_000_000, "a2": "a" * 1_000_000, "cyrillic": "я" * 300_000}
        for record_id, text in values.items():
            service.execute(
                "data/create",
                {"dbHandle": handle, "collection": "items", "id": record_id, "data": {"t": text}},
            )
        for pattern in COSTLY:
            for command in ("data/list", "data/count"):
                refused = service.dispatch(
                    command,
                    {
                        "dbHandle": handle,
                        "collection": "items",
                        "filter": {"t": {"$regex": pattern}},
                    },
                )
                assert refused.get("code") in expected, (pattern, command, refused)
        # The same handle answers the next query.
        found = service.execute(
            "data/list",
            {"dbHandle": handle, "collection": "items", "filter": {"t": {"$regex": "^a{200}"}},
             "fields": ["id"]},
        )  # fmt: skip
        assert [item["id"] for item in found["items"]] == ["a1", "a2"]


def test_a_large_program_that_runs_fast_on_long_values_still_answers(
    adapter: str, tmp_path: Path
) -> None:
    """Unicode classes make large programs that RE2 still runs fast: timed samples let them run
    where their worst case would not fit."""
    with _service(tmp_path / "home", 10_000) as service:
        handle = _open(service, adapter, tmp_path)
        values = {"hit": "я" * 300_000 + "x", "miss": "я" * 300_000, "short": "ab1x"}
        for record_id, text in values.items():
            service.execute(
                "data/create",
                {"dbHandle": handle, "collection": "items", "id": record_id, "data": {"t": text}},
            )
        for pattern, want in ((r"[\pL\pN]{16}x", ["hit"]), (r"\pL+x", ["hit"]),
                              (r"[\pL\pN]{3}x", ["hit", "short"])):  # fmt: skip
            found = service.execute(
                "data/list",
                {"dbHandle": handle, "collection": "items", "filter": {"t": {"$regex": pattern}},
                 "fields": ["id"], "orderBy": ["id"]},
            )  # fmt: skip
            assert sorted(item["id"] for item in found["items"]) == want, pattern


@pytest.mark.parametrize(
    "pattern", [r"(?i)[\pL\pN]{300}x", r"\pL{100}", r"(?:[\pL\pN]{50}){3}", r"(?s).{1000}\pL{80}"]
)
def test_patterns_with_too_large_a_program_are_invalid_filters(
    service: Service, pattern: str
) -> None:
    # Refused when the filter is parsed: the same on every adapter, PostgreSQL included.
    with pytest.raises(InvalidFilter) as caught:
        service.execute(
            "data/list", {"collection": "items", "filter": {"name": {"$regex": pattern}}}
        )
    assert caught.value.field == "filter.name.$regex"
    assert "pattern too complex (program size" in caught.value.message
    assert f"> {MAX_PROGRAM_SIZE})" in caught.value.message


def test_the_program_size_limit_keeps_ordinary_patterns() -> None:
    for pattern in (r"\pL{80}", ".{1000}", r"\d{1000}", "x" * 1000, r"(?i)^[\pL\pN_.-]+@\w+"):
        assert pattern_problem(pattern) is None, pattern


def test_a_stopped_match_spends_the_budget() -> None:
    """What SQLite's ``regexp`` relies on: after ``search`` stopped a match, the budget says so."""
    with query_budget(2_000):
        assert not expired()
        with pytest.raises(QueryTimeout):
            search(COSTLY[0], "a" * 5_000_000)
        assert expired()
        with pytest.raises(QueryTimeout):
            check()
    assert not expired()  # the block's end undoes it
    assert search("a{3}", "a" * 5_000_000)  # no budget: no weighing
