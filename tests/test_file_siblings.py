"""The siblings of issue 10 found by trying the fix from outside: every file a command reads or writes
besides the database itself (``.lock``, export's partial file, rejects, outputs; no ``.owner`` since issue 12) goes
through ``dbhandles.dbfiles``, so none of them can release the service's locks on a live database,
follow a planted link, or replace a special file; and a bad path is a clear error on every door."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service

Env = tuple[Service, Path, Path]  # the service, its home, a scratch folder


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    home, scratch = tmp_path / "home", tmp_path / "d"
    scratch.mkdir()
    with Service(home=home) as service:
        service.execute("data/create", {"collection": "c", "id": "x", "data": {}})
        yield service, home, scratch


def _wal_survives(database: Path) -> None:
    """Another process opens and closes the database: the service's log must survive it."""
    code = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "c.execute('SELECT count(*) FROM sqlite_master').fetchone(); c.close()"
    )
    subprocess.run([sys.executable, "-c", code, str(database)], check=True, timeout=60)
    assert Path(f"{database}-wal").exists(), f"{database}: the WAL was deleted under the service"


def _open(service: Service, path: Path, **extra: Any) -> dict[str, Any]:
    config = {"path": str(path), "mode": "create", **extra.pop("config", {})}
    return service.dispatch("data/open", {"adapter": "sqlite", "config": config, **extra})


def test_an_owner_sidecar_that_is_a_live_database_is_never_opened(env: Env) -> None:
    """Ownership is in the handle store (issue 12): nothing next to a database is read or written,
    not even a file named like the old ``.owner`` sidecar that is a live database."""
    service, _, d = env
    live = _open(service, d / "a.owner")["dbHandle"]
    service.execute("data/create", {"dbHandle": live, "collection": "c", "data": {}})
    assert _open(service, d / "a")["success"]
    assert _open(service, d / "a", permissions={"isolationMode": "strict"})["success"]
    _wal_survives(d / "a.owner")
    assert service.execute("data/list", {"dbHandle": live, "collection": "c"})["count"] == 1


def test_an_owner_sidecar_planted_as_a_link_is_not_followed(env: Env) -> None:
    service, home, d = env
    os.symlink(home / "default.sqlite", d / "k.owner")
    assert _open(service, d / "k", permissions={"isolationMode": "strict"})["success"]
    assert os.path.islink(d / "k.owner")  # left alone: never opened, followed or replaced
    assert service.execute("data/read", {"collection": "c", "id": "x"})["success"]
    _wal_survives(home / "default.sqlite")


def test_export_never_follows_a_link_planted_at_its_partial_file(env: Env) -> None:
    service, home, d = env
    os.symlink(home / "default.sqlite-wal", d / ".out.jsonl.partial")
    result = service.execute(
        "data/export", {"dbHandle": "default", "collection": "c", "output": str(d / "out.jsonl")}
    )
    assert result["exported"] == 1
    assert (d / "out.jsonl").read_text().count("\n") == 1
    assert not (d / ".out.jsonl.partial").exists()
    assert service.execute("data/read", {"collection": "c", "id": "x"})["success"]
    _wal_survives(home / "default.sqlite")


def test_a_json_lock_file_planted_as_a_link_to_a_database_is_refused(env: Env) -> None:
    service, home, d = env
    os.symlink(home / "default.sqlite", d / "j.json.lock")
    handle = service.execute(
        "data/open", {"adapter": "json", "config": {"path": str(d / "j.json"), "mode": "create"}}
    )["dbHandle"]
    refused = service.dispatch("data/create", {"dbHandle": handle, "collection": "c", "data": {}})
    assert refused["code"] == "path_not_allowed", refused
    _wal_survives(home / "default.sqlite")


@pytest.mark.parametrize("side", ["-shm", "-wal", ""])
def test_a_hard_link_to_a_live_database_file_is_refused(env: Env, side: str) -> None:
    service, home, d = env
    os.link(f"{home / 'default.sqlite'}{side}", d / "link.db")
    refused = _open(service, d / "link.db", config={"mode": "readwrite"})
    assert refused["code"] in ("not_a_database", "path_not_allowed"), refused
    rejects = service.dispatch(
        "data/import",
        {"input": str(d / "in.jsonl"), "output": str(d / "o.sqlite"), "rejects": str(d / "link.db"),
         "onError": "skip"},
    )  # fmt: skip
    assert not rejects["success"]
    _wal_survives(home / "default.sqlite")


def test_a_live_json_database_is_never_an_output(env: Env) -> None:
    service, _, d = env
    people = service.execute(
        "data/open", {"adapter": "json", "config": {"path": str(d / "p.json"), "mode": "create"}}
    )["dbHandle"]
    service.execute("data/create", {"dbHandle": people, "collection": "c", "data": {}})
    refused = service.dispatch(
        "data/export", {"dbHandle": "default", "collection": "c", "output": str(d / "p.json")}
    )
    assert refused["code"] == "path_not_allowed" and "is a database file" in refused["error"]
    assert service.execute("data/list", {"dbHandle": people, "collection": "c"})["count"] == 1


def test_tiny_files_are_data_not_databases(env: Env) -> None:
    service, _, d = env
    (d / "one.jsonl").write_text("\n")
    result = service.execute(
        "data/import", {"input": str(d / "one.jsonl"), "output": str(d / "o.sqlite")}
    )
    assert result["imported"] == 0
    (d / "x").write_bytes(b"x")
    refused = _open(service, d / "x", config={"mode": "readwrite"})
    assert refused["code"] == "not_a_database"
    assert (d / "x").read_bytes() == b"x"


def test_special_files_and_links_are_never_written(env: Env) -> None:
    service, _, d = env
    os.mkfifo(d / "fifo")
    os.symlink(d / "fifo", d / "fifo-link.jsonl")
    for output in ("fifo", "fifo-link.jsonl"):
        refused = service.dispatch(
            "data/export", {"dbHandle": "default", "collection": "c", "output": str(d / output)}
        )
        assert refused["code"] == "path_not_allowed" and "regular file" in refused["error"]
    (d / "in.jsonl").write_text('{"id": "a"}\n')
    refused = service.dispatch(
        "data/import",
        {"input": str(d / "in.jsonl"), "output": str(d / "o.sqlite"), "rejects": str(d / "fifo"),
         "onError": "skip"},
    )  # fmt: skip
    assert refused["code"] == "path_not_allowed"  # a pipe: never opened, so never blocks
    assert (d / "fifo").is_fifo()


def test_a_file_with_other_names_is_never_written(env: Env) -> None:
    service, _, d = env
    (d / "theirs.txt").write_text("keep")
    os.link(d / "theirs.txt", d / "rejects.jsonl")
    (d / "in.jsonl").write_text("not json\n")
    refused = service.dispatch(
        "data/import",
        {"input": str(d / "in.jsonl"), "output": str(d / "o.sqlite"),
         "rejects": str(d / "rejects.jsonl"), "onError": "skip"},
    )  # fmt: skip
    assert refused["code"] == "path_not_allowed" and "hard links" in refused["error"]
    assert (d / "theirs.txt").read_text() == "keep"


#: Relative to the test's scratch folder (so a regression writes there, never in the working folder).
BAD_PATHS = ["a\x00b", "x" * 300, "y/" * 2100 + "z", "folder/"]


@pytest.mark.parametrize("bad", BAD_PATHS, ids=["nul", "long-name", "long-path", "trailing-slash"])
def test_a_bad_path_is_a_clear_error_on_every_command(env: Env, bad: str) -> None:
    service, _, d = env
    bad = f"{d}/{bad}"
    (d / "in.jsonl").write_text('{"id": "a"}\n')
    good_in, good_out = str(d / "in.jsonl"), str(d / "o.sqlite")
    calls = [
        ("data/open", {"adapter": "sqlite", "config": {"path": bad, "mode": "create"}}),
        ("data/open", {"adapter": "json", "config": {"path": bad, "mode": "create"}}),
        ("data/import", {"input": bad, "output": good_out}),
        ("data/import", {"input": good_in, "output": bad}),
        ("data/import", {"input": good_in, "output": good_out, "rejects": bad, "onError": "skip"}),
        ("data/export", {"dbHandle": "default", "collection": "c", "output": bad}),
        ("data/export", {"input": bad, "collection": "c", "output": str(d / "e.jsonl")}),
    ]
    for name, params in calls:
        envelope = service.dispatch(name, params)
        assert envelope["code"] in ("invalid_params", "invalid_config"), (name, params, envelope)


def test_a_json_database_under_a_file_is_a_clear_error(env: Env) -> None:
    service, _, d = env
    (d / "file").write_text("x")
    envelope = service.dispatch(
        "data/open", {"adapter": "json", "config": {"path": str(d / "file" / "db.json"),
                                                    "mode": "create"}},
    )  # fmt: skip
    assert envelope["code"] in ("invalid_config", "invalid_params"), envelope


def test_the_cli_prints_an_envelope_for_a_nul_path(tmp_path: Path) -> None:
    from tests.servers import REPO

    done = subprocess.run(
        [str(REPO / "jtag"), "data/open", "--adapter=sqlite", '--config={"path":"a\\u0000b"}'],
        capture_output=True, text=True, timeout=120,
        env={**{k: v for k, v in os.environ.items() if not k.startswith(("JTAG_", "DBHANDLES_"))},
             "DBHANDLES_HOME": str(tmp_path / "home")},  # a new home: no server serves it
    )  # fmt: skip
    assert "Traceback" not in done.stderr
    assert '"code": "invalid_config"' in done.stdout or '"code": "invalid_params"' in done.stdout


def test_an_import_into_an_existing_database_keeps_its_data(env: Env) -> None:
    """An import output that is not new is opened like any database, and its file stays readable."""
    service, _, d = env
    conn = sqlite3.connect(d / "theirs.sqlite")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    (d / "in.jsonl").write_text('{"id": "a"}\n')
    service.execute(
        "data/import", {"input": str(d / "in.jsonl"), "output": str(d / "theirs.sqlite")}
    )
    conn = sqlite3.connect(d / "theirs.sqlite")
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    conn.close()


# -- the second round of outside checks -------------------------------------------------------------


def test_a_data_file_being_written_is_never_opened_as_a_database(env: Env) -> None:
    from dbhandles.dbfiles import open_plain

    service, _, d = env
    writer = open_plain(d / "rejects.jsonl", "wb", "rejects")
    try:
        refused = _open(service, d / "rejects.jsonl", config={"mode": "readwrite"})
        assert refused["code"] == "not_a_database" and "writing" in refused["error"]
        refused = service.dispatch(
            "data/open", {"adapter": "json", "config": {"path": str(d / "rejects.jsonl")}}
        )
        assert refused["code"] == "not_a_database"
    finally:
        writer.close()
    assert _open(service, d / "rejects.jsonl", config={"mode": "readwrite"})["success"]


def test_an_export_never_renames_over_a_database_opened_meanwhile(env: Env) -> None:
    from dbhandles.importer.command import ExportHooks

    service, _, d = env
    for i in range(5):
        service.execute("data/create", {"collection": "c", "id": f"r{i}", "data": {}})
    opened: list[str] = []

    def open_the_output(_: object) -> None:
        if not opened:
            handle = _open(service, d / "out.sqlite")["dbHandle"]
            service.execute("data/create", {"dbHandle": handle, "collection": "c", "id": "ack",
                                            "data": {}})  # fmt: skip
            opened.append(handle)

    refused = service.dispatch(
        "data/export",
        {"dbHandle": "default", "collection": "c", "output": str(d / "out.sqlite"), "pageSize": 1},
    )  # fmt: skip
    assert refused["success"]  # no database there: a plain export works
    (d / "out.sqlite").unlink()
    from dbhandles import DbHandlesError

    with pytest.raises(DbHandlesError):
        service.execute(
            "data/export",
            {"dbHandle": "default", "collection": "c", "output": str(d / "out.sqlite"),
             "pageSize": 1},
            hooks=ExportHooks(on_page=open_the_output),
        )  # fmt: skip
    read = service.execute("data/read", {"dbHandle": opened[0], "collection": "c", "id": "ack"})
    assert read["found"]
    assert not list(d.glob(".*.partial"))


def test_a_live_database_at_the_partial_name_is_never_deleted(env: Env) -> None:
    service, _, d = env
    live = _open(service, d / ".out.jsonl.partial")["dbHandle"]
    service.execute("data/create", {"dbHandle": live, "collection": "c", "id": "p", "data": {}})
    refused = service.dispatch(
        "data/export", {"dbHandle": "default", "collection": "c", "output": str(d / "out.jsonl")}
    )
    assert refused["code"] == "path_not_allowed"
    assert service.execute("data/read", {"dbHandle": live, "collection": "c", "id": "p"})["found"]


def test_a_third_party_file_adapter_is_gated_too(env: Env) -> None:
    from typing import ClassVar

    from dbhandles.adapters import register_adapter
    from dbhandles.adapters.base import AdapterConfig, Features, FileConfig
    from dbhandles.adapters.memory import MemoryAdapter

    class RawFileAdapter(MemoryAdapter):
        """Reads its file with plain I/O, as a careless third-party adapter would."""

        name: ClassVar[str] = "rawfile-test"
        features: ClassVar[Features] = Features(durable=True, file_based=True)
        config_model: ClassVar[type[AdapterConfig]] = FileConfig

    with contextlib.suppress(ValueError):  # registered by an earlier run in the same process
        register_adapter(RawFileAdapter)
    service, _, d = env
    live = _open(service, d / "live.sqlite")["dbHandle"]
    service.execute("data/create", {"dbHandle": live, "collection": "c", "data": {}})
    for path in (d / "live.sqlite", d / "live.sqlite-wal"):
        refused = service.dispatch(
            "data/open", {"adapter": "rawfile-test", "config": {"path": str(path)}}
        )
        assert refused["code"] == "path_not_allowed", refused
    _wal_survives(d / "live.sqlite")


def test_a_name_utf8_cannot_hold_never_stops_the_audit_log(tmp_path: Path) -> None:
    with Service(home=tmp_path / "home") as service:
        refused = service.dispatch("data/list", {"collection": "c\ud800"})
        assert refused["code"] == "invalid_params"
        service.execute("data/list", {"collection": "after"})
        service.audit.flush()
        rows = service.execute("data/audit", {})["entries"]
    collections = [r["collection"] for r in rows]
    assert "after" in collections
    assert any(c is not None and "\\ud800" in c for c in collections)


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_a_setting_that_is_not_a_finite_positive_number_is_refused(value: str) -> None:
    from dbhandles import Settings

    with pytest.raises(ValueError, match="DBHANDLES_CURSOR_TTL_SECONDS"):
        Settings.from_env({"DBHANDLES_CURSOR_TTL_SECONDS": value})


def test_long_file_names_work_or_are_refused_clearly(env: Env) -> None:
    service, _, d = env
    long = "e" * 245 + ".jsonl"
    result = service.execute(
        "data/export", {"dbHandle": "default", "collection": "c", "output": str(d / long)}
    )
    assert result["exported"] == 1
    refused = service.dispatch(
        "data/open", {"adapter": "json", "config": {"path": str(d / ("j" * 240)), "mode": "create"}}
    )
    assert refused["code"] == "invalid_config"


def test_own_suffixes_are_kept_until_an_adapter_is_registered() -> None:
    from typing import ClassVar

    from dbhandles import adapters as adapters_mod
    from dbhandles.adapters import ready_adapter_classes, register_adapter
    from dbhandles.adapters.base import AdapterConfig, Features, FileConfig
    from dbhandles.adapters.memory import MemoryAdapter
    from dbhandles.security import database_files

    first = database_files._own_suffixes()
    assert database_files._own_suffixes() is first  # not rebuilt on every call
    assert ready_adapter_classes() is ready_adapter_classes()
    assert {".lock", "-wal"} <= set(first)

    class SidecarAdapter(MemoryAdapter):
        """A third-party file adapter with a side file of its own."""

        name: ClassVar[str] = "sidecar-suffix-test"
        features: ClassVar[Features] = Features(durable=True, file_based=True)
        config_model: ClassVar[type[AdapterConfig]] = FileConfig
        own_suffixes: ClassVar[tuple[str, ...]] = (".sidecar-test",)

    paths, classes = dict(adapters_mod._paths), dict(adapters_mod._classes)
    try:
        register_adapter(SidecarAdapter)
        assert ".sidecar-test" in database_files._own_suffixes()
    finally:
        adapters_mod._paths.clear()
        adapters_mod._paths.update(paths)
        adapters_mod._classes.clear()
        adapters_mod._classes.update(classes)
        adapters_mod._ready = None
    assert ".sidecar-test" not in database_files._own_suffixes()
