"""PostgreSQL measures the bytes of a page or of a count's group keys in SQL, so an answer past its
bound is refused before its rows leave the database.

psycopg reads a statement's whole result into the server's memory before the first row is handed
out, so counting as rows are read (``sqlite_pages.fetch_page``, ``group_bytes.fetch_groups``)
would come too late: a hostile ``groupBy`` on huge strings was held whole first. Each statement
is wrapped instead (``bounded_page``, ``bounded_groups``): a window sums the UTF-8 bytes of its
rows in their order (``octet_length`` of a record's JSON text, of a string key's text), and only
the rows within the bound come back, plus the one that passes it, its values left out and
flagged. The readers (``page_rows``, ``group_rows``) refuse a flagged answer with the same error
and words as SQLite (``page_too_large``, ``groups_too_large``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from psycopg import sql

from dbhandles.adapters import group_bytes, sqlite_pages
from dbhandles.adapters.sql_facets import Statement

__all__ = [
    "bounded_columns",
    "bounded_groups",
    "bounded_page",
    "columns_rows",
    "group_rows",
    "page_rows",
]

#: The window of the running sums: the answer's own order, every row up to the current one. The
#: answer is ordered by the same list again (a total order: it ends with the id, or the group's
#: key), which PostgreSQL reads from the window's sort rather than sorting the rows once more.
_WINDOW = "WINDOW w AS (ORDER BY {order} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"


def bounded_page(
    statement: sql.Composable, params: Sequence[Any], order: str
) -> tuple[sql.Composed, tuple[Any, ...]]:
    """``statement`` (a page: ``id, data, created_at, updated_at, version`` in ``order``, an
    ``ORDER BY`` list naming those columns, limited) answering only the rows whose record JSON
    fits ``sqlite_pages.MAX_PAGE_BYTES`` with the rows before them, then the first that passes it
    (its ``data`` NULL), ``data`` as JSON text, each with a last column: whether it passed
    (``page_rows`` reads them)."""
    bound = sqlite_pages.MAX_PAGE_BYTES
    # Each record's JSON text is made once (``t``: ``OFFSET 0`` keeps PostgreSQL from pulling the
    # level up and making it again for each use), measured (``own``), summed in the page's order
    # (``b``) and sent as it is: the driver would otherwise have PostgreSQL make it a second time.
    head = sql.SQL(
        "SELECT id, (CASE WHEN b <= %s THEN t END) AS data, created_at, updated_at, version, "
        "b > %s AS past FROM (SELECT p.*, sum(own) OVER w AS b FROM (SELECT q.*, "
        "octet_length(q.t) AS own FROM (SELECT q.*, q.data::text AS t FROM ("
    )
    tail = sql.SQL(
        f") AS q OFFSET 0) AS q) AS p {_WINDOW.format(order=order)}) AS x "
        f"WHERE b - own <= %s ORDER BY {order}"
    )
    return head + statement + tail, (bound, bound, *params, bound)


def page_rows(rows: list[Any], collection: str) -> list[Any]:
    """The rows of a ``bounded_page`` statement without their last column, each record's JSON
    text read (``orjson``, as the connection reads ``jsonb``).

    Raises:
        QueryFailed: the page passed ``MAX_PAGE_BYTES`` (``sqlite_pages.page_too_large``).
    """
    if rows and rows[-1][-1]:
        raise sqlite_pages.page_too_large(collection, len(rows))
    loads = orjson.loads
    return [(row[0], loads(row[1]), *row[2:-1]) for row in rows]


def bounded_groups(statement: Statement, paths: int) -> Statement:
    """``statement`` (``sql_facets.postgres_group_count`` of ``paths`` paths: its columns ``r{i},
    v{i}``, ``n``, ``total``, ``groups``, ``c{i}`` and, with several paths, ``records``; its last
    words ``ORDER BY ... LIMIT %s``) answering only the groups whose string keys fit
    ``group_bytes.MAX_GROUP_BYTES`` with the groups before them, then the first that passes it
    (its keys NULL), each with a last column: whether it passed (``group_rows``)."""
    *parts, last = statement.parts
    before, _, order = last.rpartition(" ORDER BY ")
    if not before or not order.endswith(" LIMIT %s"):
        raise ValueError("a group statement ends ORDER BY ... LIMIT %s")  # sql_facets changed
    order = order.removesuffix(" LIMIT %s")
    bound = group_bytes.MAX_GROUP_BYTES
    size = " + ".join(
        f"(CASE WHEN g.r{i} = 3 THEN octet_length(g.v{i} #>> '{{}}') ELSE 0 END)"
        for i in range(paths)
    )
    keys = ", ".join(f"r{i}, (CASE WHEN b <= %s THEN v{i} END) AS v{i}" for i in range(paths))
    containers = "".join(f", c{i}" for i in range(paths))
    records = ", records" if paths > 1 else ""
    head = (
        f"SELECT {keys}, n, total, groups{containers}{records}, b > %s AS past FROM "
        "(SELECT g.*, sum(own) OVER w AS b FROM "
        f"(SELECT g.*, {size} AS own FROM ("
    )
    tail = f") AS g) AS g {_WINDOW.format(order=order)}) AS x WHERE b - own <= %s ORDER BY {order}"
    return Statement(
        (head + parts[0], *parts[1:], last + tail) if parts else (head + last + tail,),
        (*([bound] * (paths + 1)), *statement.params, bound),
    )


def group_rows(
    rows: list[Any], collection: str, group_by: tuple[tuple[str, ...], ...]
) -> list[Any]:
    """The rows of a ``bounded_groups`` statement without their last column.

    Raises:
        QueryFailed: the keys passed ``MAX_GROUP_BYTES`` (``group_bytes.groups_too_large``).
    """
    if rows and rows[-1][-1]:
        raise group_bytes.groups_too_large(collection, group_by, len(rows))
    return [row[:-1] for row in rows]


def bounded_columns(columns: Sequence[str], rest: str) -> str:
    """A page of a table dbhandles did not create (``SELECT {columns} {rest}``, ``rest`` its
    ``FROM ... ORDER BY ... LIMIT ... OFFSET ...``), each column a ``jsonb`` expression
    (``postgres_foreign_sql.json_sql``), answering only the rows whose values' JSON text fits
    ``sqlite_pages.MAX_PAGE_BYTES`` with the rows before them, then the first that passes it (its
    values NULL): each row as the JSON text of the array of its values, then whether it passed
    (``columns_rows``). Each value's text is made once, measured and sent as it is (as
    ``bounded_page`` sends a record's): the driver would have PostgreSQL make it again.

    The page is summed in the order it comes out of its own ``ORDER BY ... LIMIT``, and answered
    in it: a window with no order of its own reads its input as it comes, and the nodes above the
    limit (a subquery scan, the window, a filter) each pass rows on in the order they get them, so
    the page keeps its plan (an index scan, a bounded top-N sort) and is sorted once. Its order
    expressions name the relation's columns, which a window over the page could not name.
    """
    bound = int(sqlite_pages.MAX_PAGE_BYTES)
    names = [f"c{i}" for i in range(len(columns))]
    inner = ", ".join(
        f"({expr})::text AS {name}" for expr, name in zip(columns, names, strict=True)
    )
    own = " + ".join(f"coalesce(octet_length(q.{name}), 0)" for name in names) or "0"
    row = " || ',' || ".join(f"coalesce({name}, 'null')" for name in names) or "''"
    return (
        f"SELECT (CASE WHEN b <= {bound} THEN '[' || {row} || ']' END) AS r, b > {bound} AS past "
        "FROM (SELECT p.*, sum(own) OVER (ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS b "
        f"FROM (SELECT q.*, {own} AS own FROM (SELECT {inner} {rest}) AS q) AS p) AS x "
        f"WHERE b - own <= {bound}"
    )


def columns_rows(rows: list[Any], collection: str) -> list[list[Any]]:
    """The rows of a ``bounded_columns`` statement: each row's values, read from its JSON text
    (``orjson``, as the connection reads ``jsonb``).

    Raises:
        QueryFailed: the page passed ``MAX_PAGE_BYTES`` (``sqlite_pages.page_too_large``).
    """
    if rows and rows[-1][-1]:
        raise sqlite_pages.page_too_large(collection, len(rows))
    loads = orjson.loads
    return [loads(row[0]) for row in rows]
