"""The jtag argument grammar and value coercion (no database involved)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbhandles.cli.parse import parse_args, to_params
from dbhandles.commands import COMMANDS
from dbhandles.errors import InvalidParams


def params(command: str, *argv: str) -> dict[str, object]:
    cmd = COMMANDS[command]
    return to_params(cmd, parse_args(cmd, list(argv)).params)


def test_key_equals_value() -> None:
    assert params("data/list", "--collection=users") == {"collection": "users"}


def test_key_space_value() -> None:
    assert params("data/list", "--collection", "users", "--limit", "5") == {
        "collection": "users",
        "limit": 5,
    }


def test_bare_key_value() -> None:
    assert params("data/list", "collection=users", "limit=3") == {"collection": "users", "limit": 3}


def test_flag_alone_is_true() -> None:
    assert params("data/list", "--collection=u", "--skipCount")["skipCount"] is True


def test_flag_with_boolean_word() -> None:
    assert params("data/list", "--collection=u", "--skipCount", "false")["skipCount"] is False
    assert params("data/list", "--collection=u", "--skipCount=no")["skipCount"] is False


def test_number_field_becomes_number_and_text_field_stays_text() -> None:
    got = params("data/create", "--collection=c", "--id=10", "--data={}")
    assert got["id"] == "10"
    assert params("data/list", "--collection=c", "--limit=10")["limit"] == 10


def test_json_values_for_objects_and_arrays() -> None:
    got = params(
        "data/list",
        "--collection=c",
        '--filter={"metadata.qualityScore":{"$gte":0.8}}',
        '--orderBy=["-name"]',
    )
    assert got["filter"] == {"metadata.qualityScore": {"$gte": 0.8}}
    assert got["orderBy"] == ["-name"]


def test_seed_open_command_config_is_an_object() -> None:
    got = params(
        "data/open", "--adapter=sqlite", '--config={"path":"/tmp/training.sqlite","mode":"create"}'
    )
    assert got == {
        "adapter": "sqlite",
        "config": {"path": "/tmp/training.sqlite", "mode": "create"},
    }


def test_snake_and_kebab_keys_map_to_camel_case() -> None:
    assert params("data/list", "--collection=c", "--db_handle=x")["dbHandle"] == "x"
    assert params("data/list", "--collection=c", "--db-handle=x")["dbHandle"] == "x"


@pytest.mark.parametrize("command", ["data/read", "data/delete"])
def test_positional_id(command: str) -> None:
    assert params(command, "--collection=c", "test-001") == {"collection": "c", "id": "test-001"}


def test_flag_before_positional_does_not_swallow_it() -> None:
    got = params("data/delete", "--collection=c", "--suppressEvents", "test-001")
    assert got == {"collection": "c", "suppressEvents": True, "id": "test-001"}


def test_positional_containing_equals_sign_is_an_id() -> None:
    assert params("data/read", "--collection=c", "a=b")["id"] == "a=b"


def test_positional_on_a_command_without_one_is_refused() -> None:
    with pytest.raises(InvalidParams, match="takes no positional argument"):
        params("data/list", "--collection=c", "oops")


def test_two_positionals_are_refused() -> None:
    with pytest.raises(InvalidParams, match="one positional argument"):
        params("data/read", "--collection=c", "a", "b")


def test_unknown_flag_is_invalid_params_naming_it() -> None:
    with pytest.raises(InvalidParams) as info:
        params("data/list", "--collection=c", "--colection=d")
    assert info.value.field == "colection"
    assert "jtag help data/list" in info.value.message


def test_wrong_type_names_the_field() -> None:
    with pytest.raises(InvalidParams) as info:
        params("data/list", "--collection=c", "--limit=abc")
    assert info.value.field == "limit"


def test_missing_required_parameter() -> None:
    with pytest.raises(InvalidParams) as info:
        params("data/create", "--collection=c")
    assert info.value.field == "data"


def test_malformed_json_names_the_field() -> None:
    with pytest.raises(InvalidParams) as info:
        params("data/create", "--collection=c", "--data={nope")
    assert info.value.field == "data"
    assert "not valid JSON" in info.value.message


def test_value_missing_after_key() -> None:
    with pytest.raises(InvalidParams, match="needs a value"):
        params("data/list", "--collection")


def test_repeated_key_is_refused_for_scalar_fields() -> None:
    with pytest.raises(InvalidParams, match="given 2 times"):
        params("data/list", "--collection=a", "--collection=b")


def test_repeated_key_builds_a_list_for_list_fields() -> None:
    assert params("data/list", "--collection=a", "--fields=x", "--fields=y")["fields"] == ["x", "y"]


def test_cli_flags_are_not_params() -> None:
    cmd = COMMANDS["data/list-handles"]
    args = parse_args(cmd, ["--format=table", "--help"])
    assert (args.params, args.format, args.help) == ({}, "table", True)
    args = parse_args(cmd, ["--format", "json"])
    assert args.format == "json"


def test_unknown_format_is_refused() -> None:
    with pytest.raises(InvalidParams, match="--format"):
        parse_args(COMMANDS["data/list-handles"], ["--format=xml"])


def test_double_dash_makes_the_rest_positional() -> None:
    assert params("data/read", "--collection=c", "--", "--weird-id")["id"] == "--weird-id"


_ids = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    min_size=1,
    max_size=40,
).filter(lambda s: not s.startswith("-") and s.strip()[:1] not in ("{", "["))


@given(_ids)
def test_any_id_round_trips_as_text(record_id: str) -> None:
    assert params("data/read", "--collection=c", f"--id={record_id}")["id"] == record_id
    assert params("data/read", "--collection=c", "--", record_id)["id"] == record_id


@given(st.integers(min_value=0, max_value=10**9))
def test_any_integer_limit_is_a_number(limit: int) -> None:
    assert params("data/list", "--collection=c", f"--limit={limit}")["limit"] == limit
