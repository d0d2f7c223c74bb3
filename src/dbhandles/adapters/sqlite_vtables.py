"""What a database file's virtual tables read: FTS content tables, fts4aux, fts5vocab, shadow tables.

A virtual table's module runs SQL of its own: an FTS3/FTS4/FTS5 table declared with ``content=X``
reads ``X`` whenever it is read, an ``fts4aux`` or ``fts5vocab`` table reads the index of the FTS
table its arguments name, and an FTS or R*Tree table keeps its rows and index in *shadow tables*
(``ft_content``, ``ft_segdir``, ``f5_data``, ``box_node``, ...) that are ordinary tables of the
file. That SQL is top-level for SQLite's authorizer (no view or trigger on whose behalf it runs),
so ``sqlite_guard`` cannot tell it from dbhandles' own; and a view's ``Session.view_sources`` does
not see it either. This module reads the virtual tables of ``sqlite_schema`` (``type = 'table'``
and ``rootpage = 0``: what SQLite itself takes for one) and says, for each table, which tables it
reads (followed to any depth; a shadow table reads its virtual table, and through it what that
reads) and whether what it reaches is refused.

The module name and arguments are read with SQLite's own tokenizer rules (``tokens``): the name may
be quoted four ways (``"fts4"``, ``'fts5vocab'``, ``[dbstat]``, `` `fts4` ``), comments may stand
anywhere between tokens, and names compare without case. The option keys are matched as the
modules match them, widened where a module is lax (FTS5 takes any prefix of ``content`` for it).

Refused (``VirtualTables.refusal``): a module that shows the file or the connection (``dbstat``,
``sqlite_dbpage``, ... under any quoting), any module not in ``KNOWN_MODULES`` (an unknown module
is never allowed), an FTS4 ``compress=``/``uncompress=`` function (run at top level), arguments the
module would read differently than this module can tell, and reaching anything that is not a table
or view of the schema (a ``pragma_*`` or other eponymous table).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from dbhandles.values import json_text

__all__ = [
    "KNOWN_MODULES",
    "REVEALING_MODULES",
    "Token",
    "VirtualTables",
    "dequote",
    "parse_using",
    "read_virtual_tables",
    "tokens",
]

#: Modules (and eponymous tables) that show the file, its pages or the connection.
REVEALING_MODULES = frozenset(
    {"dbstat", "sqlite_dbpage", "sqlite_dbdata", "sqlite_dbptr", "sqlite_stmt", "fsdir", "zipfile"}
)
#: Modules whose tables read only their own shadow tables and what ``_reads`` finds in their
#: arguments; a virtual table of any other module is refused.
KNOWN_MODULES = frozenset(
    {
        "fts3",
        "fts4",
        "fts5",
        "fts4aux",
        "fts5vocab",
        "fts3tokenize",
        "rtree",
        "rtree_i32",
        "geopoly",
    }
)
_FTS = frozenset({"fts3", "fts4", "fts5"})
_RTREE_SHADOWS = frozenset({"node", "parent", "rowid"})
#: The shadow tables each module keeps, by suffix (``<table>_<suffix>``, as ``xShadowName``).
SHADOW_SUFFIXES: dict[str, frozenset[str]] = {
    "fts3": frozenset({"content", "docsize", "segdir", "segments", "stat"}),
    "fts4": frozenset({"content", "docsize", "segdir", "segments", "stat"}),
    "fts5": frozenset({"config", "content", "data", "docsize", "idx"}),
    "rtree": _RTREE_SHADOWS,
    "rtree_i32": _RTREE_SHADOWS,
    "geopoly": _RTREE_SHADOWS,
}

#: ``(kind, text, start, end)``: kind ``word`` (bare), ``id`` (quoted name), ``string``, ``blob``
#: or ``punct`` (one character); ``start:end`` slices the SQL text.
Token = tuple[str, str, int, int]

_CLOSE = {'"': '"', "`": "`", "[": "]", "'": "'"}


def _word_char(ch: str) -> bool:
    return not ch.isascii() or ch.isalnum() or ch in "_$"


def _quoted_end(sql: str, i: int) -> int:
    """The end of the quoted token opening at ``i`` (doubled quotes kept; unterminated: the end)."""
    close = _CLOSE[sql[i]]
    j = i + 1
    while j < len(sql):
        if sql[j] == close:
            if close != "]" and j + 1 < len(sql) and sql[j + 1] == close:
                j += 2
                continue
            return j + 1
        j += 1
    return len(sql)


def tokens(sql: str) -> list[Token]:
    """The tokens of ``sql`` as SQLite's tokenizer splits it, without whitespace and comments."""
    out: list[Token] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch.isspace():
            i += 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif ch in "xX" and i + 1 < n and sql[i + 1] == "'":
            end = _quoted_end(sql, i + 1)
            out.append(("blob", sql[i:end], i, end))
            i = end
        elif ch in _CLOSE:
            end = _quoted_end(sql, i)
            out.append(("string" if ch == "'" else "id", sql[i:end], i, end))
            i = end
        elif _word_char(ch):
            j = i
            while j < n and _word_char(sql[j]):
                j += 1
            out.append(("word", sql[i:j], i, j))
            i = j
        else:
            out.append(("punct", ch, i, i + 1))
            i += 1
    return out


def dequote(text: str) -> str:
    """``text`` without its quotes (``"a""b"`` -> ``a"b``, ``[a]`` -> ``a``); a bare word as it is."""
    text = text.strip()
    if len(text) >= 2 and text[0] in _CLOSE and text[-1] == _CLOSE[text[0]]:
        inner = text[1:-1]
        return inner if text[0] == "[" else inner.replace(text[0] * 2, text[0])
    return text


def _is(token: Token | None, word: str) -> bool:
    return token is not None and token[0] == "word" and token[1].lower() == word


def parse_using(sql: str) -> tuple[str, list[str]] | None:
    """``(module, arguments)`` of a ``CREATE VIRTUAL TABLE`` statement (``None``: not one).

    The module is dequoted and lower-cased; each argument is its text from its first token to its
    last (as SQLite hands it to the module: comments inside kept, around it dropped). A statement
    whose shape this cannot read gives module ``""`` (refused as unknown).
    """
    toks = tokens(sql)
    if not (len(toks) >= 3 and _is(toks[0], "create") and _is(toks[1], "virtual")
            and _is(toks[2], "table")):  # fmt: skip
        return None
    i = 3
    if _is(toks[i] if i < len(toks) else None, "if"):
        i += 3  # IF NOT EXISTS
    i += 1  # the table's name
    if i < len(toks) and toks[i][:2] == ("punct", "."):
        i += 2  # schema.name
    if not _is(toks[i] if i < len(toks) else None, "using") or i + 1 >= len(toks):
        return "", []
    module_token = toks[i + 1]
    if module_token[0] not in ("word", "id", "string"):
        return "", []
    module = dequote(module_token[1]).lower()
    rest = toks[i + 2 :]
    if not rest or rest[0][:2] != ("punct", "("):
        return module, []
    args: list[str] = []
    first: Token | None = None
    last: Token | None = None
    depth = 0
    for token in rest[1:]:
        punct = token[1] if token[0] == "punct" else ""
        if depth == 0 and punct in (")", ","):
            if first is not None and last is not None:
                args.append(sql[first[2] : last[3]])
            first = last = None
            if punct == ")":
                return module, args
            continue
        depth += 1 if punct == "(" else -1 if punct == ")" else 0
        first = first or token
        last = token
    return "", []  # no closing parenthesis: not a statement SQLite would have taken


def _value(text: str) -> str:
    """An argument (or an option's value) as the module reads a name from it: one token dequoted,
    else the text as it stands (which names no table of the schema)."""
    toks = tokens(text)
    if len(toks) == 1:
        return dequote(toks[0][1])
    return text.strip()


def _option(arg: str) -> tuple[str, str] | None:
    """``(key, value)`` of a ``key=value`` module argument (key dequoted, lower-cased)."""
    toks = tokens(arg)
    for at, token in enumerate(toks):
        if token[:2] == ("punct", "="):
            key = "".join(dequote(t[1]) for t in toks[:at]).strip().lower()
            value = arg[toks[at + 1][2] :] if at + 1 < len(toks) else ""
            return key, _value(value)
    return None


def _reads(module: str, args: list[str]) -> tuple[list[str], str | None]:
    """What a virtual table of ``module`` reads besides its shadow tables, and why it is refused
    (``None``: it is not)."""
    if module in REVEALING_MODULES:
        return [], f"uses the module {module}, which shows the database file itself"
    if module not in KNOWN_MODULES:
        shown = module or "(unreadable)"
        return (
            [],
            f"uses the module {json_text(shown, 80)}, which dbhandles does not know what it reads",
        )
    reads: list[str] = []
    if module in _FTS:
        for arg in args:
            option = _option(arg)
            if option is None:
                continue
            key, value = option
            # FTS5 takes any prefix of an option's name ("cont=" is content=); FTS3/4 the name.
            if key == "content" or (module == "fts5" and key and "content".startswith(key)):
                if value:  # content='': a contentless table reads nothing
                    reads.append(value)
            elif key in ("compress", "uncompress"):
                return (
                    [],
                    f"runs the function {json_text(value, 80)} (the fts4 option {key}=) on every read",
                )
        return reads, None
    if module == "fts4aux":
        if len(args) == 1:
            return [_value(args[0])], None
        return [], "is an fts4aux table over another database"
    if module == "fts5vocab":
        if len(args) == 2:
            return [_value(args[0])], None
        if len(args) == 3 and _value(args[0]).lower() == "main":
            return [_value(args[1])], None
        return [], "is an fts5vocab table over another database"
    return reads, None


@dataclass(frozen=True, slots=True)
class VirtualTable:
    """One virtual table: its name, module, what it reads, and why it is refused (or ``None``)."""

    name: str
    module: str
    reads: tuple[str, ...]
    problem: str | None = None


class VirtualTables:
    """The virtual tables of one database file: what each reads, and which are refused."""

    def __init__(
        self, tables: dict[str, VirtualTable], relations: set[str],
        shadows: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        #: lower name -> the virtual table
        self.tables = tables
        #: lower names of the schema's tables and views (virtual and shadow ones included)
        self.relations = relations
        #: lower name of a shadow table -> the name of its virtual table
        self.shadows = shadows or {}

    def _direct(self, key: str) -> list[str]:
        # A shadow table holds its virtual table's rows or index (its content table's words): it
        # reads that table. The virtual table's own shadow tables are part of it, not reads (an
        # allowed list naming the FTS table need not name its storage).
        table = self.tables.get(key)
        found = list(table.reads) if table is not None else []
        owner = self.shadows.get(key)
        if owner is not None:
            found.append(owner)
        return found

    def sources(self, name: str) -> list[str]:
        """What the table ``name`` reads through virtual tables, to any depth (``[]``: nothing)."""
        found: dict[str, str] = {}
        todo = [name.lower()]
        while todo:
            for read in self._direct(todo.pop()):
                low = read.lower()
                if low not in found and low != name.lower():
                    found[low] = read
                    todo.append(low)
        return list(found.values())

    def refusal(self, name: str) -> str | None:
        """What the virtual table ``name`` does that dbhandles does not run (``None``: harmless)."""
        table = self.tables.get(name.lower())
        if table is None:
            return None
        if table.problem is not None:
            return table.problem
        for reads in self.sources(name):
            low = reads.lower()
            if low.startswith("pragma_") or low in REVEALING_MODULES or low not in self.relations:
                return f"reads {reads} (a table of SQLite itself, not of this database)"
            other = self.tables.get(low)
            if other is not None and other.problem is not None:
                return f"reads {other.name}, a virtual table that {other.problem}"
        return None

    def refused(self) -> dict[str, str]:
        """Every refused virtual table, as ``lower name -> why`` (for ``sqlite_guard``)."""
        out: dict[str, str] = {}
        for key, table in self.tables.items():
            why = self.refusal(table.name)
            if why is not None:
                out[key] = f"the virtual table {json_text(table.name, 80)} of this database {why}"
        return out


def read_virtual_tables(conn: sqlite3.Connection) -> VirtualTables:
    """The virtual tables of ``conn``'s ``main`` database, from ``sqlite_schema``."""
    rows = conn.execute(
        "SELECT name, type, rootpage, sql FROM main.sqlite_schema WHERE type IN ('table', 'view')"
    ).fetchall()
    tables: dict[str, VirtualTable] = {}
    for name, kind, rootpage, sql in rows:
        if kind != "table" or rootpage not in (0, None):
            continue
        parsed = parse_using(sql or "") or ("", [])
        reads, problem = _reads(*parsed)
        tables[name.lower()] = VirtualTable(name, parsed[0], tuple(reads), problem)
    shadows: dict[str, str] = {}
    for name, kind, _, _ in rows:
        owner, _, suffix = name.rpartition("_")
        table = tables.get(owner.lower())
        if (
            kind == "table"
            and table is not None
            and suffix.lower() in SHADOW_SUFFIXES.get(table.module, ())
        ):
            shadows[name.lower()] = table.name
    return VirtualTables(tables, {name.lower() for name, _, _, _ in rows}, shadows)
