"""Issue 12, the review of this session's checks of a file a command writes
(``security/database_files.py``).

1. Whether a file to write (or read) is a database is looked up in its folder pinned and its
   bytes read through that folder: with a folder on the way swapped for a link to bob's space,
   the answer is ``changed`` whatever bob's folder holds (a database, a JSON database, a JSON
   adapter's lock file, a file, a folder, nothing), and nothing of bob's is read.
2. The cheap checks come first and are made once: a registered database is known by a store
   lookup by its path (``HandleStore.has_handle_on``), never by reading every stored handle; a
   file that cannot be an adapter's database is never parsed by it.

Every swap happens at a hooked point, so no test depends on timing. See docs/security.md.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service, pinned_look
from dbhandles.adapters import jsonfile
from dbhandles.importer import target
from tests.security_helpers import ALICE, refused, space, two_tenants
from tests.test_security_round24 import _folders, _memory_handle, _swapped_during


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with two_tenants(tmp_path) as svc:
        yield svc


def _sqlite_file(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()


JSON_DATABASE = b'{"format":"dbhandles-json","version":1,"collections":{}}'

#: What bob's folder holds under the name alice writes: nothing, a file, a folder, an SQLite
#: database, a JSON database, a JSON database beside a lock file of that name.
BOBS: dict[str, Callable[[Path], object]] = {
    "nothing": lambda p: None,
    "file": lambda p: p.write_text('{"secret": "bob"}\n'),
    "folder": lambda p: p.mkdir(),
    "sqlite": _sqlite_file,
    "json": lambda p: p.write_bytes(JSON_DATABASE),
    "lock": lambda p: (p.with_name(p.name.removesuffix(".lock")).write_bytes(JSON_DATABASE),
                       p.write_bytes(b"")),
}  # fmt: skip


def _export(service: Service, handle: str, output: str) -> Any:
    return refused(service, "data/export", {"dbHandle": handle, "collection": "notes",
                                            "output": output, "overwrite": True})  # fmt: skip


@pytest.mark.parametrize("tail", ["", ".lock"])
def test_an_output_is_looked_up_in_alices_pinned_folder(
    service: Service, monkeypatch: pytest.MonkeyPatch, tail: str
) -> None:
    sub, priv = _folders(service)
    handle = _memory_handle(service)
    service.execute("data/create", {"dbHandle": handle, "collection": "notes", "data": {"a": 1}},
                    context=ALICE)  # fmt: skip
    read: list[str] = []
    original = pinned_look._read_at

    def spy(folder: Any, identity: Any, n: int, field: str | None) -> bytes:
        read.append(folder.path)
        return original(folder, identity, n, field)

    monkeypatch.setattr(pinned_look, "_read_at", spy)
    # The folder is a link to bob's for as long as the database check looks the name up.
    _swapped_during(monkeypatch, target, "check_database_output", sub, priv)
    answers = {}
    for what, make in BOBS.items():
        name = f"out-{what}.json{tail}" if what != "lock" else f"out-{what}.json.lock"
        make(priv / name)
        error = _export(service, handle, f"sub/{name}")
        answers[what] = (error.code, error.message.replace(name, "NAME"))
    assert len(set(answers.values())) == 1, answers
    code, message = answers["nothing"]
    assert code == "path_not_allowed" and "changed while it was checked" in message
    assert not [path for path in read if str(priv) in path]


def test_an_import_input_database_check_reads_nothing_through_a_link(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read door's database check (``is_database_file`` for a tenant's input) looks the
    name up pinned too: swapped at that moment, one answer whatever bob's folder holds."""
    sub, priv = _folders(service)
    handle = _memory_handle(service)
    _swapped_during(monkeypatch, target, "_check_database_input", sub, priv)
    answers = set()
    for what, make in BOBS.items():
        name = f"in-{what}.json"
        (sub / name).write_text('{"mine": 1}\n')
        make(priv / name)
        error = refused(service, "data/import", {"dbHandle": handle, "collection": "notes",
                                                 "input": f"sub/{name}"})  # fmt: skip
        answers.add((error.code, error.message.replace(name, "NAME")))
    assert len(answers) == 1, answers
    code, message = next(iter(answers))
    assert code == "path_not_allowed" and "changed while it was checked" in message


def test_a_registered_database_is_found_by_a_store_lookup_by_path(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No output check reads every stored handle; the lookup by path finds a stored handle's
    file, and only that file."""
    alice = space(service, "alice")
    opened = service.execute("data/open", {"adapter": "json", "config": {
        "path": "kept.json", "mode": "create"}}, context=ALICE)  # fmt: skip
    store = service.access.store
    assert store.has_handle_on(str(alice / "kept.json"))
    assert not store.has_handle_on(str(alice / "kept.jso"))
    assert not store.has_handle_on(str(alice / "kept_json"))  # LIKE's "_" is escaped
    assert not store.has_handle_on(str(alice / "%"))
    handle = _memory_handle(service)
    service.execute("data/create", {"dbHandle": handle, "collection": "notes", "data": {"a": 1}},
                    context=ALICE)  # fmt: skip
    checking: list[bool] = []
    listed: list[int] = []
    every = type(store).list_handles
    check = target.check_database_output

    def counted(self: Any) -> Any:
        listed.extend([1] if checking else [])
        return every(self)

    def checked(*args: Any, **kwargs: Any) -> None:
        checking.append(True)
        try:
            check(*args, **kwargs)
        finally:
            checking.clear()

    monkeypatch.setattr(type(store), "list_handles", counted)
    monkeypatch.setattr(target, "check_database_output", checked)
    error = _export(service, handle, "kept.json")
    assert (error.code, error.field) == ("path_not_allowed", "output"), error.message
    service.execute("data/export", {"dbHandle": handle, "collection": "notes",
                                    "output": "fresh.jsonl"}, context=ALICE)  # fmt: skip
    assert listed == []
    assert opened["dbHandle"]


def test_a_file_no_adapter_could_read_is_never_parsed(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An existing output that does not start as a JSON object is not handed to the JSON
    adapter's parser (nor read past its first bytes); one that does is, once."""
    alice = space(service, "alice")
    parsed: list[int] = []
    original = jsonfile.JsonFileAdapter.recognizes_head.__func__  # type: ignore[attr-defined]

    def counted(cls: Any, head: bytes) -> bool:
        parsed.append(len(head))
        return bool(original(cls, head))

    monkeypatch.setattr(jsonfile.JsonFileAdapter, "recognizes_head", classmethod(counted))
    handle = _memory_handle(service)
    service.execute("data/create", {"dbHandle": handle, "collection": "notes", "data": {"a": 1}},
                    context=ALICE)  # fmt: skip
    (alice / "old.csv").write_text("a,b\n1,2\n")
    service.execute("data/export", {"dbHandle": handle, "collection": "notes",
                                    "output": "old.csv", "overwrite": True}, context=ALICE)  # fmt: skip
    assert parsed == []
    (alice / "hand.json").write_bytes(JSON_DATABASE)
    error = _export(service, handle, "hand.json")
    assert (error.code, error.field) == ("path_not_allowed", "output"), error.message
    assert parsed == [len(JSON_DATABASE)]
