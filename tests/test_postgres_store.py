"""``PostgresHandleStore`` behaves like ``SqliteHandleStore``, and is safe to share between processes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from dbhandles import HandleNotFound, Service, Settings
from dbhandles.adapters.postgres import PostgresAdapter
from dbhandles.adapters.postgres_config import PostgresConfig
from dbhandles.store import (
    AuditRow,
    CursorRow,
    HandleRow,
    HandleStore,
    SqliteHandleStore,
    TokenRow,
)
from dbhandles.store.postgres import PostgresHandleStore
from tests.pgserver import postgres_config, require_postgres

pytestmark = pytest.mark.postgres


def _pg_config(tmp_path: Path) -> PostgresConfig:
    config = PostgresAdapter.parse_config(postgres_config(tmp_path))
    assert isinstance(config, PostgresConfig)
    return config


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HandleStore]:
    made: HandleStore = (
        SqliteHandleStore(tmp_path / "default.sqlite")
        if request.param == "sqlite"
        else PostgresHandleStore(_pg_config(tmp_path))
    )
    try:
        yield made
    finally:
        made.close()


def test_a_handle_is_found_by_its_files_path(store: HandleStore) -> None:
    """``has_handle_on``: only a handle whose ``config.path`` is exactly the path (LIKE's ``%``,
    ``_`` and ``\\`` are plain characters; a non-ASCII path is compared too)."""
    paths = ["/d/a_b.json", "/d/100%.sqlite", "/d/back\\slash.json", "/d/é.json"]
    for n, path in enumerate(paths):
        store.put_handle(HandleRow(f"h{n}", "json", {"path": path, "mode": "create"}, n, n))
    for path in paths:
        assert store.has_handle_on(path), path
    for other in ["/d/aXb.json", "/d/100x.sqlite", "/d/a_b.jso", "/d/back", "/d/e.json", "/d"]:
        assert not store.has_handle_on(other), other


def _cursor(page: int = 0, position: list[object] | None = None) -> CursorRow:
    return CursorRow("q1", "h1", "c", {"filter": {"b": 1, "a": 1e16}, "orderBy": []}, position,
                     page, 10, 5, False, "s1", 10**13)  # fmt: skip


def test_handles_and_aliases(store: HandleStore) -> None:
    config = {"url": "postgresql://x/y", "port": 5432, "ratio": 1e16}
    store.put_handle(
        HandleRow("h1", "memory", config, 1, 1, True, "ann", {"read": True}), alias="first"
    )
    store.put_handle(HandleRow("h2", "memory", {}, 2, 2, False))
    assert store.get_handle("first") == HandleRow(
        "h1", "memory", config, 1, 1, True, "ann", {"read": True}
    )
    assert type(store.get_handle("h1").config["ratio"]) is float  # type: ignore[union-attr]
    assert [h.handle for h in store.list_handles()] == ["h1", "h2"]
    store.set_alias("first", "h2")
    store.set_alias("other", "h1")
    assert store.aliases() == {"first": "h2", "other": "h1"}
    store.touch("h1", 50)
    store.touch("h1", 40)
    assert store.get_handle("h1").last_used_at == 50  # type: ignore[union-attr]
    store.put_cursor(_cursor())
    assert store.delete_handle("h1") is True and store.delete_handle("h1") is False
    assert store.get_handle("other") is None and store.get_cursor("q1") is None
    store.delete_aliases("h2")
    assert store.aliases() == {}


def test_cursors_compare_and_swap(store: HandleStore) -> None:
    first = _cursor()
    store.put_cursor(first)
    assert store.get_cursor("q1") == first
    second = _cursor(1, [[2, 9007199254740993], [3, "r04"], [2, 4.61168601842739e18]])
    assert store.advance_cursor(first, second) is True
    assert store.advance_cursor(first, _cursor(1, [[3, "other"]])) is False
    stored = store.get_cursor("q1")
    assert stored == second and stored is not None
    assert [type(v) for _, v in stored.position or []] == [int, str, float]  # exact, as it went in
    assert store.delete_session_cursors("s1") == 1
    store.put_cursor(_cursor())
    assert store.expire_cursors(10**14) == 1 and store.delete_cursor("q1") is False


def test_audit_and_tokens(store: HandleStore) -> None:
    rows = [
        AuditRow(f"2024-01-01T00:00:0{i}Z", "ann" if i % 2 else "bob", None, "h", "data/list",
                 "read", "c", None, True, None)
        for i in range(4)
    ]  # fmt: skip
    store.append_audit(rows)
    assert store.query_audit(actor="ann") == [rows[3], rows[1]]
    assert store.query_audit(since="2024-01-01T00:00:02Z", limit=1) == [rows[3]]
    token = TokenRow("t1", "ann", "hash", True, "2024-01-01", None, None)
    store.put_token(token)
    assert store.get_token("t1") == token and store.list_tokens() == [token]
    assert store.revoke_token("t1", "2024-02-02") is True and store.revoke_token("t1", "x") is False
    assert store.get_token("t1").revoked_at == "2024-02-02"  # type: ignore[union-attr]


def test_the_audit_log_is_append_only(tmp_path: Path) -> None:
    store = PostgresHandleStore(_pg_config(tmp_path))
    try:
        store.append_audit([AuditRow("t", "a", None, None, "c", "read", None, None, True, None)])
    finally:
        store.close()
    with psycopg.connect(require_postgres().url, autocommit=True) as conn:
        for statement in ("UPDATE {}._dbh_audit SET actor = 'x'", "DELETE FROM {}._dbh_audit"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement.format(_pg_config(tmp_path).schema_name))


def test_two_stores_advance_one_cursor_page_by_page(tmp_path: Path) -> None:
    """Many threads over two stores (two processes, in effect): each page is claimed exactly once."""
    config = _pg_config(tmp_path)
    stores = [PostgresHandleStore(config), PostgresHandleStore(config)]
    try:
        stores[0].put_cursor(_cursor())
        claimed: list[int] = []
        lock = threading.Lock()

        def worker(store: PostgresHandleStore) -> None:
            while True:
                row = store.get_cursor("q1")
                assert row is not None
                if row.page_number >= 40:
                    return
                new = CursorRow(**{**{f: getattr(row, f) for f in CursorRow.__dataclass_fields__},
                                   "page_number": row.page_number + 1})  # fmt: skip
                if store.advance_cursor(row, new):
                    with lock:
                        claimed.append(row.page_number)

        threads = [threading.Thread(target=worker, args=(stores[i % 2],)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(claimed) == list(range(40))
    finally:
        for store in stores:
            store.close()


def test_a_file_handle_is_refused_on_another_host(tmp_path: Path) -> None:
    """An sqlite handle names a file on the host that opened it; other hosts say so, loudly."""
    config = _pg_config(tmp_path)
    here = PostgresHandleStore(config, host_id="host-a")
    there = PostgresHandleStore(config, host_id="host-b")
    try:
        with Service(settings=Settings(home=tmp_path / "a"), store=here) as service:
            path = str(tmp_path / "private.sqlite")
            handle = service.execute(
                "data/open",
                {"adapter": "sqlite", "config": {"path": path, "mode": "create"}, "alias": "mine"},
            )["dbHandle"]
            memory = service.execute(
                "data/open", {"adapter": "postgres", "config": postgres_config(tmp_path)}
            )
            assert here.get_handle(handle) is not None
            for name in (handle, "mine"):
                with pytest.raises(HandleNotFound, match='host "host-a"') as info:
                    there.get_handle(name)
                assert "host-b" in str(info.value)
            assert (
                there.get_handle(memory["dbHandle"]) is not None
            )  # a server is reachable from anywhere
            assert {h.handle for h in there.list_handles()} >= {handle, memory["dbHandle"]}
    finally:
        there.close()


def test_a_close_through_one_service_is_seen_by_the_other_at_once(tmp_path: Path) -> None:
    """No cache may keep a closed handle alive elsewhere, not even for a millisecond."""
    config = _pg_config(tmp_path)
    with (
        Service(settings=Settings(home=tmp_path / "a"), store=PostgresHandleStore(config)) as a,
        Service(settings=Settings(home=tmp_path / "b"), store=PostgresHandleStore(config)) as b,
    ):
        assert b.registry.store.version() is None
        h = a.execute("data/open", {"adapter": "postgres", "config": postgres_config(tmp_path)})[
            "dbHandle"
        ]
        for _ in range(3):
            b.execute("data/create", {"dbHandle": h, "collection": "c", "data": {}})
        a.execute("data/close", {"dbHandle": h})
        with pytest.raises(HandleNotFound):
            b.execute("data/create", {"dbHandle": h, "collection": "c", "data": {}})


def test_meta(store: HandleStore) -> None:
    assert store.get_meta("k") is None
    assert store.set_meta("k", "1", only_if_missing=True) == "1"
    assert store.set_meta("k", "2", only_if_missing=True) == "1"
    assert store.set_meta("k", "3") == "3" and store.get_meta("k") == "3"


def test_meta_alone_drops_the_prefixs_other_keys_of_the_value(store: HandleStore) -> None:
    # LIKE's own characters in the prefix are matched as themselves.
    for key in ("f_%:1", "f_%:2", "fx%:3", "f_y:4", "g:5"):
        store.set_meta(key, "/a/b")
    store.set_meta("f_%:6", "/other")
    store.set_meta_alone("f_%:7", "/a/b", "f_%:")
    kept = {k: store.get_meta(k) for k in ("f_%:1", "f_%:2", "fx%:3", "f_y:4", "g:5", "f_%:6")}
    assert kept == {"f_%:1": None, "f_%:2": None, "fx%:3": "/a/b", "f_y:4": "/a/b",
                    "g:5": "/a/b", "f_%:6": "/other"}  # fmt: skip
    assert store.get_meta("f_%:7") == "/a/b"
    store.set_meta_alone("f_%:7", "/c", "f_%:")
    assert store.get_meta("f_%:7") == "/c"


def test_owners_grants_and_alias_owners(store: HandleStore) -> None:
    """Issue 12: ownership and grants are rows of the store; an alias belongs to its actor."""
    from dbhandles import AccessDenied
    from dbhandles.store import DatabaseRow, GrantRow
    from dbhandles.store.sql import grant_id

    db = "file:/data/bob/notes.sqlite"
    first = store.claim_database(DatabaseRow(db, "bob", "strict", "t1"))
    assert first == DatabaseRow(db, "bob", "strict", "t1")
    # A second claim changes nothing; the owner may change its isolation, nobody else.
    assert store.claim_database(DatabaseRow(db, "alice", "none", "t2")) == first
    changed = store.claim_database(DatabaseRow(db, "bob", "soft", "t3"), isolation_if_owner=True)
    assert (changed.owner, changed.isolation) == ("bob", "soft")
    assert (
        store.claim_database(DatabaseRow(db, "alice", "none", "t4"), isolation_if_owner=True)
        == changed
    )
    grant = GrantRow(grant_id(db, "alice"), db, "alice", {"write": False}, "bob", "t5")
    store.put_grant(grant)
    store.put_grant(GrantRow(grant.grant_id, db, "alice", {"read": True}, "bob", "t6"))
    assert store.get_grant(db, "alice") == GrantRow(
        grant.grant_id, db, "alice", {"read": True}, "bob", "t6"
    )
    assert store.get_grant(db, "carol") is None
    assert [g.actor for g in store.list_grants(database=db)] == ["alice"]
    assert store.list_grants(actor="carol") == []
    assert store.delete_grant(db, "alice") is True
    assert store.delete_grant(db, "alice") is False
    store.put_handle(HandleRow("hb", "memory", {}, 1, 1), alias="bobwork", alias_owner="bob")
    store.put_handle(HandleRow("ha", "memory", {}, 2, 2))
    with pytest.raises(AccessDenied):
        store.put_handle(
            HandleRow("hx", "memory", {}, 3, 3), alias="bobwork", alias_owner="alice",
            take_alias=False,
        )  # fmt: skip
    assert store.get_handle("hx") is None  # nothing was inserted
    with pytest.raises(AccessDenied):
        store.set_alias("bobwork", "ha", "alice", take=False)
    assert store.aliases()["bobwork"] == "hb" and store.alias_owner("bobwork") == (True, "bob")
    store.set_alias("bobwork", "ha", "root")  # an administrator takes any alias
    assert store.alias_owner("bobwork") == (True, "root")
    assert store.alias_owner("nope") == (False, None)
