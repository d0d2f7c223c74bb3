"""The handle registry: default handle, open/close/list, aliases, durability, sharing, modes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path

import pytest

from dbhandles import (
    DatabaseNotFound,
    DefaultHandleProtected,
    HandleNotFound,
    InvalidConfig,
    InvalidParams,
    NotADatabase,
    ReadOnly,
    Service,
    Settings,
    UnknownAdapter,
)

DATA_COMMANDS = [
    ("data/create", {"collection": "c", "data": {}}),
    ("data/read", {"collection": "c", "id": "x"}),
    ("data/list", {"collection": "c"}),
    ("data/update", {"collection": "c", "id": "x", "data": {}}),
    ("data/delete", {"collection": "c", "id": "x"}),
    ("data/query-open", {"collection": "c"}),
    ("data/schema", {}),
    ("data/truncate", {"collection": "c"}),
    ("data/clear", {}),
    ("data/vacuum", {}),
    ("data/batch", {"operations": []}),
    ("data/close", {}),
]


def test_original_handle_lifecycle(service: Service, tmp_path: Path) -> None:
    """The original system's integration test: 1 → open two → 3 → close one → 2 → default refused → 1."""
    handles = service.execute("data/list-handles")["handles"]
    assert (
        len(handles) == 1 and handles[0]["isDefault"] is True and handles[0]["handle"] == "default"
    )
    first = service.execute(
        "data/open",
        {
            "adapter": "sqlite",
            "config": {"path": str(tmp_path / "training1.sqlite"), "mode": "create"},
        },
    )
    second = service.execute(
        "data/open",
        {
            "adapter": "sqlite",
            "config": {"path": str(tmp_path / "training2.sqlite"), "mode": "create"},
        },
    )
    assert first["success"] and uuid.UUID(first["dbHandle"]).version == 4
    assert len(service.execute("data/list-handles")["handles"]) == 3
    assert service.execute("data/close", {"dbHandle": first["dbHandle"]})["success"] is True
    assert len(service.execute("data/list-handles")["handles"]) == 2
    refused = service.dispatch("data/close", {"dbHandle": "default"})
    assert refused["success"] is False and refused["code"] == "default_handle_protected"
    assert "default" in refused["error"]
    service.execute("data/close", {"dbHandle": second["dbHandle"]})
    assert [h["handle"] for h in service.execute("data/list-handles")["handles"]] == ["default"]


def test_list_handles_fields(service: Service, tmp_path: Path) -> None:
    handle = service.execute("data/open", {"adapter": "memory", "config": {}})["dbHandle"]
    info = service.execute("data/list-handles")["handles"]
    assert set(info[0]) >= {"handle", "adapter", "config", "isDefault", "openedAt", "lastUsedAt"}
    assert info[1]["handle"] == handle and info[1]["isDefault"] is False
    assert isinstance(info[1]["openedAt"], int) and info[1]["openedAt"] > 1_700_000_000_000


def test_last_used_moves_on_every_use(service: Service, tmp_path: Path) -> None:
    handle = service.execute(
        "data/open",
        {"adapter": "sqlite", "config": {"path": str(tmp_path / "a.sqlite"), "mode": "create"}},
    )["dbHandle"]
    before = service.registry.resolve(handle).last_used_at
    import time

    time.sleep(0.01)
    service.execute("data/list", {"dbHandle": handle, "collection": "c"})
    assert service.registry.resolve(handle).last_used_at > before


@pytest.mark.parametrize(("name", "params"), DATA_COMMANDS)
def test_unknown_handle_fails_loud_in_every_command(
    service: Service, name: str, params: dict[str, object]
) -> None:
    service.execute("data/create", {"collection": "c", "id": "x", "data": {"secret": 1}})
    ghost = str(uuid.uuid4())
    envelope = service.dispatch(name, {**params, "dbHandle": ghost})
    assert envelope["success"] is False
    assert envelope["code"] == "handle_not_found", envelope
    # Nothing was routed to the default database instead.
    assert service.execute("data/read", {"collection": "c", "id": "x"})["data"]["secret"] == 1


def test_closed_handle_is_not_found_not_default(service: Service, tmp_path: Path) -> None:
    handle = service.execute("data/open", {"adapter": "memory", "config": {}})["dbHandle"]
    service.execute("data/close", {"dbHandle": handle})
    with pytest.raises(HandleNotFound):
        service.execute(
            "data/create", {"dbHandle": handle, "collection": "private", "data": {"x": 1}}
        )
    assert service.execute("data/list", {"collection": "private"})["count"] == 0
    with pytest.raises(HandleNotFound):
        service.execute("data/close", {"dbHandle": handle})


def test_aliases_resolve_everywhere_and_go_with_the_handle(
    service: Service, tmp_path: Path
) -> None:
    path = str(tmp_path / "archive-001.sqlite")
    handle = service.execute(
        "data/open",
        {"adapter": "sqlite", "config": {"path": path, "mode": "create"}, "alias": "archive"},
    )["dbHandle"]
    service.execute(
        "data/create", {"dbHandle": "archive", "collection": "m", "id": "1", "data": {}}
    )
    assert (
        service.execute("data/read", {"dbHandle": handle, "collection": "m", "id": "1"})["found"]
        is True
    )
    assert service.registry.get_db_path("archive") == str(Path(path).resolve())
    assert service.registry.is_open("archive")
    listed = service.execute("data/list-handles")["handles"]
    assert listed[1]["aliases"] == ["archive"]
    # Re-pointing an alias (archive rotation).
    newer = service.execute(
        "data/open",
        {
            "adapter": "sqlite",
            "config": {"path": str(tmp_path / "archive-002.sqlite"), "mode": "create"},
        },
    )["dbHandle"]
    service.registry.register_alias("archive", newer)
    assert (
        service.execute("data/read", {"dbHandle": "archive", "collection": "m", "id": "1"})["found"]
        is False
    )
    service.execute("data/close", {"dbHandle": "archive"})
    assert not service.registry.is_open(newer)
    assert not service.registry.is_open("archive")
    assert service.registry.is_open(handle)


@pytest.mark.parametrize("alias", ["default", "", "1abc", "has space", "x" * 70, str(uuid.uuid4())])
def test_bad_aliases_are_refused(service: Service, alias: str) -> None:
    with pytest.raises(InvalidParams):
        service.execute("data/open", {"adapter": "memory", "config": {}, "alias": alias})


def test_register_alias_needs_an_open_handle(service: Service) -> None:
    with pytest.raises(HandleNotFound):
        service.registry.register_alias("primary", str(uuid.uuid4()))


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"adapter": "vector", "config": {}}, UnknownAdapter),
        # No adapter means sqlite (the README's default), so a missing file is "not found".
        ({"config": {"path": "<tmp>/x"}}, DatabaseNotFound),
        ({"adapter": "sqlite"}, InvalidParams),
        ({"adapter": "sqlite", "config": {}}, InvalidConfig),
        (
            {"adapter": "sqlite", "config": {"path": "<tmp>/x.sqlite", "mode": "sideways"}},
            InvalidConfig,
        ),
        ({"adapter": "sqlite", "config": {"path": "<tmp>/x.sqlite", "bogus": 1}}, InvalidConfig),
        ({"adapter": "sqlite", "config": "{not json"}, InvalidParams),
        ({"adapter": "json", "config": {"path": 5}}, InvalidConfig),
    ],
)
def test_bad_open_params(
    service: Service, tmp_path: Path, params: dict[str, object], error: type[Exception]
) -> None:
    config = params.get("config")
    if isinstance(config, dict) and isinstance(config.get("path"), str):
        # Paths live in the test's own folder, even though validation refuses them before any I/O.
        params = {
            **params,
            "config": {**config, "path": config["path"].replace("<tmp>", str(tmp_path))},
        }
    with pytest.raises(error):
        service.execute("data/open", params)
    assert len(service.execute("data/list-handles")["handles"]) == 1


def test_unknown_adapter_lists_the_known_ones(service: Service) -> None:
    envelope = service.dispatch("data/open", {"adapter": "graph", "config": {}})
    assert envelope["code"] == "unknown_adapter"
    for name in ("sqlite", "memory", "json", "postgres"):
        assert name in envelope["error"]


@pytest.mark.parametrize("adapter", ["sqlite", "json"])
def test_file_modes_are_enforced(service: Service, tmp_path: Path, adapter: str) -> None:
    path = tmp_path / f"db.{adapter}"
    with pytest.raises(DatabaseNotFound, match="create"):
        service.execute("data/open", {"adapter": adapter, "config": {"path": str(path)}})
    assert not path.exists()
    rw = service.execute(
        "data/open", {"adapter": adapter, "config": {"path": str(path), "mode": "create"}}
    )["dbHandle"]
    service.execute("data/create", {"dbHandle": rw, "collection": "c", "id": "a", "data": {"v": 1}})
    ro = service.execute(
        "data/open", {"adapter": adapter, "config": {"path": str(path), "mode": "readonly"}}
    )["dbHandle"]
    assert (
        service.execute("data/read", {"dbHandle": ro, "collection": "c", "id": "a"})["found"]
        is True
    )
    before = path.read_bytes() if adapter == "json" else None
    for name, params in [
        ("data/create", {"collection": "c", "data": {}}),
        ("data/update", {"collection": "c", "id": "a", "data": {"v": 2}}),
        ("data/delete", {"collection": "c", "id": "a"}),
        ("data/truncate", {"collection": "c"}),
        ("data/clear", {}),
        ("data/vacuum", {}),
        ("data/batch", {"operations": [{"op": "delete", "collection": "c", "id": "a"}]}),
    ]:
        envelope = service.dispatch(name, {"dbHandle": ro, **params})
        assert envelope["code"] == "read_only", (name, envelope)
    assert (
        service.execute("data/read", {"dbHandle": rw, "collection": "c", "id": "a"})["data"]["v"]
        == 1
    )
    if before is not None:
        assert path.read_bytes() == before


@pytest.mark.parametrize("adapter", ["sqlite", "json"])
def test_paths_that_are_not_databases_are_refused(
    service: Service, tmp_path: Path, adapter: str
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello, I am not a database\n")
    for target in (tmp_path, text, Path("/dev/null")):
        envelope = service.dispatch(
            "data/open", {"adapter": adapter, "config": {"path": str(target), "mode": "create"}}
        )
        assert envelope["code"] == "not_a_database", (target, envelope)
    assert text.read_text() == "hello, I am not a database\n"


def test_handles_on_the_same_file_share_one_connection(service: Service, tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    a = service.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": str(path), "mode": "create"}}
    )["dbHandle"]
    b = service.execute(
        "data/open",
        {"adapter": "sqlite", "config": {"path": str(tmp_path / "." / "shared.sqlite")}},
    )["dbHandle"]
    with service.registry.lease(a) as (_, adapter_a), service.registry.lease(b) as (_, adapter_b):
        assert adapter_a is adapter_b
    service.execute("data/close", {"dbHandle": a})
    service.execute("data/create", {"dbHandle": b, "collection": "c", "data": {}})
    assert service.execute("data/list", {"dbHandle": b, "collection": "c"})["count"] == 1


def test_idle_connections_are_released_and_reopened(service: Service, tmp_path: Path) -> None:
    handle = service.execute(
        "data/open",
        {"adapter": "sqlite", "config": {"path": str(tmp_path / "a.sqlite"), "mode": "create"}},
    )["dbHandle"]
    service.execute("data/create", {"dbHandle": handle, "collection": "c", "id": "a", "data": {}})
    assert service.registry.release_idle(older_than=0) >= 1
    with service.registry.lease(handle) as (_, adapter):
        assert adapter._connected is False
    assert (
        service.execute("data/read", {"dbHandle": handle, "collection": "c", "id": "a"})["found"]
        is True
    )


def test_reaper_thread_releases_idle_connections(tmp_path: Path) -> None:
    import time

    with Service(settings=Settings(home=tmp_path / "h", idle_release_seconds=0.05)) as svc:
        handle = svc.execute(
            "data/open",
            {"adapter": "sqlite", "config": {"path": str(tmp_path / "a.sqlite"), "mode": "create"}},
        )["dbHandle"]
        with svc.registry.lease(handle) as (_, adapter):
            pass
        deadline = time.monotonic() + 10
        while adapter._connected and time.monotonic() < deadline:
            time.sleep(0.02)
        assert adapter._connected is False
        assert svc.execute("data/list", {"dbHandle": handle, "collection": "c"})["success"] is True


def test_handles_survive_a_new_registry_on_the_same_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Service(home) as first:
        handle = first.execute(
            "data/open",
            {
                "adapter": "sqlite",
                "config": {"path": str(tmp_path / "t.sqlite"), "mode": "create"},
                "alias": "training",
            },
        )["dbHandle"]
        first.execute(
            "data/create",
            {
                "dbHandle": handle,
                "collection": "training_examples",
                "id": "test-001",
                "data": {"text": "example"},
            },
        )
        memory = first.execute("data/open", {"adapter": "memory", "config": {}})["dbHandle"]
    with Service(home) as second:
        assert (
            second.execute(
                "data/read",
                {"dbHandle": handle, "collection": "training_examples", "id": "test-001"},
            )["data"]["text"]
            == "example"
        )
        assert second.execute(
            "data/read",
            {"dbHandle": "training", "collection": "training_examples", "id": "test-001"},
        )["found"]
        with pytest.raises(HandleNotFound):
            second.execute("data/list", {"dbHandle": memory, "collection": "c"})


def test_a_handle_from_another_process_works_here(tmp_path: Path) -> None:
    home = tmp_path / "home"
    script = textwrap.dedent(
        f"""
        from dbhandles import Service
        with Service({str(home)!r}) as s:
            h = s.execute("data/open", {{"adapter": "sqlite", "config": {{"path": {str(tmp_path / "p.sqlite")!r}, "mode": "create"}}}})["dbHandle"]
            s.execute("data/create", {{"dbHandle": h, "collection": "c", "id": "from-child", "data": {{}}}})
            print(h)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    handle = out.stdout.strip()
    with Service(home) as svc:
        assert svc.execute(
            "data/read", {"dbHandle": handle, "collection": "c", "id": "from-child"}
        )["found"]
        svc.execute("data/close", {"dbHandle": handle})
    out = subprocess.run(
        [sys.executable, "-c", f"from dbhandles import Service\nwith Service({str(home)!r}) as s: print(s.dispatch('data/list', {{'dbHandle': {handle!r}, 'collection': 'c'}})['code'])"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "handle_not_found"


def test_many_threads_share_one_registry_and_handle(service: Service, tmp_path: Path) -> None:
    handle = service.execute(
        "data/open",
        {"adapter": "sqlite", "config": {"path": str(tmp_path / "t.sqlite"), "mode": "create"}},
    )["dbHandle"]
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(50):
                service.execute(
                    "data/create",
                    {"dbHandle": handle, "collection": "c", "id": f"{n}-{i}", "data": {"n": n}},
                )
                service.execute("data/list", {"dbHandle": handle, "collection": "c", "limit": 5})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert service.execute("data/list", {"dbHandle": handle, "collection": "c"})["count"] == 400


def test_default_handle_cannot_be_closed_even_by_alias_trick(service: Service) -> None:
    with pytest.raises(DefaultHandleProtected):
        service.registry.close("default")
    with pytest.raises(InvalidParams):
        service.registry.register_alias("main", "default")


def test_readonly_is_enforced_by_the_driver_too(service: Service, tmp_path: Path) -> None:
    path = tmp_path / "ro.sqlite"
    service.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": str(path), "mode": "create"}}
    )
    ro = service.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": str(path), "mode": "readonly"}}
    )["dbHandle"]
    with service.registry.lease(ro) as (_, adapter):
        adapter.connect()
        import sqlite3

        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            adapter._conn.execute("CREATE TABLE sneaky (x)")  # type: ignore[attr-defined]
    _ = ReadOnly, NotADatabase


def test_a_handle_closed_by_another_process_is_not_used_from_cache(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Service(home) as svc:
        handle = svc.execute(
            "data/open",
            {"adapter": "sqlite", "config": {"path": str(tmp_path / "c.sqlite"), "mode": "create"}},
        )["dbHandle"]
        svc.execute("data/list", {"dbHandle": handle, "collection": "c"})  # resolved and cached
        script = f"from dbhandles import Service\nwith Service({str(home)!r}) as s: s.execute('data/close', {{'dbHandle': {handle!r}}})"
        subprocess.run([sys.executable, "-c", script], check=True)
        with pytest.raises(HandleNotFound):
            svc.execute("data/list", {"dbHandle": handle, "collection": "c"})


def test_default_handle_times_are_the_same_in_every_process(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Service(home) as first:
        opened = first.execute("data/list-handles")["handles"][0]["openedAt"]
        first.execute("data/list", {"collection": "users"})
    with Service(home) as second:
        default = second.execute("data/list-handles")["handles"][0]
    assert default["openedAt"] == opened
    assert default["lastUsedAt"] >= opened


def test_a_deleted_file_is_not_silently_recreated(service: Service, tmp_path: Path) -> None:
    path = tmp_path / "gone.sqlite"
    handle = service.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": str(path), "mode": "create"}}
    )["dbHandle"]
    service.registry.release_idle(older_than=0)
    path.unlink()
    with Service(settings=service.settings) as other:
        envelope = other.dispatch("data/list", {"dbHandle": handle, "collection": "c"})
    assert envelope["code"] == "database_not_found"
    assert not path.exists()


def test_a_close_never_looks_up_the_files_path_again(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handle is closed by its connection, found by the handle, never by resolving the file's
    path again: a folder on the way swapped for a link meanwhile made the close itself fail with
    ``path_not_allowed`` "changed while it was checked" (tests/test_security_races.py met it)."""
    from dbhandles.adapters.sqlite import SqliteAdapter

    opened = service.execute(
        "data/open",
        {"adapter": "sqlite", "config": {"path": str(tmp_path / "d.sqlite"), "mode": "create"}},
    )
    handle = opened["dbHandle"]
    service.execute("data/create", {"dbHandle": handle, "collection": "c", "data": {"a": 1}})
    tables = service.registry._connections
    assert any(handle in conn.handles for conn in tables.values())

    def swapped(config: object) -> str:
        raise AssertionError("close resolved the path again")

    monkeypatch.setattr(SqliteAdapter, "connection_key", classmethod(lambda cls, c: swapped(c)))
    assert service.execute("data/close", {"dbHandle": handle})["success"] is True
    assert not any(handle in conn.handles for conn in tables.values())
