"""Issue 12, audit rows that tell the truth: an outside tester's findings, each tested as a kind.

1. No path a caller gives may hold a control character (a line break would split an audit row's
   ``target`` into lines naming other files): every door refuses it, naming the field; a real path
   that holds one (through a link) is escaped in ``target``, one line per target.
2. ``data/audit``'s ``handle`` filter takes an actor's alias as an administrator sees it
   (``alice:camel``), and matches the rows of that handle id.
5. A call that names a database by its file names the handle open on that file in its row,
   refused or not; ``data/batch`` rows name their collections; ``data/job-start`` rows name the job's
   command's target and operation.
6. Every path of an import is decided whatever ``onError`` is.

(3 and 4, the session id doors, are in tests/test_security_sessions.py.) See docs/security.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import Context, Service, Settings
from dbhandles.cli import main
from dbhandles.security.paths import escape_target

ADMIN = Context(actor="admin", is_admin=True, session_id="s-admin")
ALICE = Context(actor="alice", is_admin=False, session_id="s-alice", trusted_local=False)
BOB = Context(actor="bob", is_admin=False, session_id="s-bob", trusted_local=False)
#: C0 (line breaks, a tab, ESC), DEL, C1 (NEL, CSI) and the Unicode line and paragraph separators.
CONTROLS = ["\n", "\r", "\t", "\x1b", "\x7f", "\x85", "\x9b", "\u2028", "\u2029"]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    settings = Settings(home=tmp_path / "home", data_root=tmp_path / "data")
    with Service(settings=settings) as svc:
        svc.tokens.create("alice")  # grantees hold tokens (a non-admin grants only to those)
        svc.tokens.create("bob")
        yield svc


def _rows(service: Service, command: str, **filters: Any) -> list[dict[str, Any]]:
    entries = service.execute("data/audit", {"limit": 1000, **filters}, context=ADMIN)["entries"]
    return [e for e in entries if e["command"] == command]


def _all_names(root: Path) -> list[str]:
    return [name for _, dirs, files in os.walk(root) for name in [*dirs, *files]]


# -- 1. control characters in paths ------------------------------------------------------------------


def _doors(bad: str, at: str) -> list[tuple[str, dict[str, Any], str]]:
    """(command, params, the field refused) for every path a data command takes, each path in the
    folder ``at`` (``""``: relative, in a tenant's data space)."""
    return [
        ("data/open", {"adapter": "sqlite", "config": {"path": f"{at}b{bad}x.sqlite",
                                                       "mode": "create"}}, "config.path"),
        ("data/open", {"adapter": "json", "config": {"path": f"{at}b{bad}x.json"}}, "config.path"),
        ("data/import", {"input": f"{at}in{bad}.jsonl", "output": f"{at}o.sqlite"}, "input"),
        ("data/import", {"input": f"{at}in.jsonl", "output": f"{at}o{bad}.sqlite"}, "output"),
        ("data/import", {"input": f"{at}in.jsonl", "output": f"{at}o.sqlite", "onError": "skip",
                         "rejects": f"{at}r{bad}.jsonl"}, "rejects"),
        ("data/export", {"dbHandle": "default", "collection": "c", "output": f"{at}a{bad}.jsonl"},
         "output"),
        ("data/export", {"input": f"{at}i{bad}.sqlite", "collection": "c", "output": f"{at}a.jsonl"},
         "input"),
    ]  # fmt: skip


@pytest.mark.parametrize("bad", CONTROLS, ids=[f"U+{ord(c):04X}" for c in CONTROLS])
def test_a_control_character_in_any_path_is_refused_naming_the_field(
    service: Service, tmp_path: Path, bad: str
) -> None:
    """Alice's ``a<LF>/home/admin.token`` never becomes a folder of hers, nor a second line of the
    audit row's ``target`` that reads as the admin's token."""
    (tmp_path / "data" / "alice").mkdir(parents=True)
    for folder in (tmp_path, tmp_path / "data" / "alice"):
        (folder / "in.jsonl").write_text('{"id": "a"}\n')
    for context in (ALICE, ADMIN, Context()):
        at = "" if context is ALICE else f"{tmp_path}/"
        for name, params, field in _doors(bad, at):
            envelope = service.dispatch(name, params, context=context)
            # An adapter's config is refused as invalid_config (an InvalidParams), as a NUL is.
            code = "invalid_config" if name == "data/open" else "invalid_params"
            assert (envelope.get("code"), envelope.get("field")) == (code, field), (
                name, params, context.actor, envelope,
            )  # fmt: skip
            assert "control characters" in envelope["error"]
    assert not [n for n in _all_names(tmp_path) if any(c in n for c in CONTROLS)]
    for row in _rows(service, "data/open") + _rows(service, "data/import"):
        assert row["target"] is None or "\n" not in row["target"], row


@pytest.mark.parametrize("name", ["import-jsonl", "export-jsonl"])
def test_the_jsonl_command_lines_refuse_a_control_character_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    for var in ("JTAG_URL", "JTAG_TOKEN", "JTAG_SESSION_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DBHANDLES_HOME", str(tmp_path / "home"))
    (tmp_path / "in.jsonl").write_text('{"id": "a"}\n')
    bad = str(tmp_path / "out\nx")
    argv = (
        [f"--input={tmp_path / 'in.jsonl'}", f"--output={bad}.sqlite", "--quiet"]
        if name == "import-jsonl"
        else ["--db-handle=default", "--collection=c", f"--output={bad}.jsonl"]
    )
    capsys.readouterr()
    assert main([name, *argv]) == 1
    envelope = orjson.loads(capsys.readouterr().out)
    assert (envelope["code"], envelope["field"]) == ("invalid_params", "output"), envelope
    assert not [n for n in _all_names(tmp_path) if "\n" in n]


def test_a_real_path_with_a_line_break_is_one_escaped_line_of_target(
    service: Service, tmp_path: Path
) -> None:
    """A link (with a plain name) may lead to any name: ``target`` keeps one line per target."""
    folder = tmp_path / "odd\n" / "home"
    folder.mkdir(parents=True)
    real = folder / "admin.sqlite"
    link = tmp_path / "plain.sqlite"
    link.symlink_to(real)
    service.dispatch(
        "data/open", {"adapter": "sqlite", "config": {"path": str(link), "mode": "create"}}
    )
    row = _rows(service, "data/open")[0]
    assert row["target"] == escape_target(str(real)) and "\n" not in row["target"]
    assert escape_target("a\\b\nc\u2028") == "a\\\\b\\nc\\u2028"


# -- 2. data/audit's handle filter -------------------------------------------------------------------


def test_the_audit_filter_takes_an_actors_alias_as_the_administrator_sees_it(
    service: Service,
) -> None:
    for context, alias in ((ALICE, "camel"), (BOB, "bobs")):
        service.execute("data/open", {"adapter": "sqlite", "alias": alias,
                                      "config": {"path": f"{alias}.sqlite", "mode": "create"}},
                        context=context)  # fmt: skip
        service.execute("data/create", {"dbHandle": alias, "collection": "c", "data": {}},
                        context=context)  # fmt: skip
    probe = service.dispatch("data/read", {"dbHandle": "bobs", "collection": "c", "id": "x"},
                             context=ALICE)  # fmt: skip
    assert not probe["success"]
    shown = {e["handle"]: e["aliases"] for e in service.execute(
        "data/list-handles", {}, context=ADMIN)["handles"]}  # fmt: skip
    camel = next(h for h, aliases in shown.items() if "alice:camel" in aliases)
    bobs = next(h for h, aliases in shown.items() if "bob:bobs" in aliases)

    by_alias = _rows(service, "data/create", handle="alice:camel")
    assert [r["handle"] for r in by_alias] == [camel]
    assert _rows(service, "data/create", handle=camel) == by_alias
    assert [r["handle"] for r in _rows(service, "data/create", handle="bob:bobs")] == [bobs]
    # A name that resolves to nothing for the administrator matches the rows that recorded it.
    assert [(r["actor"], r["handle"]) for r in _rows(service, "data/read", handle="bobs")] == [
        ("alice", "bobs")
    ]
    assert _rows(service, "data/create", handle="camel") == []


# -- 5. the handle of a database named by its file; data/batch; data/job-start -----------------------


@pytest.fixture
def camel(service: Service) -> str:
    """Alice's database ``camel.sqlite`` in her space, open as a handle of hers."""
    handle = service.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": "camel.sqlite", "mode": "create"}},
        context=ALICE,
    )["dbHandle"]  # fmt: skip
    service.execute("data/create", {"dbHandle": handle, "collection": "c", "data": {"n": 1}},
                    context=ALICE)  # fmt: skip
    return str(handle)


def test_a_refused_call_naming_a_database_file_names_its_handle(
    service: Service, tmp_path: Path, camel: str
) -> None:
    (tmp_path / "data" / "alice" / "taken.jsonl").write_text("")
    calls = [
        ("data/export", {"input": "camel.sqlite", "collection": "c", "output": "taken.jsonl"},
         "file_exists"),
        ("data/export", {"input": "camel.sqlite", "collection": "c", "output": "o.jsonl",
                         "limit": -1}, "invalid_params"),
        ("data/import", {"input": "nosuch.jsonl", "output": "camel.sqlite"}, "not_found"),
    ]  # fmt: skip
    for name, params, code in calls:
        envelope = service.dispatch(name, params, context=ALICE)
        assert envelope.get("code") == code, envelope
        row = _rows(service, name)[0]
        assert (row["code"], row["handle"]) == (code, camel), row
    # A file no handle is open on: no handle, the file as target.
    envelope = service.dispatch("data/import", {"input": "nosuch.jsonl", "output": "new.sqlite"},
                                context=ALICE)  # fmt: skip
    row = _rows(service, "data/import")[0]
    assert (row["code"], row["handle"]) == ("not_found", None)
    assert str(tmp_path / "data" / "alice" / "new.sqlite") in row["target"].split("\n")


def test_a_refused_export_of_a_row_filtered_grant_names_the_handle_it_opened(
    service: Service, tmp_path: Path
) -> None:
    bob_db = tmp_path / "data" / "bob" / "bobdb.sqlite"
    handle = service.execute("data/open", {"adapter": "sqlite",
                                           "config": {"path": "bobdb.sqlite", "mode": "create"}},
                             context=BOB)["dbHandle"]  # fmt: skip
    service.execute("data/grant", {"dbHandle": handle, "actor": "alice",
                                   "permissions": {"rowFilter": {"n": 1}}}, context=BOB)  # fmt: skip
    envelope = service.dispatch(
        "data/export",
        {"input": str(bob_db), "collection": "c", "output": "o.jsonl"},
        context=ALICE,
    )
    assert not envelope["success"], envelope
    row = _rows(service, "data/export")[0]
    opened = [e["handle"] for e in service.execute("data/list-handles", {}, context=ADMIN)[
        "handles"] if e["config"].get("path") == str(bob_db)]  # fmt: skip
    assert row["handle"] in opened, (row, opened)


def test_batch_rows_name_their_collections(service: Service, camel: str) -> None:
    one = [{"op": "create", "collection": "a", "data": {}},
           {"op": "create", "collection": "a", "data": {}}]  # fmt: skip
    service.execute("data/batch", {"dbHandle": camel, "operations": one}, context=ALICE)
    rows = _rows(service, "data/batch")
    assert [(r["handle"], r["collection"], r["operation"]) for r in rows] == [(camel, "a", "write")]
    two = [{"op": "create", "collection": "a", "data": {"n": 1}, "id": "k"},
           {"op": "delete", "collection": "b", "id": "nope"}]  # fmt: skip
    service.dispatch("data/batch", {"dbHandle": camel, "operations": two}, context=ALICE)
    rows = _rows(service, "data/batch")[:2]
    assert sorted((r["handle"], r["collection"], r["operation"]) for r in rows) == [
        (camel, "a", "write"), (camel, "b", "delete,write"),
    ]  # fmt: skip
    assert rows[0]["code"] == rows[1]["code"]
    # Refused at validation: the same rows.
    bad = [{"op": "create", "collection": "a", "data": 1}, {"op": "delete", "collection": "b"}]
    envelope = service.dispatch("data/batch", {"dbHandle": camel, "operations": bad},
                                context=ALICE)  # fmt: skip
    assert envelope["code"] == "invalid_params"
    rows = _rows(service, "data/batch")[:2]
    assert sorted((r["collection"], r["code"]) for r in rows) == [
        ("a", "invalid_params"),
        ("b", "invalid_params"),
    ]


def test_a_job_start_row_names_its_commands_target_and_operation(
    service: Service, camel: str
) -> None:
    params = {"input": "camel.sqlite", "collection": "c", "output": "o.jsonl"}
    started = service.execute("data/job-start", {"command": "data/export", "params": params},
                              context=ALICE)  # fmt: skip
    assert started["jobId"]
    row = _rows(service, "data/job-start")[0]
    assert (row["handle"], row["collection"], row["operation"]) == (camel, "c", "read"), row


# -- 6. every path of an import is decided, whatever onError is -----------------------------------------


@pytest.mark.parametrize("on_error", ["abort", "skip"])
def test_a_rejects_path_in_the_home_is_refused_whatever_on_error_is(
    service: Service, tmp_path: Path, on_error: str
) -> None:
    (tmp_path / "data" / "alice").mkdir(parents=True)
    (tmp_path / "data" / "alice" / "in.jsonl").write_text('{"id": "a"}\n')
    rejects = str(tmp_path / "home" / "rejects.jsonl")
    for context in (ALICE, ADMIN):
        envelope = service.dispatch(
            "data/import",
            {"input": str(tmp_path / "data" / "alice" / "in.jsonl"),
             "output": str(tmp_path / "data" / "alice" / "o.sqlite"),
             "onError": on_error, "rejects": rejects},
            context=context,
        )  # fmt: skip
        assert (envelope.get("code"), envelope.get("field")) == ("path_not_allowed", "rejects")
    assert not (tmp_path / "data" / "alice" / "o.sqlite").exists()
    assert not os.path.exists(rejects)
