"""SQLite's filter compiler pieces: ``SqliteDialect``, the JSON1 fragments ``SqlCompiler`` assembles."""

from __future__ import annotations

import re
from collections.abc import Mapping

from dbhandles.adapters.sql_dialect import Dialect
from dbhandles.errors import InvalidFilter
from dbhandles.filters import Scalar

__all__ = ["SqliteDialect"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")

_SQLITE_KINDS: Mapping[int, tuple[str, ...]] = {
    1: ("true", "false"),
    2: ("integer", "real"),
    3: ("text",),
    4: ("array", "object"),
}


class SqliteDialect(Dialect):
    """SQLite's JSON1 functions over the ``data`` text column.

    ``json_type`` names the kind of a value ('null', 'true', 'false', 'integer', 'real', 'text',
    'array', 'object') and is NULL when the path is missing; ``json_extract`` gives booleans as 0/1,
    numbers and strings as themselves and containers as JSON text. One ``json_extract`` expression
    per path serves every rank, so one expression index serves every comparison.
    """

    placeholder = "?"

    def __init__(self, column: str = "data") -> None:
        self.column = column

    def _path(self, path: tuple[str, ...]) -> str:
        for part in path:
            if not _IDENT.fullmatch(part):
                raise InvalidFilter(f"{'.'.join(path)!r} is not a valid field path")
        return "'$." + ".".join(path) + "'"

    def _type(self, path: tuple[str, ...]) -> str:
        return f"json_type({self.column}, {self._path(path)})"

    def bind(self, value: Scalar) -> object:
        return int(value) if isinstance(value, bool) else value

    def value(self, path: tuple[str, ...], rank: int) -> str:
        return f"json_extract({self.column}, {self._path(path)})"

    def has_rank(self, path: tuple[str, ...], ranks: tuple[int, ...]) -> str:
        kinds = ", ".join(f"'{k}'" for r in ranks for k in _SQLITE_KINDS[r])
        return f"COALESCE({self._type(path)}, 'null') IN ({kinds})"

    def is_missing(self, path: tuple[str, ...]) -> str:
        # json_extract is NULL exactly for a missing path and for JSON null.
        return f"{self.value(path, 0)} IS NULL"

    def rank(self, path: tuple[str, ...]) -> str:
        whens = " ".join(
            f"WHEN '{kind}' THEN {r}" for r, kinds in _SQLITE_KINDS.items() for kind in kinds
        )
        return f"(CASE {self._type(path)} {whens} ELSE 0 END)"

    def sort_values(self, path: tuple[str, ...]) -> tuple[str, ...]:
        # Containers would otherwise sort by their JSON text; the oracle holds them all equal.
        return (
            f"(CASE WHEN {self.has_rank(path, (4,))} THEN NULL ELSE {self.value(path, 0)} END)",
        )

    def regex(self, text_sql: str) -> str:
        return f"regexp(?, {text_sql})"

    def substring(self, text_sql: str) -> str:
        return f"instr({text_sql}, ?) > 0"

    def array_has(self, path: tuple[str, ...], rank: int) -> str:
        kinds = ", ".join(f"'{k}'" for k in _SQLITE_KINDS[rank])
        # json_each on a scalar yields the scalar itself, so the array guard is not optional.
        return (
            f"COALESCE({self._type(path)}, 'null') = 'array' AND EXISTS (SELECT 1 FROM "
            f"json_each({self.column}, {self._path(path)}) WHERE type IN ({kinds}) AND value = ?)"
        )
