"""The permission presets and the policy's tables of rights are made on first lookup, not at import.

Making a ``Permissions`` builds the model's validator, a cost every CLI command on the default
database paid at import (benchmarks/cli_start.py); what each table holds is unchanged.
"""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from dbhandles.commands.grammar import SCHEMAS
from dbhandles.lazy import LazyMapping
from dbhandles.security.permissions import PRESET_FIELDS, PRESETS, Permissions
from dbhandles.security.policy import DEFAULT_CEILINGS, GRANT_ACCESS

_READ_ONLY = Permissions(write=False, delete=False, schema_=False)


def test_importing_the_policy_and_the_commands_makes_no_permissions() -> None:
    probe = (
        "import sys, orjson\n"
        "import dbhandles.security.policy, dbhandles.commands.grammar, dbhandles.commands.grants\n"
        "from dbhandles.security.permissions import Permissions\n"
        "print(orjson.dumps(Permissions.__dict__.get('__pydantic_complete__')).decode())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, check=True, timeout=60
    )
    assert orjson.loads(done.stdout) is False, "a Permissions was made at import"


def test_each_preset_is_its_fields() -> None:
    assert list(PRESETS) == list(PRESET_FIELDS)
    assert PRESETS["GOD_MODE"] == Permissions()
    assert PRESETS["READ_ONLY"] == _READ_ONLY
    assert PRESETS["TRAINING_JOB"] == Permissions(
        delete=False,
        allowed_collections=("training_metrics", "checkpoints", "evaluation_results"),
    )
    assert PRESETS["PERSONA_KNOWLEDGE"] == Permissions(schema_=False, isolation_mode="strict")
    assert PRESETS["COLLABORATIVE"] == Permissions(
        delete=False, schema_=False, isolation_mode="soft"
    )
    for name, fields in PRESET_FIELDS.items():
        # parse_permissions starts from the fields a preset sets (model_dump's exclude_unset).
        assert PRESETS[name].model_fields_set == set(fields)
        assert PRESETS[name] is PRESETS[name]


def test_the_policy_tables_hold_the_same_rights() -> None:
    assert list(DEFAULT_CEILINGS) == ["none", "read", "write", "full"]
    assert DEFAULT_CEILINGS["none"] == Permissions(
        read=False, write=False, delete=False, schema_=False
    )
    assert DEFAULT_CEILINGS["read"] is PRESETS["READ_ONLY"]
    assert DEFAULT_CEILINGS["write"] == Permissions(delete=False, schema_=False)
    assert DEFAULT_CEILINGS["full"] is None
    assert "full" in DEFAULT_CEILINGS
    assert list(GRANT_ACCESS) == ["read", "write", "full"]
    assert GRANT_ACCESS["read"] is PRESETS["READ_ONLY"]
    assert GRANT_ACCESS["write"] == Permissions(schema_=False)
    assert GRANT_ACCESS["full"] == Permissions()


def test_grant_permissions_schema_lists_the_presets_without_owner_or_isolation() -> None:
    # commands/grammar.py reads the presets' fields, not the presets (which it would make).
    expected = [
        name for name, p in PRESETS.items() if p.owner is None and p.isolation_mode == "none"
    ]
    assert expected == ["GOD_MODE", "READ_ONLY", "TRAINING_JOB"]
    preset = SCHEMAS["GrantPermissions"]["properties"]["preset"]
    assert preset == {"anyOf": [{"enum": expected}, {"type": "null"}]}


def test_lazy_mapping_makes_each_value_once_on_first_lookup() -> None:
    made: list[str] = []

    def make(key: str) -> str | None:
        made.append(key)
        return None if key == "none" else key.upper()

    table = LazyMapping(["a", "none", "b", "a"], make)
    assert (list(table), len(table), "b" in table, "c" in table) == (
        ["a", "none", "b"],
        3,
        True,
        False,
    )
    assert made == []
    assert (table["a"], table["a"], table["none"], table["none"]) == ("A", "A", None, None)
    assert made == ["a", "none"]
    with pytest.raises(KeyError):
        table["c"]
    assert dict(table) == {"a": "A", "none": None, "b": "B"}
    assert made == ["a", "none", "b"]
