"""Issue 12, round twenty-four: lookups through a pinned folder, the undo of an open refused after
SQLite wrote its file, outputs over a registered database or a JSON adapter's own files, and
what ``data/list-handles`` says an actor may do on ``default``.

1. Every check of a tenant's input (and of a database file to open) looks its name up in its
   folder pinned, never by the path: with a folder on the way swapped for a link to bob's space,
   the answer is ``changed`` whatever bob's folder holds, and nothing there is read.
2. A refused ``data/open`` removes the database file it made (and SQLite's side files) at every
   refusal point after SQLite wrote it, through its pinned folder, also during a swap.
3. A file a command writes is refused under the name of a registered database whose file is
   missing now.
4. A JSON-adapter database is recognised as the adapter opens it (any key order, escapes).
5. The JSON adapter's lock and temporary files are refused as files to write.
6. (The CLI's part is in ``tests/test_cli_security.py``.) ``data/list-handles`` shows a non-admin
   actor's effective rights on ``default``.

Every swap happens at a hooked point, so no test depends on timing. See docs/security.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.adapters import jsonfile, sqlite
from dbhandles.errors import DbHandlesError, StorageError
from dbhandles.importer import target
from dbhandles.pinned import changed
from tests.security_helpers import ALICE, ROOT, refused, space, two_tenants


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with two_tenants(tmp_path) as svc:
        yield svc


def _folders(service: Service) -> tuple[Path, Path]:
    """Alice's ``sub`` and bob's private folder ``priv``."""
    sub = space(service, "alice") / "sub"
    priv = space(service, "bob") / "priv"
    sub.mkdir()
    priv.mkdir()
    return sub, priv


def _swap(sub: Path, other: Path) -> Callable[[], None]:
    """Make ``sub`` a link to ``other`` (the tester's ``RENAME_EXCHANGE``); returns the undo."""
    kept = sub.with_name(sub.name + ".kept")
    os.rename(sub, kept)
    os.symlink(other, sub)

    def back() -> None:
        os.unlink(sub)
        os.rename(kept, sub)

    return back


def _swapped_during(monkeypatch: pytest.MonkeyPatch, owner: object, function: str, sub: Path,
                    other: Path) -> None:  # fmt: skip
    """``sub`` is a link to ``other`` only while ``owner.<function>`` runs."""
    original: Callable[..., Any] = getattr(owner, function)

    def hooked(*args: Any, **kwargs: Any) -> Any:
        back = _swap(sub, other)
        try:
            return original(*args, **kwargs)
        finally:
            back()

    monkeypatch.setattr(owner, function, hooked)


def _memory_handle(service: Service) -> str:
    opened = service.execute("data/open", {"adapter": "memory", "config": {}}, context=ALICE)
    return str(opened["dbHandle"])


# -- 1. lookups through the pinned folder ----------------------------------------------------------


def _sqlite_file(path: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()


#: What bob's folder holds under the name alice asks for: nothing, a file, a folder, a database.
BOBS = {
    "nothing": lambda p: None,
    "file": lambda p: p.write_text('{"secret": "bob"}\n'),
    "folder": lambda p: p.mkdir(),
    "sqlite": _sqlite_file,
}


@pytest.mark.parametrize("tail", ["", "/zz"])
def test_an_import_input_is_looked_up_in_alices_pinned_folder(
    service: Service, monkeypatch: pytest.MonkeyPatch, tail: str
) -> None:
    sub, priv = _folders(service)
    handle = _memory_handle(service)
    # The folder is swapped for a link to bob's for as long as the gate looks the name up.
    _swapped_during(monkeypatch, target, "check_plain", sub, priv)
    answers = {}
    for what, make in BOBS.items():
        name = f"secret-{what}.jsonl"
        make(priv / name)
        error = refused(service, "data/import", {"dbHandle": handle, "collection": "notes",
                                                 "input": f"sub/{name}{tail}"})  # fmt: skip
        answers[what] = (error.code, error.message.replace(name, "NAME"))
    # One answer whatever bob's folder holds: a path that changed while it was checked.
    assert len(set(answers.values())) == 1, answers
    code, message = answers["nothing"]
    assert code == "path_not_allowed" and "changed while it was checked" in message


@pytest.mark.parametrize("adapter", ["json", "sqlite"])
def test_a_database_to_open_is_looked_up_in_alices_pinned_folder(
    service: Service, monkeypatch: pytest.MonkeyPatch, adapter: str
) -> None:
    sub, priv = _folders(service)
    owner = jsonfile if adapter == "json" else sqlite
    hooked = "check_plain" if adapter == "json" else "check_target"
    if not hasattr(owner, hooked):
        pytest.skip(f"the {adapter} adapter has no {hooked}")
    _swapped_during(monkeypatch, owner, hooked, sub, priv)
    answers = set()
    for what, make in BOBS.items():
        name = f"db-{what}.x"
        make(priv / name)
        error = refused(service, "data/open", {"adapter": adapter,
                                               "config": {"path": f"sub/{name}/zz"}})  # fmt: skip
        answers.add((error.code, error.message.replace(name, "NAME")))
    assert len(answers) == 1, answers
    assert next(iter(answers))[0] == "path_not_allowed"


def test_a_lookup_in_alices_own_folders_still_says_what_is_wrong(service: Service) -> None:
    """Without a swap, a name under one of alice's own files is her mistake, told as before."""
    sub, _ = _folders(service)
    (sub / "mine.jsonl").write_text('{"a": 1}\n')
    handle = _memory_handle(service)
    error = refused(service, "data/import", {"dbHandle": handle, "collection": "notes",
                                             "input": "sub/mine.jsonl/zz"})  # fmt: skip
    assert error.code in ("invalid_params", "not_found"), error.message
    missing = refused(service, "data/import", {"dbHandle": handle, "collection": "notes",
                                               "input": "sub/none.jsonl"})  # fmt: skip
    assert missing.code == "not_found"


def test_the_gate_reads_no_header_through_a_link(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SQLite-header test reads through the pinned folder: a folder swapped for a link to
    bob's database is refused before any of its bytes are read."""
    from dbhandles import pinned_look

    sub, priv = _folders(service)
    _sqlite_file(priv / "db.jsonl")
    (sub / "db.jsonl").write_text('{"mine": 1}\n')
    read: list[str] = []
    original = pinned_look._read_at

    def spy(folder: Any, identity: Any, n: int, field: str) -> bytes:
        read.append(folder.path)
        return original(folder, identity, n, field)

    monkeypatch.setattr(pinned_look, "_read_at", spy)
    handle = _memory_handle(service)
    _swapped_during(monkeypatch, target, "check_plain", sub, priv)
    error = refused(service, "data/import", {"dbHandle": handle, "collection": "notes",
                                             "input": "sub/db.jsonl"})  # fmt: skip
    assert error.code == "path_not_allowed" and "changed while it was checked" in error.message
    assert read == []


# -- 2. the undo of an open refused after SQLite wrote its file -------------------------------------


def _refusing(sub: Path, priv: Path, how: str) -> Callable[..., Any]:
    """A hook that swaps ``sub`` for a link to ``priv`` (left so for the undo) and refuses."""

    def hook(*args: Any, **kwargs: Any) -> Any:
        _swap(sub, priv)
        if how == "refusal":
            raise changed("config.path", str(sub))
        raise StorageError("disk I/O error")

    return hook


#: Where an open is refused after SQLite wrote its file (page size, WAL), by module and name.
POINTS = {
    "after the journal mode": (sqlite, "bounded"),
    "catalog check": (sqlite.Catalog, "refresh"),
}


@pytest.mark.parametrize("how", ["refusal", "storage error"])
@pytest.mark.parametrize("point", [*POINTS, "after the handle opened"])
def test_an_open_refused_after_sqlite_wrote_removes_its_file(
    service: Service, monkeypatch: pytest.MonkeyPatch, point: str, how: str
) -> None:
    sub, priv = _folders(service)
    hook = _refusing(sub, priv, how)
    if point == "after the handle opened":
        original = service.registry.open

        def opened_then_refused(*args: Any, **kwargs: Any) -> str:
            handle = original(*args, **kwargs)
            service.registry.close(handle)
            assert (sub / "n.sqlite").stat().st_size > 0  # SQLite wrote the file
            return str(hook())

        monkeypatch.setattr(service.registry, "open", opened_then_refused)
    else:
        owner, name = POINTS[point]
        original_point: Callable[..., Any] = getattr(owner, name)

        def written_then_refused(*args: Any, **kwargs: Any) -> Any:
            original_point(*args, **kwargs)  # what SQLite writes is written
            return hook()

        monkeypatch.setattr(owner, name, written_then_refused)
    error = refused(service, "data/open", {"adapter": "sqlite", "config": {
        "path": "sub/n.sqlite", "mode": "create"}})  # fmt: skip
    assert error.code == "path_not_allowed" and "changed while it was checked" in error.message
    os.unlink(sub)
    os.rename(sub.with_name("sub.kept"), sub)
    assert os.listdir(sub) == [], "the refused open left its files in alice's folder"
    assert os.listdir(priv) == []


def test_an_undo_keeps_a_database_someone_wrote_meanwhile(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The undo removes only what the refused open made: a table written meanwhile stays."""
    import sqlite3

    sub, _ = _folders(service)
    original = service.registry.open

    def written_meanwhile(*args: Any, **kwargs: Any) -> str:
        service.registry.close(original(*args, **kwargs))
        conn = sqlite3.connect(sub / "w.sqlite")
        conn.execute("CREATE TABLE kept (x)")
        conn.commit()
        conn.close()
        raise changed("config.path", "sub/w.sqlite")

    monkeypatch.setattr(service.registry, "open", written_meanwhile)
    refused(service, "data/open", {"adapter": "sqlite", "config": {
        "path": "sub/w.sqlite", "mode": "create"}})  # fmt: skip
    assert (sub / "w.sqlite").exists()


# -- 3. a registered database whose file is missing ------------------------------------------------


def _export(service: Service, output: str) -> DbHandlesError:
    handle = _memory_handle(service)
    service.execute("data/create", {"dbHandle": handle, "collection": "notes", "data": {"a": 1}},
                    context=ALICE)  # fmt: skip
    return refused(service, "data/export", {"dbHandle": handle, "collection": "notes",
                                            "output": output, "overwrite": True})  # fmt: skip


@pytest.mark.parametrize("open_handle", [True, False])
def test_an_export_never_takes_the_name_of_a_registered_database(
    service: Service, open_handle: bool
) -> None:
    alice = space(service, "alice")
    opened = service.execute("data/open", {
        "adapter": "sqlite", "config": {"path": str(alice / "bobx.sqlite"), "mode": "create"},
        "permissions": {"isolationMode": "strict", "owner": "bob"}}, context=ROOT)  # fmt: skip
    if not open_handle:
        service.execute("data/close", {"dbHandle": opened["dbHandle"]}, context=ROOT)
    for name in os.listdir(alice):
        if name.startswith("bobx.sqlite"):
            os.unlink(alice / name)  # someone deletes the file
    error = _export(service, "bobx.sqlite")
    assert (error.code, error.field) == ("path_not_allowed", "output"), error.message
    assert "is a database file" in error.message
    assert not (alice / "bobx.sqlite").exists()


def test_rejects_never_take_the_name_of_a_registered_database(service: Service) -> None:
    alice = space(service, "alice")
    opened = service.execute("data/open", {"adapter": "json", "config": {
        "path": "gone.json", "mode": "create"}}, context=ALICE)  # fmt: skip
    service.execute("data/close", {"dbHandle": opened["dbHandle"]}, context=ALICE)
    (alice / "gone.json").unlink(missing_ok=True)
    (alice / "in.jsonl").write_text('{"a": 1}\nnot json\n')
    error = refused(service, "data/import", {
        "dbHandle": _memory_handle(service), "collection": "notes", "input": "in.jsonl",
        "onError": "skip", "rejects": "gone.json"})  # fmt: skip
    assert (error.code, error.field) == ("path_not_allowed", "rejects"), error.message


# -- 4. JSON databases recognised as the adapter opens them -------------------------------------


JSON_DATABASES = {
    "format last": b'{"collections":{},"version":1,"format":"dbhandles-json"}',
    "escaped": b'{"format":"dbhandles\\u002djson","version":1,"collections":{}}',
    "escaped key": b'{"\\u0066ormat":"dbhandles-json","collections":{"n":[]}}',
    "pretty, format last": b'{\n  "collections": {},\n  "format": "dbhandles-json"\n}\n',
}


@pytest.mark.parametrize("kind", list(JSON_DATABASES))
def test_a_json_database_is_recognised_as_the_adapter_opens_it(service: Service, kind: str) -> None:
    alice = space(service, "alice")
    path = alice / "hand.json"
    path.write_bytes(JSON_DATABASES[kind])
    # The adapter opens it as a database ...
    opened = service.execute("data/open", {"adapter": "json", "config": {"path": "hand.json",
                             "mode": "readonly"}}, context=ALICE)  # fmt: skip
    service.execute("data/close", {"dbHandle": opened["dbHandle"]}, context=ALICE)
    path.write_bytes(JSON_DATABASES[kind])
    # ... so no export replaces it (its owner record gone, it is known by its content alone).
    assert jsonfile.JsonFileAdapter.recognizes(str(path))
    error = _export(service, "hand.json")
    assert (error.code, error.field) == ("path_not_allowed", "output"), error.message
    assert path.read_bytes() == JSON_DATABASES[kind]


@pytest.mark.parametrize("content", [
    b'{"format": "dbhandles-json", "collections": {}}\n{"format": "dbhandles-json"}\n',
    b'{"format": "other", "collections": {}}',
    b'{"format": "dbhandles-json", "collections": []}',
    b'[{"format": "dbhandles-json"}]',
    b'{"a": 1}\n{"b": 2}\n',
])  # fmt: skip
def test_a_json_file_the_adapter_would_not_open_is_no_database(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "data.json"
    path.write_bytes(content)
    assert not jsonfile.JsonFileAdapter.recognizes(str(path))


# -- 5. the JSON adapter's own files ---------------------------------------------------------------


@pytest.mark.parametrize("whose", ["own", "bob's"])
@pytest.mark.parametrize("suffix", [".lock", "tmp"])
def test_no_output_replaces_a_json_adapters_own_file(
    service: Service, whose: str, suffix: str
) -> None:
    alice = space(service, "alice")
    name = "own.json" if whose == "own" else "bobs.json"
    config = {"path": name if whose == "own" else str(alice / name), "mode": "create"}
    extra = {} if whose == "own" else {"permissions": {"isolationMode": "strict", "owner": "bob"}}
    opened = service.execute("data/open", {"adapter": "json", "config": config, **extra},
                             context=ALICE if whose == "own" else ROOT)  # fmt: skip
    service.execute("data/create", {"dbHandle": opened["dbHandle"], "collection": "notes",
                    "data": {"x": 1}}, context=ALICE if whose == "own" else ROOT)  # fmt: skip
    own_file = f"{name}.lock" if suffix == ".lock" else f".{name}.0123abcd.tmp"
    if not (alice / own_file).exists():
        (alice / own_file).write_bytes(b"")
    before = (alice / own_file).read_bytes()
    error = _export(service, own_file)
    assert (error.code, error.field) == ("path_not_allowed", "output"), error.message
    assert "a database's own files" in error.message
    assert (alice / own_file).read_bytes() == before
    (alice / "in.jsonl").write_text('{"a": 1}\nnot json\n')
    rejects = refused(service, "data/import", {
        "dbHandle": _memory_handle(service), "collection": "notes", "input": "in.jsonl",
        "onError": "skip", "rejects": own_file})  # fmt: skip
    assert (rejects.code, rejects.field) == ("path_not_allowed", "rejects")


def test_a_lock_file_of_no_database_is_an_ordinary_name(service: Service) -> None:
    handle = _memory_handle(service)
    service.execute("data/create", {"dbHandle": handle, "collection": "notes", "data": {"a": 1}},
                    context=ALICE)  # fmt: skip
    done = service.execute("data/export", {"dbHandle": handle, "collection": "notes",
                           "output": "plain.lock"}, context=ALICE)  # fmt: skip
    assert done["success"] is True


# -- 6. an actor's rights on default -----------------------------------------------------------


def test_list_handles_shows_an_actors_effective_rights_on_default(service: Service) -> None:
    handles = service.execute("data/list-handles", {}, context=ALICE)["handles"]
    default = next(h for h in handles if h["isDefault"])
    rights = default["permissions"]
    assert rights is not None, "null would say alice may do anything there"
    assert rights["delete"] is False and rights["schema"] is False
    assert rights["read"] is True and rights["write"] is True
    admin = service.execute("data/list-handles", {}, context=ROOT)["handles"]
    assert next(h for h in admin if h["isDefault"])["permissions"] is None


def test_a_json_adapters_lock_file_is_no_import_input(service: Service) -> None:
    """The read door refuses the adapter's own files as SQLite's side files are refused."""
    alice = space(service, "alice")
    opened = service.execute("data/open", {"adapter": "json", "config": {
        "path": "mine.json", "mode": "create"}}, context=ALICE)  # fmt: skip
    service.execute("data/create", {"dbHandle": opened["dbHandle"], "collection": "notes",
                    "data": {"x": 1}}, context=ALICE)  # fmt: skip
    (alice / "mine.json.lock").write_text('{"a": 1}\n')  # whatever it holds
    error = refused(service, "data/import", {"dbHandle": _memory_handle(service),
                    "collection": "notes", "input": "mine.json.lock"})  # fmt: skip
    assert (error.code, error.field) == ("path_not_allowed", "input"), error.message
    assert "a database's own files" in error.message
