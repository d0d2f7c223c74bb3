"""SQL for ``data/count`` groups and for samples and splits, in SQLite's and PostgreSQL's dialects.

The rules are ``facets`` (group values) and ``sampling`` (the id hash); this module only spells them
in SQL, one statement each, and reads the rows back. A statement is built around the collection's
table, which each session names its own way: ``Statement.parts`` are the SQL text around each place
the table goes (``Statement.join`` for a plain name, the PostgreSQL session composes its identifier).

Groups: every ``groupBy`` path becomes a chain of ``json_each`` (SQLite) or
``jsonb_array_elements ... WITH ORDINALITY`` (PostgreSQL) joins, one per path part: a value that is an
array is entered, any other value is wrapped in a one-element array (an empty array in ``[null]``), so
every record yields at least one row. On SQLite the whole path is read first (``->``), and only a
record where that crosses an array is walked part by part, each level a table expression of its own
(``_sqlite_walk``); the last join's ``type`` and ``value`` are the group key as they are. The rows
are grouped by (rank, value) of the last part; window functions over the groups give the number of
records (rows whose every element index is the first), the number of groups, and whether a group
holds an object (which ``data/count`` refuses). With several paths, a first statement
(``*_group_overflow``) looks for a record whose numbers of values multiply past
``facets.MAX_COMBINATIONS``, each path's values counted on their own for that record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dbhandles.adapters.facets import MAX_COMBINATIONS, GroupCounts, container_error, key_value
from dbhandles.adapters.sampling import Sampling
from dbhandles.adapters.sql_compile import Fragment
from dbhandles.filters import check_collection_query

__all__ = [
    "HASH_FUNCTION",
    "Statement",
    "postgres_group_count",
    "postgres_group_overflow",
    "postgres_sampled",
    "read_groups",
    "sqlite_group_count",
    "sqlite_group_overflow",
    "sqlite_hash",
    "sqlite_sampled",
]

#: The SQL function name the SQLite session registers for ``sampling.sample_hash``.
HASH_FUNCTION = "dbh_sample_hash"
#: Where the table goes in a statement's text (never valid SQL, so it cannot collide).
_TABLE = "\x00T\x00"


@dataclass(frozen=True, slots=True)
class Statement:
    """SQL text around the places the collection's table goes, and the parameters in order."""

    parts: tuple[str, ...]
    params: tuple[object, ...]

    def join(self, table: str) -> str:
        """The SQL with ``table`` (a quoted name) in each place."""
        return table.join(self.parts)


def _statement(sql: str, params: Sequence[object]) -> Statement:
    return Statement(tuple(sql.split(_TABLE)), tuple(params))


def sqlite_hash(prefix: str | None, record_id: str | None) -> int | None:
    """``sampling.sample_hash`` as SQLite calls it: ``prefix`` is ``"<salt>:<seed>:"``."""
    if prefix is None or record_id is None:
        return None
    digest = hashlib.md5((prefix + record_id).encode(), usedforsecurity=False)
    return int(digest.hexdigest()[:15], 16)


# -- groups ---------------------------------------------------------------------------------------

_SQLITE_RANK = (
    "(CASE {t} WHEN 'null' THEN 0 WHEN 'true' THEN 1 WHEN 'false' THEN 1 WHEN 'integer' THEN 2 "
    "WHEN 'real' THEN 2 WHEN 'text' THEN 3 ELSE 4 END)"
)


def _group_sql(
    source: str, joins: str, ranks: list[str], values: list[str], firsts: list[str],
    order_values: list[str], join_word: str,
) -> str:  # fmt: skip
    columns = ", ".join(
        f"{r} AS r{i}, {v} AS v{i}" for i, (r, v) in enumerate(zip(ranks, values, strict=True))
    )
    keys = ", ".join(f"r{i}, v{i}" for i in range(len(ranks)))
    first = " AND ".join(firsts)
    containers = ", ".join(
        f"max(CASE WHEN r{i} = 4 THEN 1 ELSE 0 END) OVER () AS c{i}" for i in range(len(ranks))
    )
    inner = (
        f"SELECT {columns}, (CASE WHEN {first} THEN 1 ELSE 0 END) AS f "
        f"FROM ({source}) AS t{join_word}{joins}"
    )
    return (
        f"SELECT {keys}, count(*) AS n, sum(sum(f)) OVER () AS total, count(*) OVER () AS groups, "
        f"{containers} "
        f"FROM ({inner}) AS s GROUP BY {keys} ORDER BY n DESC, {', '.join(order_values)} LIMIT ?"
    )


def _checked(group_by: tuple[tuple[str, ...], ...]) -> None:
    """Refuse a path a collection's documents cannot be reached by, as the filter compiler and the
    memory adapter do (``filters.check_collection_query``): the same ``invalid_filter`` everywhere.
    The names are bound parameters all the same; this keeps the answer the same on every adapter."""
    check_collection_query(None, group_by)


def _sqlite_json_path(path: tuple[str, ...]) -> str:
    """The SQLite JSON path of ``path`` (``$.a.b``), a bound parameter's value."""
    return "$." + ".".join(path)


def _sqlite_source(
    where: Fragment, group_by: tuple[tuple[str, ...], ...]
) -> tuple[str, list[object]]:
    """The matching records, each with what the path walks read from it (``_sqlite_walk``), and
    the parameters of that SQL in order (the JSON paths, bound, then the filter's).

    Per path ``i``: ``xf`` the whole path's JSON text (``data -> '$.a.b'``), which is the answer
    whenever the path crosses no array (``->`` gives NULL when it does, or when the field is
    missing); for a path of several parts, ``x`` the first part's JSON text, read only when ``xf``
    is NULL: where the walk starts. Every JSON function call site parses its input again, and the
    record is the one big input, so it is read here and nowhere else.
    """
    # LIMIT keeps each level a subquery of its own (not flattened into the joins), so each column
    # is computed once per record; ``data`` stays inside these two levels (the joins' outer level
    # never holds it).
    n = len(group_by)
    whole = ", ".join(f"data -> ? AS xf{i}" for i in range(n))
    longer = [i for i, p in enumerate(group_by) if len(p) > 1]
    inner = f"SELECT data, {whole} FROM {_TABLE} WHERE {where.sql} LIMIT -1"
    columns = [f"xf{i}" for i in range(n)]
    columns += [f"CASE WHEN xf{i} IS NULL THEN data -> ? END AS x{i}" for i in longer]
    params: list[object] = [_sqlite_json_path(group_by[i][:1]) for i in longer]
    params.extend(_sqlite_json_path(p) for p in group_by)
    params.extend(where.params)
    return f"SELECT {', '.join(columns)} FROM ({inner}) LIMIT -1", params


def _sqlite_walk(
    i: int, path: tuple[str, ...], base: str, carry: list[str], ctes: list[str]
) -> tuple[str, list[object], list[str]]:
    """The levels that walk path ``i`` over ``base`` (the name of a table expression whose rows have
    the columns ``carry``, among them ``xf{i}`` and, for several parts, ``x{i}``), each level a
    common table expression appended to ``ctes`` (``w{i}_{k}``): (the name of the last level, whose
    rows have the columns returned; the parameters of the levels added, in order: each later part's
    name, bound, never in the SQL text).

    The levels follow one another in one ``WITH`` list rather than each inside the next: SQLite's
    parser keeps a bounded stack, and a subquery nested in a subquery per part overflowed it from
    12 parts ("parser stack overflow"), while the walk itself is the same (``LIMIT -1`` keeps each
    level from being flattened into the next, as it kept each nested subquery), so a path of up to
    ``filters.MAX_PATH_PARTS`` parts, on each of the ``groupBy`` paths, is one statement.

    A path of one part needs no walk (``xf{i}`` is its value). For several, the rows have
    ``F{i}``, the JSON text of one value reached at the path's end (NULL when the
    path reaches nothing), and a ``first{i}_{k}`` per level entered, true on the first element. Only
    when ``xf`` is NULL is the path walked, from ``x``: level ``k`` enters its value when it is a
    non-empty array, else stands on it (a one-element array of it), and reads the next part as a
    member of each element that is an object (``->`` on the small element text, once per element:
    each level is a subquery of its own, so the expression is computed once). An element that is
    no object has no member: NULL. Time grows linearly with the length of every array entered.
    The walk never copies the record.
    """
    if len(path) == 1:
        return base, [], carry
    params: list[object] = []
    current = f"x{i}"
    kept = [c for c in carry if c not in (f"xf{i}", f"x{i}")]
    for k, part in enumerate(path[1:]):
        last = k == len(path) - 2
        member = "CASE WHEN g.type = 'object' THEN g.value -> ? END"
        value = f"COALESCE(t.xf{i}, {member}) AS F{i}" if last else f"{member} AS j{i}_{k + 1}"
        carried = [*kept, f"xf{i}"] if not last else kept
        arg = (
            f"CASE WHEN substr(t.{current}, 1, 1) = '[' AND t.{current} <> '[]' THEN t.{current} "
            f"ELSE '[' || COALESCE(t.{current}, 'null') || ']' END"
        )
        columns = ", ".join([*(f"t.{c}" for c in carried), value, f"g.key = 0 AS first{i}_{k}"])
        name = f"w{i}_{k}"
        ctes.append(
            f"{name} AS (SELECT {columns} FROM {base} AS t CROSS JOIN json_each({arg}) AS g "
            "LIMIT -1)"
        )
        params.append(_sqlite_json_path((part,)))
        base = name
        kept.append(f"first{i}_{k}")
        current = f"j{i}_{k + 1}"
    return base, params, [*kept, f"F{i}"]


def _sqlite_final(i: int, path: tuple[str, ...]) -> str:
    """The join that gives each value of path ``i`` (``g{i}``): the elements of an array reached
    (one null for an empty one), else the value itself (null when nothing was reached)."""
    f = f"t.F{i}" if len(path) > 1 else f"t.xf{i}"
    return (
        f" CROSS JOIN json_each(CASE WHEN {f} IS NULL OR {f} = '[]' THEN '[null]' "
        f"WHEN substr({f}, 1, 1) = '[' THEN {f} ELSE '[' || {f} || ']' END) AS g{i}"
    )


def _sqlite_walks(
    base: str, carry: list[str], group_by: tuple[tuple[str, ...], ...], ctes: list[str]
) -> tuple[str, list[object], list[str]]:
    """``_sqlite_walk`` of every path in turn over ``base``: (the last level's name, parameters of
    the levels added to ``ctes`` in order, columns)."""
    params: list[object] = []
    for i, path in enumerate(group_by):
        base, walk_params, carry = _sqlite_walk(i, path, base, carry, ctes)
        params.extend(walk_params)
    return base, params, carry


def _overflow(source: str, counts: list[str], ph: str) -> str:
    # Counts are multiplied as numbers that cannot overflow (SQLite turns an integer overflow into
    # a float; PostgreSQL multiplies numerics).
    product = " * ".join(counts)
    return f"SELECT 1 FROM ({source}) AS t WHERE {product} > {ph} LIMIT 1"


def _source_columns(group_by: tuple[tuple[str, ...], ...]) -> list[str]:
    return [f"xf{i}" for i in range(len(group_by))] + [
        f"x{i}" for i, p in enumerate(group_by) if len(p) > 1
    ]


def sqlite_group_overflow(
    where: Fragment, group_by: tuple[tuple[str, ...], ...]
) -> Statement | None:
    """A row when a matching record gives more than ``MAX_COMBINATIONS`` combinations of values
    (``None`` for one path: one record's values cannot multiply).

    Raises:
        InvalidFilter: a path is not one a collection's documents can be reached by.
    """
    _checked(group_by)
    if len(group_by) < 2:
        return None
    source, source_params = _sqlite_source(where, group_by)
    counts = []
    params: list[object] = []
    for i, path in enumerate(group_by):
        # Each path's values counted on their own for the record (a correlated subquery).
        own = [f"xf{i}"] + ([f"x{i}"] if len(path) > 1 else [])
        ctes = [f"b{i} AS (SELECT {', '.join(f'o.{c} AS {c}' for c in own)} LIMIT -1)"]
        walk, walk_params, _ = _sqlite_walk(i, path, f"b{i}", own, ctes)
        counts.append(
            f"(WITH {', '.join(ctes)} SELECT count(*) FROM {walk} AS t{_sqlite_final(i, path)})"
        )
        params.extend(walk_params)
    sql = _overflow(source, counts, "?").replace(") AS t WHERE", ") AS o WHERE", 1)
    return _statement(sql, (*source_params, *params, MAX_COMBINATIONS))


def sqlite_group_count(
    where: Fragment, group_by: tuple[tuple[str, ...], ...], limit: int
) -> Statement:
    """Group the rows of the table matching ``where`` (compiled by the SQLite compiler).

    Raises:
        InvalidFilter: a path is not one a collection's documents can be reached by.
    """
    _checked(group_by)
    source, source_params = _sqlite_source(where, group_by)
    ctes = [f"src AS ({source})"]
    walks, walk_params, columns = _sqlite_walks("src", _source_columns(group_by), group_by, ctes)
    n = len(group_by)
    flags = [f"t.{c}" for c in columns if c.startswith("first")] + [
        f"g{i}.key = 0" for i in range(n)
    ]
    # Two stages: the elements are grouped by their raw (json_each value, type), which costs one
    # comparison per element (the value first: it tells most elements apart); the typed key (rank, value: 'true'/'false' one rank, 1 and 1.0 one
    # group, containers one key) is computed over those few groups and grouped again.
    raw_columns = ", ".join(f"g{i}.type AS t{i}, g{i}.value AS u{i}" for i in range(n))
    raw_keys = ", ".join(f"u{i}, t{i}" for i in range(n))
    finals = "".join(_sqlite_final(i, path) for i, path in enumerate(group_by))
    raw = (
        f"SELECT {raw_columns}, count(*) AS n, sum({' AND '.join(flags)}) AS f "
        f"FROM {walks} AS t{finals} GROUP BY {raw_keys}"
    )
    typed = ", ".join(
        f"{_SQLITE_RANK.format(t=f't{i}')} AS r{i}, "
        f"(CASE WHEN t{i} IN ('true', 'false', 'integer', 'real', 'text') THEN u{i} END) AS v{i}"
        for i in range(n)
    )
    keys = ", ".join(f"r{i}, v{i}" for i in range(n))
    containers = ", ".join(
        f"max(CASE WHEN r{i} = 4 THEN 1 ELSE 0 END) OVER () AS c{i}" for i in range(n)
    )
    sql = (
        f"WITH {', '.join(ctes)} "
        f"SELECT {keys}, sum(n) AS n, sum(sum(f)) OVER () AS total, count(*) OVER () AS groups, "
        f"{containers} FROM (SELECT {typed}, n, f FROM ({raw})) AS s "
        f"GROUP BY {keys} ORDER BY n DESC, {keys} LIMIT ?"
    )
    return _statement(sql, (*source_params, *walk_params, limit))


def _postgres_chain(
    i: int, path: tuple[str, ...]
) -> tuple[str, str, str, list[str], str, list[object]]:
    """Joins for one path: (join SQL, rank SQL, value SQL, first-element conditions, order SQL,
    the join SQL's parameters: each part's name, bound as text, never in the SQL text).

    The join SQL is one ``LATERAL`` subquery per path (``p{i}``: its value ``v`` and whether every
    element taken is the first, ``f``) holding that path's two joins per part; ``OFFSET 0`` keeps
    the planner from pulling them up into one join of every path's parts, whose planning time grew
    far faster than the parts (four paths of 60 parts ran past a 10 s budget, ``PostgreSQL``'s
    genetic join search over some 500 relations).
    """
    joins, firsts = [], []
    params: list[object] = []
    for k, part in enumerate(path):
        src = "t.data" if k == 0 else f"g{i}_{k - 1}.v"
        # The member, read once per element (a LATERAL subquery) with its name bound.
        sub = f"s{i}_{k}.v"
        arr = (
            f"(CASE WHEN jsonb_typeof({sub}) = 'array' THEN "
            f"(CASE WHEN {sub} = '[]'::jsonb THEN '[null]'::jsonb ELSE {sub} END) "
            f"ELSE jsonb_build_array({sub}) END)"
        )
        joins.append(
            f" CROSS JOIN LATERAL (SELECT {src} -> (%s)::text AS v) AS s{i}_{k}"
            f" CROSS JOIN LATERAL jsonb_array_elements({arr}) WITH ORDINALITY AS g{i}_{k}(v, n)"
        )
        params.append(part)
        firsts.append(f"g{i}_{k}.n = 1")
    inner = (
        f" CROSS JOIN LATERAL (SELECT g{i}_{len(path) - 1}.v AS v, ({' AND '.join(firsts)}) AS f "
        f"FROM (SELECT 1) AS d{i}{''.join(joins)} OFFSET 0) AS p{i}"
    )
    last = f"p{i}.v"
    rank = (
        f"(CASE jsonb_typeof({last}) WHEN 'null' THEN 0 WHEN 'boolean' THEN 1 WHEN 'number' THEN 2 "
        "WHEN 'string' THEN 3 ELSE 4 END)"
    )
    value = f"(CASE WHEN jsonb_typeof({last}) IN ('boolean', 'number', 'string') THEN {last} END)"
    order = (
        f"r{i}, (CASE WHEN r{i} = 1 THEN v{i} = 'true'::jsonb END), "
        f"(CASE WHEN r{i} = 2 THEN (v{i})::numeric END), "
        f"(CASE WHEN r{i} = 3 THEN v{i} #>> '{{}}' END) COLLATE \"C\""
    )
    return inner, rank, value, [f"p{i}.f"], order, params


def postgres_group_overflow(
    where: Fragment, group_by: tuple[tuple[str, ...], ...]
) -> Statement | None:
    """``sqlite_group_overflow`` in PostgreSQL."""
    _checked(group_by)
    if len(group_by) < 2:
        return None
    params: list[object] = list(where.params)
    counts = []
    for i, path in enumerate(group_by):
        joins, *_, join_params = _postgres_chain(i, path)
        counts.append(f"(SELECT count(*)::numeric FROM (SELECT 1) AS d{joins})")
        params.extend(join_params)
    sql = _overflow(f"SELECT data FROM {_TABLE} WHERE {where.sql}", counts, "%s")
    return _statement(sql, (*params, MAX_COMBINATIONS))


def postgres_group_count(
    where: Fragment, group_by: tuple[tuple[str, ...], ...], limit: int
) -> Statement:
    """Group the rows of the table matching ``where`` (compiled by the PostgreSQL compiler).

    Raises:
        InvalidFilter: a path is not one a collection's documents can be reached by.
    """
    _checked(group_by)
    joins, ranks, values, firsts, order = [], [], [], [], []
    params: list[object] = list(where.params)
    for i, path in enumerate(group_by):
        j, r, v, f, o, join_params = _postgres_chain(i, path)
        joins.append(j)
        ranks.append(r)
        values.append(v)
        firsts.extend(f)
        order.append(o)
        params.extend(join_params)
    source = f"SELECT data FROM {_TABLE} WHERE {where.sql}"
    sql = _group_sql(source, "".join(joins), ranks, values, firsts, order, "").replace(
        "LIMIT ?", "LIMIT %s"
    )
    return _statement(sql, (*params, limit))


def _key(rank: int, value: Any) -> Any:
    if rank == 0:
        return None
    if rank == 1:
        return bool(value)
    if rank == 2:
        return key_value(value)
    return value


def read_groups(
    rows: Sequence[Sequence[Any]], group_by: tuple[tuple[str, ...], ...]
) -> GroupCounts:
    """The rows of a group statement as ``GroupCounts``.

    Raises:
        InvalidParams: a group holds an object or an array inside an array.
    """
    if not rows:
        return GroupCounts()
    width = 2 * len(group_by)
    for i, path in enumerate(group_by):
        if rows[0][width + 3 + i]:
            raise container_error(path)
    groups = [
        (
            tuple(_key(int(row[2 * i]), row[2 * i + 1]) for i in range(len(group_by))),
            int(row[width]),
        )
        for row in rows
    ]
    return GroupCounts(
        groups=groups, total=int(rows[0][width + 1]), group_count=int(rows[0][width + 2])
    )


# -- samples and splits ---------------------------------------------------------------------------


def _sample_condition(sampling: Sampling, where: Fragment, hash_sql: str, ph: str) -> Fragment:
    parts: list[str] = []
    params: list[object] = []
    split_sql = ""
    split_params: list[object] = []
    if sampling.split is not None:
        seed, low, high = sampling.split
        split_sql = f"{hash_sql} BETWEEN {ph} AND {ph}"
        split_params = [f"split:{seed}:", low, high - 1]
        parts.append(split_sql)
        params.extend(split_params)
    if sampling.size is not None:
        inner_where = f"({where.sql})" + (f" AND {split_sql}" if split_sql else "")
        parts.append(
            f"id IN (SELECT id FROM {_TABLE} WHERE {inner_where} ORDER BY {hash_sql}, id LIMIT {ph})"
        )
        params.extend([*where.params, *split_params, f"sample:{sampling.seed}:", sampling.size])
    sql = " AND ".join(f"({p})" for p in parts) if parts else "1 = 1"
    return Fragment(sql, tuple(params))


def _sampled(
    columns: str, where: Fragment, sampling: Sampling, hash_sql: str, ph: str,
    order: str | None, after: Fragment | None, limit: int | None, offset: int,
) -> Statement:  # fmt: skip
    keep = _sample_condition(sampling, where, hash_sql, ph)
    conditions = [f"({where.sql})", f"({keep.sql})"]
    params: list[object] = [*where.params, *keep.params]
    if after is not None:
        conditions.append(f"({after.sql})")
        params.extend(after.params)
    sql = f"SELECT {columns} FROM {_TABLE} WHERE {' AND '.join(conditions)}"
    if order is not None:
        sql += f" ORDER BY {order} LIMIT {ph} OFFSET {ph}"
        params.extend([limit, offset])
    return _statement(sql, params)


def sqlite_sampled(
    columns: str, where: Fragment, sampling: Sampling, *, order: str | None = None,
    after: Fragment | None = None, limit: int | None = None, offset: int = 0,
) -> Statement:  # fmt: skip
    """The rows (``columns``, or ``count(*)`` without ``order``) that ``sampling`` keeps, in SQLite
    (the session registers ``HASH_FUNCTION``)."""
    return _sampled(columns, where, sampling, f"{HASH_FUNCTION}(?, id)", "?", order, after,
                    -1 if limit is None and order is not None else limit, offset)  # fmt: skip


def postgres_sampled(
    columns: str, where: Fragment, sampling: Sampling, *, order: str | None = None,
    after: Fragment | None = None, limit: int | None = None, offset: int = 0,
) -> Statement:  # fmt: skip
    """The same in PostgreSQL: ``md5()`` gives the hash, its first 15 hex digits read as a bigint."""
    hash_sql = "('x' || substr(md5(%s || id), 1, 15))::bit(60)::bigint"
    return _sampled(columns, where, sampling, hash_sql, "%s", order, after, limit, offset)
