"""Who may import a plain data file that has other names (hard links; issue #15, finding 6).

docs/security.md "One name per file": a second name is a way to a file past the checks made on
its first, so a remote caller reads a file with other names only by the name the service knows
it by. The local user (in-process: the Python API and the CLI without a server) may read every
file it can read anyway, so a plain data file with other names (a DVC cache, a ``cp -al``
snapshot) is its own and imports by any of its names; a live database's other names, an SQLite
database and a file to write with other names stay refused for every caller.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Context, Service
from dbhandles.errors import DbHandlesError
from dbhandles.settings import Settings
from tests.security_helpers import BOB, ROOT

pytestmark = pytest.mark.usefixtures("import_parser")

LOCAL = Context()


def linked_pair(folder: Path) -> tuple[Path, Path]:
    """``ord2.jsonl`` (two records) and ``ordlink.jsonl``, another name of the same file."""
    folder.mkdir(parents=True, exist_ok=True)
    first = folder / "ord2.jsonl"
    first.write_text('{"id": "a", "v": 1}\n{"id": "b", "v": 2}\n')
    os.link(first, folder / "ordlink.jsonl")
    return first, folder / "ordlink.jsonl"


def do_import(service: Service, source: Path, context: Context, **extra: Any) -> dict[str, Any]:
    params = {"dbHandle": "default", "collection": "x", "input": str(source), **extra}
    result: dict[str, Any] = service.execute("data/import", params, context=context)
    return result


def refusal(service: Service, source: Path, context: Context, **extra: Any) -> DbHandlesError:
    with pytest.raises(DbHandlesError) as caught:
        do_import(service, source, context, **extra)
    return caught.value


def test_the_local_user_imports_a_data_file_with_other_names_by_either(
    service: Service, tmp_path: Path
) -> None:
    first, link = linked_pair(tmp_path / "data")
    rejects = tmp_path / "data" / "rej.jsonl"
    assert do_import(service, link, LOCAL, onError="skip", rejects=str(rejects))["imported"] == 2
    assert rejects.read_text() == ""
    assert do_import(service, first, LOCAL)["skipped"] == 2  # the same records, by the first name


def test_the_local_user_still_never_reads_a_live_database_or_an_sqlite_file_by_a_link(
    service: Service, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    home = Path(service.settings.home)
    service.execute("data/list", {"dbHandle": "default", "collection": "x"})  # default is open
    os.link(home / "default.sqlite", data / "default-link.jsonl")
    error = refusal(service, data / "default-link.jsonl", LOCAL)
    assert error.code == "path_not_allowed"
    assert "database file" in str(error)


def test_the_local_user_never_writes_a_rejects_file_with_other_names(
    service: Service, tmp_path: Path
) -> None:
    first, _ = linked_pair(tmp_path / "data")
    (tmp_path / "data" / "theirs.txt").write_text("")
    os.link(tmp_path / "data" / "theirs.txt", tmp_path / "data" / "rej.jsonl")
    error = refusal(
        service, first, LOCAL, onError="skip", rejects=str(tmp_path / "data" / "rej.jsonl")
    )
    assert error.code == "path_not_allowed"
    assert "other names" in str(error)


def test_a_remote_administrator_never_reads_a_file_with_other_names(tmp_path: Path) -> None:
    data = tmp_path / "roots"
    settings = Settings(home=tmp_path / "home", allowed_roots=(data,))
    with Service(settings=settings) as service:
        first, link = linked_pair(data)
        for source in (first, link):
            error = refusal(service, source, ROOT)
            assert error.code == "path_not_allowed", error
            assert "hard links" in str(error)
        os.unlink(link)
        assert do_import(service, first, ROOT)["imported"] == 2


def test_a_non_admin_actor_never_reads_a_file_with_other_names(service: Service) -> None:
    space = service.settings.space_root() / "bob"
    first, link = linked_pair(space)
    for name in (first.name, link.name):
        error = refusal(service, Path(name), BOB)
        assert error.code == "path_not_allowed", error
    os.unlink(link)
    assert do_import(service, Path(first.name), BOB)["imported"] == 2
