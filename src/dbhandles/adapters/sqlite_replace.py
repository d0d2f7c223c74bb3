"""Where an SQLite write may resolve a conflict by REPLACE, which deletes the rows it conflicts with.

A constraint declared ``ON CONFLICT REPLACE`` (``name TEXT UNIQUE ON CONFLICT REPLACE``, a
``PRIMARY KEY ... ON CONFLICT REPLACE``) makes every plain ``INSERT`` or ``UPDATE`` of its table
delete the row holding the value it conflicts with; a trigger body's ``INSERT OR REPLACE``,
``REPLACE INTO`` or ``UPDATE OR REPLACE`` does the same to the table it writes. SQLite then runs
that table's foreign-key ``ON DELETE`` actions (and, with ``recursive_triggers``, its delete
triggers): ``foreign_cascades.reached`` counts such a write as a delete of the table too
(docs/security.md "Cascades on restricted handles").

SQLite keeps no catalog entry for a constraint's conflict clause, so the schema's SQL text is read:
comments, string literals and quoted names are masked first, so only the keywords themselves count.
A ``NOT NULL ON CONFLICT REPLACE`` writes the column's default instead of deleting and is left out.
"""

from __future__ import annotations

import re
import sqlite3

__all__ = ["replace_constraint", "replaces_in_trigger"]

#: A constraint's conflict clause choosing REPLACE, with what it follows (NOT NULL: no delete).
_CONFLICT = re.compile(r"(\bNOT\s+NULL\s+)?\bON\s+CONFLICT\s+REPLACE\b", re.IGNORECASE)
#: A statement's REPLACE (``OR REPLACE``, ``REPLACE INTO``), not the ``replace()`` function nor
#: a column ``x.replace``.
_STATEMENT = re.compile(r"(?<![\w$.])REPLACE\b(?!\s*\()", re.IGNORECASE)


def _masked(sql: str) -> str:
    """``sql`` with comments blanked and the inside of string literals and quoted names replaced
    by ``_``, the same length (positions still point into ``sql``)."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(" " * (end - i))
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(" " * (end - i))
            i = end
        elif c in "'\"`[":
            close = "]" if c == "[" else c
            j = i + 1
            while j < n:
                if sql[j] == close:
                    if close != "]" and sql.startswith(close * 2, j):
                        j += 2  # a doubled quote inside the literal
                        continue
                    break
                j += 1
            j = min(j, n - 1)
            out.append(c + "_" * (j - i - 1) + (sql[j] if j > i else ""))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _clause(sql: str, masked: str, at: int) -> str:
    """The column definition or table constraint of ``sql`` around position ``at``: from the
    comma or parenthesis opening it at the table's top level to the one closing it."""
    depth = 0
    start = 0
    for i, c in enumerate(masked[:at]):
        if c == "(":
            depth += 1
            if depth == 1:
                start = i + 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 1:
            start = i + 1
    end = len(masked)
    depth = 1
    for i in range(at, len(masked)):
        c = masked[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                end = i
                break
        elif c == "," and depth == 1:
            end = i
            break
    return " ".join(sql[start:end].split())


def replace_constraint(conn: sqlite3.Connection, table: str) -> str | None:
    """The first constraint of ``table`` (of ``main``) declared ``ON CONFLICT REPLACE`` that a
    write resolves by deleting the conflicting row, as written (``name TEXT UNIQUE ON CONFLICT
    REPLACE``), ``None`` when it has none (or is not a table)."""
    row = conn.execute(
        "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ? COLLATE NOCASE", (table,)
    ).fetchone()
    if row is None or not row[0]:
        return None
    sql = str(row[0])
    masked = _masked(sql)
    for match in _CONFLICT.finditer(masked):
        if match.group(1) is None:
            return _clause(sql, masked, match.start())
    return None


def replaces_in_trigger(conn: sqlite3.Connection, trigger: str) -> bool:
    """Whether trigger ``trigger``'s body writes with REPLACE (``INSERT OR REPLACE``, ``REPLACE
    INTO``, ``UPDATE OR REPLACE``); a trigger not found counts (over-refusing is safe)."""
    row = conn.execute(
        "SELECT sql FROM sqlite_schema WHERE type = 'trigger' AND name = ? COLLATE NOCASE",
        (trigger,),
    ).fetchone()
    if row is None or not row[0]:
        return True
    return _STATEMENT.search(_masked(str(row[0]))) is not None
