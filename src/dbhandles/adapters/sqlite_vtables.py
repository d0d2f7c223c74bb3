"""What a database file's virtual tables read: external-content FTS tables, fts5vocab, dbstat.

A virtual table's module runs SQL of its own: an FTS3/FTS4/FTS5 table declared with ``content=X``
reads ``X`` whenever it is read, and an ``fts5vocab`` table reads the FTS5 table its first argument
names. That SQL is top-level for SQLite's authorizer (no view or trigger on whose behalf it runs),
so ``sqlite_guard`` cannot tell it from dbhandles' own; and a view's ``Session.view_sources`` does
not see it either. This module reads the ``CREATE VIRTUAL TABLE`` statements of ``sqlite_schema``
and says, for each virtual table, which table it reads (followed to any depth) and whether what it
reaches is refused: a ``pragma_*`` or other eponymous table (anything that is not a table or view
of the schema), or a module that shows the file itself (``dbstat``, ``sqlite_dbpage``, ... under
any name). R*Tree and plain FTS tables read only their own storage and are left alone.
"""

from __future__ import annotations

import re
import sqlite3

from dbhandles.values import json_text

__all__ = ["REVEALING_MODULES", "VirtualTables", "parse_using", "read_virtual_tables"]

#: Modules (and eponymous tables) that show the file, its pages or the connection.
REVEALING_MODULES = frozenset(
    {"dbstat", "sqlite_dbpage", "sqlite_dbdata", "sqlite_dbptr", "sqlite_stmt", "fsdir", "zipfile"}
)
_FTS = frozenset({"fts3", "fts4", "fts5"})
_USING = re.compile(r"\bUSING\s+([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*;?\s*$", re.I | re.S)
_QUOTES = {"'": "'", '"': '"', "`": "`", "[": "]"}


def _split(args: str) -> list[str]:
    """The module arguments, split on top-level commas (quotes and brackets kept whole)."""
    parts: list[str] = []
    current: list[str] = []
    close: str | None = None
    depth = 0
    for ch in args:
        if close is not None:
            current.append(ch)
            if ch == close:
                close = None
        elif ch in _QUOTES:
            close = _QUOTES[ch]
            current.append(ch)
        elif ch == "(":
            depth += 1
            current.append(ch)
        elif ch == ")":
            depth -= 1
            current.append(ch)
        elif ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] in _QUOTES and text[-1] == _QUOTES[text[0]]:
        inner = text[1:-1]
        return inner if text[0] == "[" else inner.replace(text[0] * 2, text[0])
    return text


def parse_using(sql: str) -> tuple[str, list[str]] | None:
    """``(module, arguments)`` of a ``CREATE VIRTUAL TABLE`` statement (``None``: not one)."""
    found = _USING.search(sql)
    if found is None:
        return None
    return found.group(1).lower(), _split(found.group(2) or "")


def _reads(module: str, args: list[str]) -> str | None:
    """The table a virtual table of ``module`` reads besides its own storage (``None``: none)."""
    if module in _FTS:
        for arg in args:
            key, eq, value = arg.partition("=")
            if eq and _unquote(key).lower() == "content":
                content = _unquote(value)
                return content or None  # content='': a contentless table reads nothing
        return None
    if module == "fts5vocab" and len(args) in (2, 3):
        return _unquote(args[-2])
    return None


class VirtualTables:
    """The virtual tables of one database file: what each reads, and which are refused."""

    def __init__(self, modules: dict[str, tuple[str, str, str | None]], relations: set[str]):
        #: lower name -> (name, module, table it reads or ``None``)
        self.modules = modules
        #: lower names of the schema's tables and views (virtual ones included)
        self.relations = relations

    def sources(self, name: str) -> list[str]:
        """What the virtual table ``name`` reads, followed to any depth (``[]``: none, or not one)."""
        found: list[str] = []
        key = name.lower()
        while key in self.modules:
            reads = self.modules[key][2]
            if (
                reads is None
                or reads.lower() in {f.lower() for f in found}
                or reads.lower() == name.lower()
            ):
                break
            found.append(reads)
            key = reads.lower()
        return found

    def refusal(self, name: str) -> str | None:
        """What the virtual table ``name`` reaches that dbhandles does not run (``None``: harmless)."""
        entry = self.modules.get(name.lower())
        if entry is None:
            return None
        if entry[1] in REVEALING_MODULES:
            return f"the module {entry[1]}"
        for reads in self.sources(name):
            low = reads.lower()
            if low.startswith("pragma_") or low in REVEALING_MODULES or low not in self.relations:
                return f"{reads} (a table of SQLite itself, not of this database)"
            if low in self.modules and self.modules[low][1] in REVEALING_MODULES:
                return f"{reads} (a virtual table of the module {self.modules[low][1]})"
        return None

    def refused(self) -> dict[str, str]:
        """Every refused virtual table, as ``lower name -> why`` (for ``sqlite_guard``)."""
        out: dict[str, str] = {}
        for key, (name, _, _) in self.modules.items():
            why = self.refusal(name)
            if why is not None:
                out[key] = f"the virtual table {json_text(name, 80)} of this database reads {why}"
        return out


def read_virtual_tables(conn: sqlite3.Connection) -> VirtualTables:
    """The virtual tables of ``conn``'s ``main`` database, from ``sqlite_schema``."""
    rows = conn.execute(
        "SELECT name, type, sql FROM main.sqlite_schema WHERE type IN ('table', 'view')"
    ).fetchall()
    modules: dict[str, tuple[str, str, str | None]] = {}
    for name, _, sql in rows:
        if sql and re.match(r"\s*CREATE\s+VIRTUAL\s+TABLE\b", sql, re.I):
            parsed = parse_using(sql)
            if parsed is not None:
                modules[name.lower()] = (name, parsed[0], _reads(*parsed))
    return VirtualTables(modules, {name.lower() for name, _, _ in rows})
