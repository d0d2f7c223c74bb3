"""docs/cli.md and docs/server.md agree with the code they describe."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dbhandles.cli.help import markdown
from dbhandles.commands import COMMANDS
from dbhandles.server.http import STATIC_FILES
from dbhandles.server.openapi import error_codes

DOCS = Path(__file__).resolve().parent.parent / "docs"
REGENERATE = "regenerate it with: ./jtag help --markdown > docs/cli.md"


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


def test_cli_doc_is_the_generated_one(cli_doc: str) -> None:
    assert cli_doc.strip() == markdown().strip(), f"docs/cli.md is out of date; {REGENERATE}"


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
