"""Whether a file's schema SQL may run with ``trusted_schema`` ON: what it calls and what it reads.

SQLite releases before 3.45 do not mark the JSON functions innocuous, so ``trusted_schema = OFF``
refuses every write to a table with dbhandles' JSON expression indexes (``sqlite_schema``). On such
a build a connection runs trusting only while nothing in the file's schema could do more than
``trusted_schema = OFF`` lets it, JSON excepted (SQLite marks it innocuous from 3.45 on, so the
same SQL runs there untrusted). ``distrust`` reads every statement of ``sqlite_schema`` that
dbhandles did not write itself (``sqlite_schema.Catalog`` leaves out its collection tables and
indexes, which it matches exactly), with SQLite's own tokenizer rules (``sqlite_vtables.tokens``:
comments, the four quotings, any case), and finds:

- a call of a function SQLite does not mark innocuous (``name(`` and the operators ``REGEXP`` and
  ``MATCH``, which call ``regexp()`` and ``match()``), JSON functions excepted: dbhandles' own
  ``regexp``, sampling hash and record readers (``sqlite_values.register``), ``load_extension``, ``fts3_tokenizer``, the FTS and R*Tree
  functions (``match``, ``snippet``, ``optimize``, which writes, ``rtreecheck``...) in a CHECK
  constraint, a default, a generated column, an index expression or its ``WHERE``, a view or a
  trigger;
- a view or trigger naming a virtual table of the file (SQLite 3.40 marks no FTS or R*Tree table
  innocuous). Not counted: the virtual tables the guard refuses reading from any SQL, and the
  ``pragma_*`` and revealing eponymous tables (``dbstat``...) it refuses to views and triggers
  (``sqlite_guard``): trust gives them nothing, and the guard's refusal names the view or
  trigger and what it reads.

Anything found makes the connection untrusting (``SqliteAdapter._open_connection`` parses the
schema again with ``trusted_schema = OFF``), where SQLite refuses it itself, as every newer release
does. A name followed by ``(`` that is not a function (a table in ``REFERENCES t(a)``, a type
``VARCHAR(10)``) is never one SQLite could call; a table or type that happens to share a
forbidden function's name distrusts the schema, which only costs what ``trusted_schema = OFF``
costs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from functools import cache

from dbhandles.adapters.sql_facets import HASH_FUNCTION, sqlite_hash
from dbhandles.adapters.sqlite_values import BASE64_FUNCTION, DOCUMENT_FUNCTION, RECORD_FUNCTION
from dbhandles.adapters.sqlite_values import register as register_values
from dbhandles.adapters.sqlite_vtables import dequote, tokens
from dbhandles.errors import AccessDenied
from dbhandles.regex import search
from dbhandles.values import json_text

__all__ = [
    "REGISTERED_FUNCTIONS",
    "distrust",
    "register_functions",
    "untrusted_functions",
    "untrusted_open",
]

#: The functions dbhandles registers on its SQLite connections (``create_function``: never marked
#: innocuous, so a schema's SQL may not call them, as under ``trusted_schema = OFF``).
REGISTERED_FUNCTIONS = frozenset(
    {"regexp", HASH_FUNCTION, RECORD_FUNCTION, DOCUMENT_FUNCTION, BASE64_FUNCTION}
)
#: ``SQLITE_INNOCUOUS`` in ``pragma_function_list.flags``.
_INNOCUOUS = 0x200000
#: Operators that call a function by that name (``x REGEXP y`` is ``regexp(y, x)``).
_OPERATORS = frozenset({"regexp", "match"})


def _regexp(pattern: object, value: object) -> int:
    # SQLite may evaluate this before the type guard it is ANDed with: any non-text value is a miss.
    # RE2 (dbhandles.regex), as everywhere: linear time, and the GIL is released while it matches.
    if not isinstance(pattern, str) or not isinstance(value, str):
        return 0
    return 1 if search(pattern, value) else 0


def register_functions(conn: sqlite3.Connection) -> None:
    """Put ``REGISTERED_FUNCTIONS`` on ``conn``, before anything reads its schema.

    SQLite checks whether schema SQL may call a function when it parses the schema: a CHECK
    constraint, generated column or index expression naming a function the connection does not
    have yet passes that check, and calls the function once it is registered, even with
    ``trusted_schema = OFF`` (measured on 3.40). Registered first, they are refused as any
    other function that is not innocuous (``unsafe use of regexp()``).
    """
    conn.create_function("regexp", 2, _regexp, deterministic=True)
    conn.create_function(HASH_FUNCTION, 2, sqlite_hash, deterministic=True)
    register_values(conn)  # the canonical record and document texts every filter reads


@cache
def untrusted_functions() -> frozenset[str]:
    """Lower names of the functions a schema may not call while its connection trusts it: those
    this SQLite has with a variant that is not innocuous, JSON ones excepted, and dbhandles' own."""
    probe = sqlite3.connect(":memory:")
    try:
        rows = probe.execute("SELECT name, flags FROM pragma_function_list").fetchall()
    finally:
        probe.close()
    found = {str(name).lower() for name, flags in rows if not int(flags) & _INNOCUOUS}
    return frozenset({f for f in found if not f.startswith("json")} | REGISTERED_FUNCTIONS)


def _calls(sql: str) -> list[str]:
    """The names ``sql`` calls (``name(``, ``REGEXP``, ``MATCH``), lower-cased, in order."""
    found: list[str] = []
    parts = tokens(sql)
    for i, (kind, text, _, _) in enumerate(parts):
        if kind not in ("word", "id"):
            continue
        name = dequote(text).lower()
        following = parts[i + 1] if i + 1 < len(parts) else None
        if (following is not None and following[:2] == ("punct", "(")) or (
            kind == "word" and name in _OPERATORS
        ):
            found.append(name)
    return found


def _names(sql: str) -> set[str]:
    """Every name ``sql`` mentions (bare or quoted), lower-cased."""
    return {dequote(text).lower() for kind, text, _, _ in tokens(sql) if kind in ("word", "id")}


def distrust(rows: list[tuple[str, str, str, str | None]], virtual: Collection[str]) -> str | None:
    """Why the schema statements ``rows`` (``(type, name, tbl_name, sql)`` of ``sqlite_schema``,
    dbhandles' own left out) may not run trusted, or ``None`` when they do nothing more trusted
    than ``trusted_schema = OFF`` lets them (JSON aside). ``virtual``: the lower names of the
    file's virtual tables the guard does not refuse.

    Returns:
        A phrase naming the object and what it calls or reads (``the table "f" calls
        regexp()``), for messages; ``None``: nothing found.
    """
    forbidden = untrusted_functions()
    for kind, name, _, sql in rows:
        if not sql or (kind == "table" and sql.lstrip()[:14].upper() == "CREATE VIRTUAL"):
            # A virtual table's arguments are not SQL SQLite runs (``sqlite_vtables`` reads them).
            continue
        which = f"the {kind} {json_text(name, 80)}"
        called = next((f for f in _calls(sql) if f in forbidden), None)
        if called is not None:
            return f"{which} calls {called}(), which SQLite does not mark innocuous"
        if kind in ("view", "trigger"):
            for read in sorted(_names(sql)):
                if read in virtual:
                    return f"{which} reads the virtual table {json_text(read, 80)}"
    return None


@contextmanager
def untrusted_open(reason: str | None) -> Iterator[None]:
    """Around opening a file again untrusting because of ``reason`` (``distrust``'s words): SQLite
    then refuses the schema SQL that calls a function it does not mark innocuous (``unsafe use of
    json_extract()``, in dbhandles' own JSON indexes too on SQLite before 3.45), and the refusal
    says first why the schema is not trusted, the SQL to drop or change.

    Raises:
        AccessDenied: ``access_denied`` naming ``reason`` and SQLite's refusal; nothing was read.
    """
    try:
        yield
    except AccessDenied as exc:
        if reason is None:
            raise
        raise AccessDenied(
            f"dbhandles does not trust this database's schema: {reason}. Without that trust "
            f"SQLite {sqlite3.sqlite_version} cannot read it: {exc.message}"
        ) from exc
