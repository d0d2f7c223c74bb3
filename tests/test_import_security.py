"""data/import and data/export under Phase 2 security: handle permissions, path roots, ownership."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbhandles import Context, Service, Settings
from dbhandles.errors import DbHandlesError, PathNotAllowed
from tests.test_import_common import seed_file, write_jsonl

#: Every test here runs with lines parsed in the writer and in the parser process.
pytestmark = pytest.mark.usefixtures("import_parser")

ALICE = Context(actor="alice", is_admin=False, trusted_local=False)
BOB = Context(actor="bob", is_admin=False, trusted_local=False)


def space(service: Service, actor: str) -> Path:
    """An actor's data space (created), where its relative names resolve."""
    found = service.settings.space_root() / actor
    found.mkdir(parents=True, exist_ok=True)
    return found


def open_as(service: Service, context: Context, path: Path | str, **extra: object) -> str:
    config = {"path": str(path), "mode": "create"}
    result = service.execute("data/open", {"adapter": "sqlite", "config": config, **extra},
                             context=context)  # fmt: skip
    return str(result["dbHandle"])


def code_of(service: Service, name: str, params: dict[str, object], context: Context) -> str:
    with pytest.raises(DbHandlesError) as info:
        service.execute(name, params, context=context)
    return info.value.code


@pytest.mark.parametrize(
    ("permissions", "code"),
    [
        ({"write": False}, "permission_denied"),
        ({"allowedCollections": ["other"]}, "permission_denied"),
        ({"rowFilter": {"metadata.source": "git"}}, "permission_denied"),
    ],
)
def test_import_obeys_the_handle_permissions(
    service: Service, tmp_path: Path, permissions: dict[str, object], code: str
) -> None:
    seed_file(space(service, "alice") / "in.jsonl", 20)
    handle = open_as(service, ALICE, "db.sqlite", permissions=permissions)
    params = {"input": "in.jsonl", "dbHandle": handle}
    assert code_of(service, "data/import", params, ALICE) == code


def test_export_obeys_the_read_permission(service: Service, tmp_path: Path) -> None:
    handle = open_as(service, ALICE, "db.sqlite", permissions={"read": False})
    params = {"output": "out.jsonl", "dbHandle": handle}
    assert code_of(service, "data/export", params, ALICE) == "permission_denied"
    assert not (space(service, "alice") / "out.jsonl").exists()


def test_remote_requests_only_reach_files_under_the_allowed_roots(
    service: Service, tmp_path: Path
) -> None:
    handle = open_as(service, ALICE, "db.sqlite")
    outside = "/etc/hostname"
    assert code_of(service, "data/import", {"input": outside, "dbHandle": handle}, ALICE) == (
        "path_not_allowed"
    )
    assert code_of(
        service, "data/export", {"output": "/etc/x.jsonl", "dbHandle": handle}, ALICE
    ) == ("path_not_allowed")
    seed_file(tmp_path / "in.jsonl", 5)
    params = {"input": str(tmp_path / "in.jsonl"), "output": "/var/x.sqlite"}
    assert code_of(service, "data/import", params, ALICE) == "path_not_allowed"
    # A data set outside her space and the read roots is not hers to read either.
    params = {"input": str(tmp_path / "in.jsonl"), "output": "x.sqlite"}
    assert code_of(service, "data/import", params, ALICE) == "path_not_allowed"
    # The same call from the local user (the CLI, the Python API) is not restricted by the roots.
    local = service.execute(
        "data/import", {"input": str(tmp_path / "in.jsonl"), "dbHandle": handle}
    )
    assert local["imported"] == 5


def test_export_never_overwrites_a_database(service: Service, tmp_path: Path) -> None:
    handle = open_as(service, ALICE, "db.sqlite")
    database = space(service, "alice") / "db.sqlite"
    with pytest.raises(PathNotAllowed, match=r"is an SQLite database|is a database file"):
        service.execute("data/export", {"output": str(database), "dbHandle": handle})
    write_jsonl(tmp_path / "in.jsonl", [{"a": 1}, "bad"])
    params = {"input": str(tmp_path / "in.jsonl"), "dbHandle": handle, "onError": "skip",
              "rejects": str(database)}  # fmt: skip
    with pytest.raises(
        PathNotAllowed, match=r"rejects: .* is (an SQLite database|a database file)"
    ):
        service.execute("data/import", params)


def test_a_path_is_reused_only_through_the_same_actors_handle(
    service: Service, tmp_path: Path
) -> None:
    for actor in ("alice", "bob"):
        seed_file(space(service, actor) / "in.jsonl", 5)
    params = {"input": "in.jsonl", "output": "shared.sqlite"}
    first = service.execute("data/import", params, context=ALICE)
    again = service.execute("data/import", params, context=ALICE)
    other = service.execute("data/import", params, context=BOB)
    assert again["dbHandle"] == first["dbHandle"]
    assert other["dbHandle"] != first["dbHandle"]
    # The same name is another database for each actor: in its own data space.
    assert (again["skipped"], other["imported"]) == (5, 5)
    # Each is shown its own file by its name in its space (never the data root: docs/security.md).
    assert first["output"] == other["output"] == "shared.sqlite"
    assert (space(service, "alice") / "shared.sqlite").is_file()
    assert (space(service, "bob") / "shared.sqlite").is_file()


def test_read_roots_are_read_only_data_sets(tmp_path: Path) -> None:
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    seed_file(datasets / "in.jsonl", 5)
    with Service(settings=Settings(home=tmp_path / "home", read_roots=(datasets,))) as service:
        imported = service.execute(
            "data/import", {"input": str(datasets / "in.jsonl"), "output": "mine.sqlite"},
            context=ALICE,
        )  # fmt: skip
        assert imported["imported"] == 5
        # Readable, never writable: no export, no rejects, no database created there.
        for name, params in (
            ("data/export", {"dbHandle": imported["dbHandle"], "output": str(datasets / "o.jsonl")}),
            ("data/import", {"input": str(datasets / "in.jsonl"),
                             "output": str(datasets / "x.sqlite")}),
        ):  # fmt: skip
            assert code_of(service, name, params, ALICE) == "path_not_allowed", name
        assert sorted(p.name for p in datasets.iterdir()) == ["in.jsonl"]
