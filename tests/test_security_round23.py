"""Issue 12, round twenty-three: outputs over databases, a read's answer during a folder swap, the
undo of a refused open, and a read-only handle's rights.

1. Every file a command writes or replaces (an export's output and its partial file, an import's
   rejects file) is refused when it is a database of any adapter: registered, open or recognized
   by its content, the caller's own or another actor's in the caller's space, with one answer.
2. A read's answer (``not_found``, or the file read) is decided on the caller's own folder, never
   on the folder a swapped link led the open to.
3. A refused ``data/open`` removes the file it made through the folder it pinned, also while a
   folder on the way is swapped for a link.
5. A ``config.mode: readonly`` handle answers the rights it really has.

(4, a token never run in-process, is in ``tests/test_cli_security.py``.) Every swap happens at a
hooked point, so no test depends on timing. See docs/security.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service, file_kinds
from dbhandles.errors import DbHandlesError, StorageError
from tests.security_helpers import ALICE, BOB, ROOT, refused, space, two_tenants
from tests.servers import app_client


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with two_tenants(tmp_path) as svc:
        yield svc


def _memory_handle(service: Service) -> str:
    """Alice's memory database holding one note: the source of her exports."""
    opened = service.execute("data/open", {"adapter": "memory", "config": {}}, context=ALICE)
    handle = str(opened["dbHandle"])
    service.execute("data/create", {"dbHandle": handle, "collection": "notes", "data": {"a": 1}},
                    context=ALICE)  # fmt: skip
    return handle


#: The four kinds of database, each a name in alice's space.
KINDS = ("open.json", "closed.json", "bobs.json", "db.sqlite")


def _databases(service: Service, prefix: str = "") -> dict[str, Path]:
    """Alice's space holding a database of each kind (``KINDS``, each name after ``prefix``): her
    own JSON one, open and empty; her own JSON one, closed, with a record; bob's strict JSON one
    the admin made there; her SQLite one, closed."""
    alice = space(service, "alice")
    names = {kind: f"{prefix}{kind}" for kind in KINDS}
    service.execute("data/open", {"adapter": "json", "config": {"path": names["open.json"],
                    "mode": "create"}}, context=ALICE)  # fmt: skip
    closed = service.execute("data/open", {"adapter": "json", "config": {"path": names["closed.json"],
                             "mode": "create"}}, context=ALICE)  # fmt: skip
    service.execute("data/create", {"dbHandle": closed["dbHandle"], "collection": "notes",
                    "data": {"mine": 1}}, context=ALICE)  # fmt: skip
    service.execute("data/close", {"dbHandle": closed["dbHandle"]}, context=ALICE)
    bobs = service.execute("data/open", {
        "adapter": "json", "config": {"path": str(alice / names["bobs.json"]), "mode": "create"},
        "permissions": {"isolationMode": "strict", "owner": "bob"}}, context=ROOT)  # fmt: skip
    service.execute("data/create", {"dbHandle": bobs["dbHandle"], "collection": "notes",
                    "data": {"bobs": 1}}, context=ROOT)  # fmt: skip
    service.execute("data/close", {"dbHandle": bobs["dbHandle"]}, context=ROOT)
    lite = service.execute("data/open", {"adapter": "sqlite", "config": {"path": names["db.sqlite"],
                           "mode": "create"}}, context=ALICE)  # fmt: skip
    service.execute("data/create", {"dbHandle": lite["dbHandle"], "collection": "notes",
                    "data": {"lite": 1}}, context=ALICE)  # fmt: skip
    service.execute("data/close", {"dbHandle": lite["dbHandle"]}, context=ALICE)
    return {kind: alice / name for kind, name in names.items()}


def _doors(handle: str, name: str) -> dict[str, tuple[str, dict[str, Any], str]]:
    """Each door that writes a file, aimed at the database ``name``: (command, params, the field
    refused). The partial file of an export to ``o-<kind>`` is ``.o-<kind>.partial``."""
    export = {"dbHandle": handle, "collection": "notes"}
    return {
        "export output": ("data/export", {**export, "output": name, "overwrite": True}, "output"),
        "export output, no overwrite": ("data/export", {**export, "output": name}, "output"),
        "export partial": (
            "data/export",
            {**export, "output": name[1 : -len(".partial")], "overwrite": True},
            "output",
        ),
        "import rejects": (
            "data/import",
            {
                "dbHandle": handle,
                "collection": "notes",
                "input": "in.jsonl",
                "onError": "skip",
                "rejects": name,
            },
            "rejects",
        ),
    }


@pytest.mark.parametrize("door", ["export output", "export output, no overwrite",
                                  "export partial", "import rejects"])  # fmt: skip
def test_no_door_writes_over_a_database_of_any_adapter(service: Service, door: str) -> None:
    handle = _memory_handle(service)
    prefix = ".o-" if door == "export partial" else ""
    databases = _databases(service, prefix)
    alice = space(service, "alice")
    (alice / "in.jsonl").write_text('{"a": 1}\nnot json\n')
    answers = set()
    for kind, path in databases.items():
        name = path.name + (".partial" if prefix else "")
        if prefix:  # the database is the export's partial file
            path = path.rename(alice / name)
            if kind == "open.json":
                continue  # an open handle's file cannot be renamed under it: see closed.json
        before = path.read_bytes()
        command, params, field = _doors(handle, name)[door]
        error = refused(service, command, params)
        assert (error.code, error.field) == ("path_not_allowed", field), error.message
        assert path.read_bytes() == before, f"{door} changed {kind}"
        answers.add(error.message.replace(name, "NAME"))
    # One answer for every database: whose it is, open or not, JSON or SQLite, never tells.
    assert len(answers) == 1, answers
    assert "is a database file" in answers.pop()
    if not prefix:
        reopened = service.execute("data/open", {"adapter": "json", "config": {
            "path": "closed.json"}}, context=ALICE)  # fmt: skip
        listed = service.execute("data/list", {"dbHandle": reopened["dbHandle"],
                                 "collection": "notes"}, context=ALICE)  # fmt: skip
        assert [r["mine"] for r in listed["items"]] == [1]


def test_an_export_over_another_actors_database_is_refused_over_http(service: Service) -> None:
    alice_token = service.tokens.create("alice")[0]
    databases = _databases(service)
    before = databases["bobs.json"].read_bytes()
    with app_client(service, require_token=True) as client:
        headers = {"Authorization": f"Bearer {alice_token}"}
        opened = client.post("/commands/data/open", json={"adapter": "memory", "config": {}},
                             headers=headers).json()  # fmt: skip
        answer = client.post("/commands/data/export", json={
            "dbHandle": opened["dbHandle"], "collection": "notes", "output": "bobs.json",
            "overwrite": True}, headers=headers)  # fmt: skip
    assert answer.status_code == 403
    assert answer.json()["code"] == "path_not_allowed"
    assert databases["bobs.json"].read_bytes() == before


# -- 2. a read's answer during a folder swap ------------------------------------------------------


def _folders(service: Service) -> tuple[Path, Path]:
    """Alice's ``sub`` and bob's private folder ``priv``."""
    sub = space(service, "alice") / "sub"
    priv = space(service, "bob") / "priv"
    sub.mkdir()
    priv.mkdir()
    return sub, priv


def _swapped_during(monkeypatch: pytest.MonkeyPatch, owner: object, function: str, sub: Path,
                    other: Path) -> None:  # fmt: skip
    """Make ``sub`` a link to ``other`` only while ``owner.<function>`` runs (the tester's
    swap back and forth, caught at the lookup itself)."""
    original: Callable[..., Any] = getattr(owner, function)

    def hooked(*args: Any, **kwargs: Any) -> Any:
        kept = sub.with_name("sub.kept")
        os.rename(sub, kept)
        os.symlink(other, sub)
        try:
            return original(*args, **kwargs)
        finally:
            os.unlink(sub)
            os.rename(kept, sub)

    monkeypatch.setattr(owner, function, hooked)


def test_an_import_input_answers_on_alices_folder_not_the_one_swapped_in(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub, priv = _folders(service)
    (priv / "there.jsonl").write_text('{"secret": "bob"}\n')
    (priv / "both.jsonl").write_text('{"secret": "bob"}\n')
    (sub / "both.jsonl").write_text('{"mine": 1}\n')
    handle = _memory_handle(service)
    _swapped_during(monkeypatch, file_kinds, "_look", sub, priv)

    def answer(name: str) -> DbHandlesError:
        return refused(service, "data/import", {"dbHandle": handle, "collection": "notes",
                                                "input": f"sub/{name}"})  # fmt: skip

    there, missing = answer("there.jsonl"), answer("missing.jsonl")
    # Missing in alice's folder: the same answer whether bob's folder has the name or not, and
    # bob's file is never read.
    assert (there.code, missing.code) == ("not_found", "not_found")
    assert there.message.replace("there", "X") == missing.message.replace("missing", "X")
    both = answer("both.jsonl")  # alice's own name, another file met: a path that changed
    assert both.code == "path_not_allowed" and "changed while it was checked" in both.message
    listed = service.execute("data/list", {"dbHandle": handle, "collection": "notes"},
                             context=ALICE)["items"]  # fmt: skip
    assert all("secret" not in item for item in listed)


def test_a_missing_input_is_not_found_when_nothing_was_swapped(service: Service) -> None:
    _folders(service)
    handle = _memory_handle(service)
    error = refused(service, "data/import", {"dbHandle": handle, "collection": "notes",
                                             "input": "sub/nothing.jsonl"})  # fmt: skip
    assert error.code == "not_found"


@pytest.mark.parametrize("adapter", ["json", "sqlite"])
def test_a_missing_database_is_told_only_of_alices_folder(service: Service, adapter: str) -> None:
    sub, priv = _folders(service)
    (priv / "there.db").write_text('{"format": "dbhandles-json", "version": 1, "collections": {}}')
    kept = sub.with_name("sub.kept")
    os.rename(sub, kept)
    os.symlink(priv, sub)  # while sub is swapped for a link to bob's folder
    try:
        answers = [refused(service, "data/open", {"adapter": adapter,
                                                  "config": {"path": f"sub/{name}"}})
                   for name in ("there.db", "missing.db")]  # fmt: skip
    finally:
        os.unlink(sub)
        os.rename(kept, sub)
    # Whether bob's folder has the name or not, alice gets a refusal of the path, never
    # "does not exist" for one and another answer for the other.
    assert [a.code for a in answers] == ["path_not_allowed", "path_not_allowed"], answers


# -- 3. the undo of a refused open ------------------------------------------------------------


@pytest.mark.parametrize(("adapter", "name"), [("sqlite", "n9.sqlite"), ("json", "j1.json")])
def test_a_refused_open_removes_its_file_while_the_folder_is_swapped(
    service: Service, monkeypatch: pytest.MonkeyPatch, adapter: str, name: str
) -> None:
    sub, priv = _folders(service)

    def swap_then_fail(*args: Any, **kwargs: Any) -> str:
        # The folder is swapped for a link after the file was made, and stays so for the undo.
        os.rename(sub, sub.with_name("sub.kept"))
        os.symlink(priv, sub)
        raise StorageError("disk I/O error")

    monkeypatch.setattr(service.registry, "open", swap_then_fail)
    error = refused(service, "data/open", {"adapter": adapter, "config": {
        "path": f"sub/{name}", "mode": "create"}})  # fmt: skip
    assert error.code == "path_not_allowed" and "changed while it was checked" in error.message
    os.unlink(sub)
    os.rename(sub.with_name("sub.kept"), sub)
    assert os.listdir(sub) == [], "the refused open left its file in alice's folder"
    assert os.listdir(priv) == []


# -- 5. a read-only handle's rights ------------------------------------------------------------


def test_a_read_only_handle_answers_its_effective_rights(service: Service) -> None:
    opened = service.execute("data/open", {"adapter": "sqlite", "config": {"path": "s.sqlite",
                             "mode": "create"}}, context=BOB)  # fmt: skip
    service.execute("data/grant", {"dbHandle": opened["dbHandle"], "actor": "alice",
                    "access": "write"}, context=BOB)  # fmt: skip
    path = str(space(service, "bob") / "s.sqlite")
    for context, config in ((ALICE, {"path": path}), (BOB, {"path": "s.sqlite"})):
        readonly = service.execute("data/open", {"adapter": "sqlite",
                                   "config": {**config, "mode": "readonly"}}, context=context)  # fmt: skip
        rights = readonly["permissions"]
        assert (rights["read"], rights["write"], rights["delete"]) == (True, False, False)
        listed = service.execute("data/list-handles", {}, context=context)["handles"]
        mine = next(h for h in listed if h["handle"] == readonly["dbHandle"])
        assert (mine["permissions"]["write"], mine["permissions"]["delete"]) == (False, False)
    writable = service.execute("data/open", {"adapter": "sqlite", "config": {"path": path}},
                               context=ALICE)  # fmt: skip
    assert writable["permissions"]["write"] is True
