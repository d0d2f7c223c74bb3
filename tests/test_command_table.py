"""The command table loads what it is asked for: one command's module, or every module when read whole.

Each case that looks at ``sys.modules`` runs in a fresh interpreter (nothing is timed here;
benchmarks/cli_start.py measures the start-up against sqlite-utils).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from pydantic import ConfigDict

from dbhandles.commands import builtin_commands
from dbhandles.commands.base import Params
from dbhandles.commands.fielddocs import attribute_docs, document_params
from dbhandles.commands.index import COMMAND_MODULES
from dbhandles.commands.table import CommandTable


def _fresh(code: str, *args: str) -> object:
    """What ``code`` prints as JSON, run in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, check=True, timeout=120
    )
    return orjson.loads(done.stdout)


def test_the_index_names_the_module_of_every_builtin_command() -> None:
    assert set(COMMAND_MODULES) == set(builtin_commands())


def test_importing_a_commands_module_registers_it() -> None:
    missing = _fresh(
        "import importlib, sys, orjson\n"
        "from dbhandles.commands.base import COMMANDS\n"
        "from dbhandles.commands.index import COMMAND_MODULES\n"
        "missing = []\n"
        "for name, module in sorted(COMMAND_MODULES.items()):\n"
        "    importlib.import_module(module)\n"
        "    if name not in COMMANDS._commands:\n"
        "        missing.append(name)\n"
        "print(orjson.dumps(missing).decode())\n"
    )
    assert missing == []


def test_a_lookup_imports_only_the_commands_own_module() -> None:
    loaded = _fresh(
        "import sys, orjson\n"
        "from dbhandles.commands import COMMANDS\n"
        "assert COMMANDS['data/list'].name == 'data/list'\n"
        "print(orjson.dumps(sorted(sys.modules)).decode())\n"
    )
    assert isinstance(loaded, list)
    assert "dbhandles.commands.listing" in loaded
    for other in ("dbhandles.commands.tokens", "dbhandles.commands.grants", "dbhandles.importer"):
        assert other not in loaded


def test_an_in_process_read_loads_neither_the_importer_nor_the_jobs(tmp_path: Path) -> None:
    loaded = _fresh(
        "import sys, orjson\n"
        "from dbhandles import Service\n"
        "with Service(home=sys.argv[1]) as service:\n"
        "    service.execute('data/list', {'collection': 'users'})\n"
        "print(orjson.dumps(sorted(sys.modules)).decode())\n",
        str(tmp_path),
    )
    assert isinstance(loaded, list)
    assert not [m for m in loaded if m.startswith(("dbhandles.importer", "dbhandles.jobs"))]
    assert "http.client" not in loaded


def test_reading_the_table_whole_loads_every_module() -> None:
    names = _fresh(
        "import orjson\n"
        "from dbhandles.commands import COMMANDS\n"
        "print(orjson.dumps(sorted(COMMANDS)).decode())\n"
    )
    assert names == sorted(COMMAND_MODULES)


def test_the_table_refuses_a_second_command_of_the_same_name() -> None:
    table = CommandTable()
    command = builtin_commands()["data/read"]
    table.add(command)
    with pytest.raises(RuntimeError, match="registered twice"):
        table.add(command)


class _Base(Params):
    inherited: int = 0
    """Declared in the base."""


class _Documented(_Base):
    model_config = ConfigDict(use_attribute_docstrings=True)

    limit: int = 20
    """Records per page.

    At most 1000."""
    undocumented: str = ""
    redeclared: bool = False
    """Said here."""


class _Lazy(_Base):
    limit: int = 20
    """Records per page.

    At most 1000."""
    undocumented: str = ""
    redeclared: bool = False
    """Said here."""


def test_field_descriptions_are_those_of_use_attribute_docstrings() -> None:
    document_params()
    expected = {n: f.description for n, f in _Documented.model_fields.items()}
    assert {n: f.description for n, f in _Lazy.model_fields.items()} == expected
    assert expected["limit"] == "Records per page.\n\nAt most 1000."
    assert expected["inherited"] == "Declared in the base." and expected["undocumented"] is None
    schema = _Lazy.model_json_schema()
    assert schema["properties"]["limit"]["description"] == "Records per page.\n\nAt most 1000."
    assert attribute_docs(_Base) == {"inherited": "Declared in the base."}
