"""Issue 12, round six: what an outside tester holding an ordinary token still found.

A non-admin never reads a file with other names (hard links); a name never gets two kinds of
token, however the creates race; replies show only isolation modes that are stored. See
docs/security.md.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import Context, Service
from dbhandles.errors import DbHandlesError, InvalidParams
from dbhandles.importer.reader import ChunkReader
from dbhandles.security import paths
from dbhandles.settings import Settings
from dbhandles.store import file_database
from tests.security_helpers import ALICE, BOB, ROOT, refused


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[tuple[Service, Path]]:
    """A service with one read root, and that root."""
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    settings = Settings(home=tmp_path / "home", read_roots=(datasets,))
    with Service(settings=settings) as service:
        yield service, datasets


# -- 1. hard links ----------------------------------------------------------------------------------


def test_a_hard_link_to_the_admin_token_in_a_read_root_is_never_read(
    shared: tuple[Service, Path],
) -> None:
    service, datasets = shared
    assert service.tokens.ensure_admin_token() is not None
    token = Path(service.settings.home) / "admin.token"
    os.link(token, datasets / "hard.jsonl")
    (datasets / "plain.jsonl").write_text('{"n": 1}\n')
    hard, elsewhere = str(datasets / "hard.jsonl"), str(datasets.parent / "elsewhere.jsonl")
    outside = refused(service, "data/import", {"dbHandle": "default", "collection": "x",
                                               "input": elsewhere}, BOB)  # fmt: skip
    error = refused(service, "data/import", {"dbHandle": "default", "collection": "x",
                                             "input": hard, "onError": "skip",
                                             "rejects": "rej.jsonl"}, BOB)  # fmt: skip
    assert error.code == outside.code == "path_not_allowed"
    # The same words as any path outside the reader's places: no oracle.
    assert str(error).replace(hard, "P") == str(outside).replace(elsewhere, "P")
    assert not (service.settings.space_root() / "bob" / "rej.jsonl").exists()
    # A file with one name in the same root imports; with other names it is refused to every
    # caller, an administrator too (docs/security.md, "One name per file").
    service.execute("data/import", {"dbHandle": "default", "collection": "x",
                                    "input": str(datasets / "plain.jsonl")}, context=BOB)  # fmt: skip
    os.link(datasets / "plain.jsonl", datasets / "plain2.jsonl")
    again = {"dbHandle": "default", "collection": "x", "input": str(datasets / "plain.jsonl")}
    assert refused(service, "data/import", again, BOB).code == "path_not_allowed"
    assert refused(service, "data/import", again, ROOT).code == "path_not_allowed"


def test_a_hard_link_into_another_actors_space_is_never_read(service: Service) -> None:
    service.execute("data/open", {"adapter": "sqlite", "config": {"path": "a.sqlite",
                                  "mode": "create"}}, context=ALICE)  # fmt: skip
    alice = service.settings.space_root() / "alice"
    (alice / "secret.jsonl").write_text('{"secret": 1}\n')
    bob = service.settings.space_root() / "bob"
    bob.mkdir(parents=True, exist_ok=True)
    os.link(alice / "secret.jsonl", bob / "mine.jsonl")
    os.link(alice / "a.sqlite", bob / "db.sqlite")
    for name, params in [
        ("data/import", {"dbHandle": "default", "collection": "x", "input": "mine.jsonl"}),
        ("data/export", {"input": "db.sqlite", "collection": "c", "output": "o.jsonl"}),
        ("data/open", {"adapter": "sqlite", "config": {"path": "db.sqlite"}}),
        ("data/open", {"adapter": "json", "config": {"path": "mine.jsonl"}}),
    ]:
        error = refused(service, name, params, BOB)
        assert error.code == "path_not_allowed", (name, error)
    assert not (bob / "o.jsonl").exists()


def test_a_link_swapped_in_after_the_check_is_caught_on_the_open_file(
    shared: tuple[Service, Path],
) -> None:
    service, datasets = shared
    (datasets / "in.jsonl").write_text('{"n": 1}\n')
    (datasets / "other.jsonl").write_text('{"n": 2}\n')
    token = paths.begin_call()
    try:
        found = paths.resolve(service.settings, BOB, str(datasets / "in.jsonl"), "input", "input")
        assert found.identity is not None
        ChunkReader(found.path).close()  # unchanged: read
        os.replace(datasets / "other.jsonl", datasets / "in.jsonl")  # another file, one name
        with pytest.raises(DbHandlesError) as caught:
            ChunkReader(found.path).close()
        assert caught.value.code == "path_not_allowed"
        # A second name given to the checked file after the check.
        found = paths.resolve(service.settings, BOB, str(datasets / "in.jsonl"), "input", "input")
        os.link(datasets / "in.jsonl", datasets / "again.jsonl")
        with pytest.raises(DbHandlesError) as caught:
            ChunkReader(found.path).close()
        assert caught.value.code == "path_not_allowed"
    finally:
        paths.end_call(token)


# -- 2. one name, one kind of token, however the creates race ---------------------------------------


def _race(services: list[Service], name: str) -> list[bool]:
    """Two ``token/create`` for ``name`` at once, one ``admin: true``; which succeeded."""
    barrier = threading.Barrier(2)
    outcome: list[str] = ["", ""]

    def create(i: int) -> None:
        barrier.wait()
        try:
            services[i].execute("token/create", {"actor": name, "admin": i == 0}, context=ROOT)
            outcome[i] = "created"
        except DbHandlesError as exc:
            outcome[i] = exc.code

    threads = [threading.Thread(target=create, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcome) == ["created", "invalid_params"], outcome
    return [o == "created" for o in outcome]


def _kinds(service: Service, name: str) -> set[bool]:
    return {row.is_admin for row in service.tokens.list() if row.actor == name}


def test_concurrent_creates_never_give_one_name_both_kinds(service: Service) -> None:
    for i in range(15):
        name = f"racer{i}"
        assert _race([service, service], name).count(True) == 1
        assert len(_kinds(service, name)) == 1


def test_two_services_on_one_home_never_give_one_name_both_kinds(home: Path) -> None:
    with Service(settings=Settings(home=home)) as one, Service(settings=Settings(home=home)) as two:
        for i in range(10):
            name = f"racer{i}"
            assert _race([one, two], name).count(True) == 1
            assert len(_kinds(one, name)) == 1


# -- 8. names that differ only in case --------------------------------------------------------------


@pytest.mark.parametrize("name", ["Admin", "ADMIN", "Local", "ANONYMOUS", "Invalid-Token"])
def test_a_reserved_name_in_another_case_is_refused(service: Service, name: str) -> None:
    for admin in (False, True):
        error = refused(service, "token/create", {"actor": name, "admin": admin}, ROOT)
        assert error.code == "invalid_params" and "only in case" in str(error)


def test_an_existing_actor_name_in_another_case_is_refused(service: Service) -> None:
    service.execute("token/create", {"actor": "alice"}, context=ROOT)
    for name in ("Alice", "ALICE"):
        for admin in (False, True):
            error = refused(service, "token/create", {"actor": name, "admin": admin}, ROOT)
            assert error.code == "invalid_params" and '"alice"' in str(error)
    # The same name keeps its rules; another name is still free.
    service.execute("token/create", {"actor": "alicia"}, context=ROOT)


# -- 3. replies show only stored isolation modes ----------------------------------------------------


def _open(service: Service, path: str, context: Context, **more: Any) -> dict[str, Any]:
    params = {"adapter": "sqlite", "config": {"path": path, "mode": "create"}, **more}
    result: dict[str, Any] = service.execute("data/open", params, context=context)
    return result


def _mode(reply: dict[str, Any]) -> str | None:
    permissions = reply.get("permissions")
    return None if permissions is None else permissions.get("isolationMode")


def test_a_non_owner_never_sees_a_mode_it_asked_for_but_was_not_stored(service: Service) -> None:
    _open(service, "cam.sqlite", ALICE, permissions={"isolationMode": "soft"})
    path = str(service.settings.space_root() / "alice" / "cam.sqlite")
    for more in ({"permissions": {"isolationMode": "strict"}}, {"preset": "PERSONA_KNOWLEDGE"}):
        reply = _open(service, path, BOB, **more)
        assert _mode(reply) == "soft", (more, reply)
    assert _isolation(service, path) == "soft"
    # An administrator naming no owner records nothing on alice's database, and says so.
    reply = _open(service, path, ROOT, permissions={"isolationMode": "none"})
    assert _mode(reply) == "soft" and _isolation(service, path) == "soft"
    reply = _open(service, path, ROOT, permissions={"isolationMode": "none", "owner": "alice"})
    assert _mode(reply) == "none" and _isolation(service, path) == "none"


def test_a_reopen_answers_the_stored_mode_none_included(service: Service) -> None:
    _open(service, "n.sqlite", ALICE)
    assert _mode(_open(service, "n.sqlite", ALICE)) == "none"


def test_list_handles_shows_the_stored_mode_not_the_mode_opened_with(service: Service) -> None:
    first = _open(service, "l.sqlite", ALICE, permissions={"isolationMode": "strict"})["dbHandle"]
    _open(service, "l.sqlite", ALICE, permissions={"isolationMode": "soft"})
    for context in (ALICE, ROOT):
        listed = service.execute("data/list-handles", {}, context=context)["handles"]
        mine = next(h for h in listed if h["handle"] == first)
        assert mine["permissions"]["isolationMode"] == "soft"


def _isolation(service: Service, path: str) -> str:
    record = service.access.store.get_database(file_database(path))
    assert record is not None
    return record.isolation


def test_the_display_rule_is_exactly_the_unicode_categories_it_names() -> None:
    """``UNSHOWABLE_CLASS`` is written out (no ``\\p{...}`` in ``re``): it must be Cc, Cf, Zl and Zp
    of the running Python's Unicode tables, surrogates aside (no text holds one)."""
    import unicodedata

    from dbhandles.security.names import UNSHOWABLE

    expected = {
        cp for cp in range(0x110000)
        if not 0xD800 <= cp <= 0xDFFF and unicodedata.category(chr(cp)) in {"Cc", "Cf", "Zl", "Zp"}
    }  # fmt: skip
    found = {
        cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF and UNSHOWABLE.match(chr(cp))
    }
    assert found == expected


@pytest.mark.parametrize("char", ["\u200b", "\ufeff", "\u2061", "\u206b", "\u202e", "\x1b",
                                  "\u2028", "\U000e0041", "\xad"])  # fmt: skip
def test_invisible_characters_are_escaped_in_every_format_and_refused_in_names(char: str) -> None:
    from dbhandles.cli.output import render_json, render_table
    from dbhandles.security.names import check_name

    envelope = {"success": True, "items": [{"id": f"a{char}b", "text": f"x{char}y"}]}
    for text in (render_json(envelope), render_table(envelope)):
        assert char not in text
    assert orjson.loads(render_json(envelope))["items"][0]["id"] == f"a{char}b"
    with pytest.raises(InvalidParams):
        check_name(f"m{char}x", "config.name")


def test_a_table_cell_is_cut_before_it_is_escaped() -> None:
    from dbhandles.cli.output import render_table

    cell = "x" * 200 + "\u2028" * 50
    text = render_table({"success": True, "items": [{"id": "a", "text": cell}]})
    assert "…" in text and "\\u20…" not in text and "\\u2028" not in text.split("…")[0][-3:]


@pytest.mark.parametrize("suffix", ["-wal", "-shm", "-journal"])
def test_a_side_file_linked_from_another_database_is_never_used(
    tmp_path: Path, suffix: str
) -> None:
    """A hard link to bob's ``c.sqlite-wal`` planted as ``Y.sqlite-wal`` made a connection to
    ``Y.sqlite`` read bob's records and write into his database (SQLite opens side files by name)."""
    import sqlite3

    with Service(home=tmp_path / "home") as service:
        theirs = tmp_path / "c.sqlite"
        opened = service.execute(
            "data/open", {"adapter": "sqlite", "config": {"path": str(theirs), "mode": "create"}}
        )
        service.execute("data/create", {"dbHandle": opened["dbHandle"], "collection": "diary",
                                        "id": "d1", "data": {"text": "TOPSECRET"}})  # fmt: skip
        mine = tmp_path / "Y.sqlite"
        sqlite3.connect(mine).close()
        side = tmp_path / f"c.sqlite{suffix}"
        if not side.exists():
            side.write_bytes(b"")
        os.link(side, tmp_path / f"Y.sqlite{suffix}")
        with pytest.raises(DbHandlesError) as refused:
            service.execute("data/open", {"adapter": "sqlite", "config": {"path": str(mine)}})
        assert refused.value.code == "not_a_database"
        assert "side file" in refused.value.message
