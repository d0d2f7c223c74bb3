"""The SQL of ``data/count`` groups never holds a field name: names are bound parameters.

The contract suite (tests/contract/test_name_injection.py) checks what callers see on every adapter;
these check the statements themselves, so a later change that pastes a name into SQL text fails
here even for a name the path rule lets through.
"""

from __future__ import annotations

import pytest

from dbhandles.adapters.sql_compile import Fragment
from dbhandles.adapters.sql_dialect import sql_string
from dbhandles.adapters.sql_facets import (
    postgres_group_count,
    postgres_group_overflow,
    sqlite_group_count,
    sqlite_group_overflow,
)
from dbhandles.errors import InvalidFilter

WHERE = Fragment("1 = 1", ())
PATHS = (("metadataZq", "topicsZq"), ("sourceZq",))
BUILDERS = [
    lambda paths: sqlite_group_count(WHERE, paths, 10),
    lambda paths: sqlite_group_overflow(WHERE, paths),
    lambda paths: postgres_group_count(WHERE, paths, 10),
    lambda paths: postgres_group_overflow(WHERE, paths),
]


@pytest.mark.parametrize("build", BUILDERS)
def test_group_statements_bind_every_path_part(build: object) -> None:
    statement = build(PATHS)  # type: ignore[operator]
    assert statement is not None
    sql = "".join(statement.parts)
    assert "Zq" not in sql
    bound = " ".join(str(p) for p in statement.params)
    for part in ("metadataZq", "topicsZq", "sourceZq"):
        assert part in bound
    placeholders = sql.count("?") if "%s" not in sql else sql.count("%s")
    assert placeholders == len(statement.params)


@pytest.mark.parametrize("build", BUILDERS)
@pytest.mark.parametrize("part", ["a'b", "x' || 1 || '", "a b", "café", "a\x00", "$x"])
def test_group_statements_refuse_a_part_that_is_not_an_identifier(build: object, part: str) -> None:
    for paths in (((part,),), (("ok",), (part,)), (("ok", part),), ((part, "ok"), ("z",))):
        with pytest.raises(InvalidFilter, match="not a valid field path"):
            build(paths)  # type: ignore[operator]


def test_sql_string_doubles_quotes_and_refuses_nul() -> None:
    assert sql_string("$.a") == "'$.a'"
    assert sql_string("a'b") == "'a''b'"
    with pytest.raises(ValueError, match="NUL"):
        sql_string("a\x00b")
