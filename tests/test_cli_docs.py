"""docs/cli.md, docs/server.md and the README agree with the code they describe.

docs/cli.md is what ``jtag help`` prints, to the byte; the ``jtag serve`` options table and the
settings table are generated from the field metadata of ``ServeOptions`` and ``Settings``.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import pytest

from dbhandles.cli import main
from dbhandles.cli.help import (
    COMMAND_INDEX_MODULE,
    COMMANDS,
    GENERATED_REGIONS,
    HELP_TEXT_MODULE,
    generated_docs,
    markdown,
    overview,
    serve_options,
    write_docs,
)
from dbhandles.cli.serve import ServeOptions, parse_options
from dbhandles.server.app import DEFAULT_THREADS
from dbhandles.server.http import STATIC_FILES
from dbhandles.server.openapi import error_codes
from dbhandles.settings import Settings
from dbhandles.settings_docs import setting_docs

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
REGENERATE = "regenerate it with: python scripts/generate-docs.py"


@pytest.fixture(scope="module")
def cli_doc() -> str:
    return (DOCS / "cli.md").read_text()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_cli_doc_lists_every_command_and_flag(cli_doc: str, name: str) -> None:
    assert f"### {name}\n" in cli_doc, f"docs/cli.md lacks {name}; {REGENERATE}"
    section = cli_doc.split(f"### {name}\n", 1)[1].split("\n### ", 1)[0]
    for field_name, info in COMMANDS[name].params.model_fields.items():
        assert f"--{info.alias or field_name}" in section, f"{name} --{info.alias}: {REGENERATE}"


def test_cli_doc_lists_serve(cli_doc: str) -> None:
    assert "### serve\n" in cli_doc
    for flag in ("--host", "--port", "--threads", "--allow-anonymous"):
        assert flag in cli_doc


def jtag_help(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["help", *args]) == 0
    return capsys.readouterr().out


def test_cli_doc_is_what_jtag_help_prints(cli_doc: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_doc == markdown() + "\n", f"docs/cli.md is out of date; {REGENERATE}"
    assert cli_doc == jtag_help(capsys, "--markdown")


def test_every_command_section_is_its_jtag_help(
    cli_doc: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sections = dict(re.findall(r"^### (\S+)\n\n```\n(.*?)\n```$", cli_doc, flags=re.M | re.S))
    assert sorted(sections) == sorted([*COMMANDS, "serve"])
    for name, text in sections.items():
        assert text + "\n" == jtag_help(capsys, name), f"{name}: {REGENERATE}"


@pytest.mark.parametrize(
    "document",
    ["docs/server.md", "README.md", str(HELP_TEXT_MODULE), str(COMMAND_INDEX_MODULE)],
)
def test_generated_tables_are_up_to_date(document: str) -> None:
    assert (ROOT / document).read_text() == generated_docs(ROOT)[ROOT / document], (
        f"{document} is out of date; {REGENERATE}"
    )


def test_write_docs_regenerates_every_document(tmp_path: Path) -> None:
    for name in [
        "docs/cli.md",
        str(HELP_TEXT_MODULE),
        str(COMMAND_INDEX_MODULE),
        *GENERATED_REGIONS,
    ]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    stale = (
        (tmp_path / "docs/server.md").read_text().replace("| `--threads` | `", "| `--threads` | `8")
    )
    (tmp_path / "docs/server.md").write_text(stale)
    (tmp_path / "docs/cli.md").write_text("old\n")
    assert sorted(write_docs(tmp_path)) == [tmp_path / "docs/cli.md", tmp_path / "docs/server.md"]
    assert write_docs(tmp_path) == []
    for name in ["docs/cli.md", *GENERATED_REGIONS]:
        assert (tmp_path / name).read_text() == (ROOT / name).read_text()


# -- help comes from the code ---------------------------------------------------------------------


def test_serve_help_shows_the_defaults_the_code_uses(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_options([]) == ServeOptions()
    assert ServeOptions().threads == DEFAULT_THREADS
    shown = {o.flag: o.default for o in serve_options()}
    assert shown["--threads"] == str(DEFAULT_THREADS)
    assert "--threads=<integer> default: " + str(DEFAULT_THREADS) in jtag_help(capsys, "serve")
    # Every option the help shows is one parse_options accepts, for the field it documents.
    given = ["--host=::1", "--port=1", "--log-level=info", "--threads=3", "--workers=2",
             "--allow-anonymous"]  # fmt: skip
    assert [arg.split("=")[0] for arg in given] == list(shown)
    assert parse_options(given) == ServeOptions(
        host="::1", port=1, log_level="info", threads=3, workers=2, allow_anonymous=True
    )


def test_overview_names_only_real_serve_options() -> None:
    line = next(x for x in overview().splitlines() if "jtag serve [" in x)
    flags = {o.flag for o in serve_options()}
    assert set(re.findall(r"--[a-z-]+", line)) <= flags


def test_every_setting_documents_itself(capsys: pytest.CaptureFixture[str]) -> None:
    docs = setting_docs()
    assert [d.name for d in docs] == [f.name for f in dataclasses.fields(Settings)]
    serve_help = jtag_help(capsys, "serve")
    for d in docs:
        assert d.env == f"DBHANDLES_{d.name.upper()}"
        assert d.help.endswith(".") and d.default
        assert f"  {d.env} " in serve_help and d.help in serve_help
    # ... and the variable it names is the one Settings.from_env reads.
    samples = {
        "home": "/x",
        "allowed_roots": "/x",
        "data_root": "/x",
        "read_roots": "/x",
        "default_access": "read",
        "postgres_servers": "db.example:5432",
        "audit": "no",
        "default_url": "postgresql://h/d",
        "job_duty": "0.25",
        "ws_bytes_per_second": "8192",  # at least 4096 (settings_checks.BOUNDS)
        # Sizes a request must fit in: at least 1 KiB (settings_checks.LEAST_REQUEST_BYTES).
        **dict.fromkeys(
            [
                "max_body_bytes",
                "max_header_bytes",
                "max_cursor_spec_bytes",
                "ws_outbox_bytes",
                "max_unsent_bytes_per_actor",
            ],
            "2048",
        ),
    }
    for d in docs:
        changed = Settings.from_env({d.env: samples.get(d.name, "7")})
        assert getattr(changed, d.name) != getattr(Settings(), d.name), d.env


def test_server_doc_status_table_matches_the_error_classes() -> None:
    doc = (DOCS / "server.md").read_text()
    table = dict(re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \|$", doc, flags=re.M))
    # server_unreachable is produced by the clients (no server answered), not by an error class.
    expected = {**error_codes(), "server_unreachable": 503}
    assert {code: int(status) for code, status in table.items()} == expected


def test_server_doc_lists_every_route() -> None:
    doc = (DOCS / "server.md").read_text()
    for route in ("POST /commands/<name>", "GET /commands", "GET /commands/<name>", "GET /openapi.json",
                  "GET /health", "/ws", *STATIC_FILES):  # fmt: skip
        assert route in doc, route
