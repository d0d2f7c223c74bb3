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
holds an object (which ``data/count`` refuses). With several paths, each path is read and walked on
its own into its distinct values per record (``p{i}``: the record's id, the value, how many times
the record holds it; on SQLite ``c{i}``, each record's number of values), and those are joined on
the record: the cost of each path alone, not once per value of the others. A record whose numbers
of values multiply past ``facets.MAX_COMBINATIONS`` is left out of that join and ``read_groups``
refuses the answer; only when no group is left does a second statement (``*_group_overflow``) tell
such a record from no matching record. Every table expression is named ``"_dbh_<name>"`` (``_cte``):
no collection is, so none hides the collection's table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dbhandles.adapters.facets import (
    MAX_COMBINATIONS,
    GroupCounts,
    combinations_error,
    container_error,
    key_value,
)
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


def _cte(name: str) -> str:
    """A table expression's name, quoted: no collection's name starts ``_dbh_`` (in any case)."""
    return f'"_dbh_{name}"'


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


def _containers(n: int) -> str:
    """Window columns ``c{i}``: whether any group of path ``i`` holds an object (rank 4)."""
    return ", ".join(f"max(CASE WHEN r{i} = 4 THEN 1 ELSE 0 END) OVER () AS c{i}" for i in range(n))


def _group_sql(
    source: str, joins: str, ranks: list[str], values: list[str], firsts: list[str],
    order_values: list[str],
) -> str:  # fmt: skip
    columns = ", ".join(
        f"{r} AS r{i}, {v} AS v{i}" for i, (r, v) in enumerate(zip(ranks, values, strict=True))
    )
    keys = ", ".join(f"r{i}, v{i}" for i in range(len(ranks)))
    first = " AND ".join(firsts)
    containers = _containers(len(ranks))
    inner = (
        f"SELECT {columns}, (CASE WHEN {first} THEN 1 ELSE 0 END) AS f FROM ({source}) AS t{joins}"
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
    i: int, path: tuple[str, ...], where: Fragment, rid: str
) -> tuple[str, list[object]]:
    """The matching records (``rid``: columns to keep first, such as the record's id), each with
    what the walk of path ``i`` reads from it (``_sqlite_walk``), and the parameters of that SQL in
    order (the JSON paths, bound, then the filter's).

    ``xf{i}`` the whole path's JSON text (``data -> '$.a.b'``), which is the answer whenever the
    path crosses no array (``->`` gives NULL when it does, or when the field is missing); for a
    path of several parts, ``x{i}`` the first part's JSON text, read only when ``xf{i}`` is NULL:
    where the walk starts. Every JSON function call site parses its input again, and the record is
    the one big input, so it is read here and nowhere else.
    """
    # LIMIT keeps each level a subquery of its own (not flattened into the joins): each column is
    # computed once per record, and ``data`` stays inside these two levels.
    inner = f"SELECT {rid}data, data -> ? AS xf{i} FROM {_TABLE} WHERE {where.sql} LIMIT -1"
    params: list[object] = [_sqlite_json_path(path), *where.params]
    columns = [f"xf{i}"]
    if len(path) > 1:
        columns.append(f"CASE WHEN xf{i} IS NULL THEN data -> ? END AS x{i}")
        params.insert(0, _sqlite_json_path(path[:1]))
    kept = rid.replace("id AS ", "")
    return f"SELECT {kept}{', '.join(columns)} FROM ({inner}) LIMIT -1", params


def _sqlite_walk(
    i: int, path: tuple[str, ...], base: str, carry: list[str], ctes: list[str]
) -> tuple[str, list[object], list[str]]:
    """The levels that walk path ``i`` over ``base`` (the name of a table expression whose rows have
    the columns ``carry``, among them ``xf{i}`` and, for several parts, ``x{i}``), each level a
    common table expression appended to ``ctes`` (``w{i}_{k}``): (the name of the last level, whose
    rows have the columns returned; the parameters of the levels added, in order: each later part's
    name, bound, never in the SQL text).

    The levels follow one another in one ``WITH`` list, not each inside the next: subqueries nested
    per part overflowed SQLite's parser stack from 12 parts (``LIMIT -1`` keeps each level from being
    flattened into the next), so ``filters.MAX_PATH_PARTS`` parts on every path is one statement.

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
        name = _cte(f"w{i}_{k}")
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


def _sqlite_typed(raw: str, n: int) -> str:
    """The typed groups over ``raw`` (``t{i}, u{i}``, ``n``, ``f``[, ``records``]): the key (rank,
    value: 'true'/'false' one rank, 1 and 1.0 one group) computed over the few raw groups."""
    records = ", max(max(records)) OVER () AS records" if n > 1 else ""
    typed = ", ".join(
        f"{_SQLITE_RANK.format(t=f't{i}')} AS r{i}, "
        f"(CASE WHEN t{i} IN ('true', 'false', 'integer', 'real', 'text') THEN u{i} END) AS v{i}"
        for i in range(n)
    )
    keys = ", ".join(f"r{i}, v{i}" for i in range(n))
    containers = _containers(n)
    return (
        f"SELECT {keys}, sum(n) AS n, sum(sum(f)) OVER () AS total, count(*) OVER () AS groups, "
        f"{containers}{records} FROM (SELECT {typed}, n, f{', records' if n > 1 else ''} "
        f"FROM ({raw})) AS s GROUP BY {keys} ORDER BY n DESC, {keys} LIMIT ?"
    )


def _sqlite_path_values(
    i: int, path: tuple[str, ...], where: Fragment, ctes: list[str]
) -> list[object]:
    """Append to ``ctes`` the table expressions that give ``p{i}``: per matching record (``rid``,
    its id) each distinct raw value of path ``i`` (``t{i}``, ``u{i}``: ``json_each``'s type and
    value), how many times the record holds it (``m{i}``), whether it holds the record's first
    value (``f{i}``, true on one row per record); and ``c{i}``: per record its number of values
    (``k{i}``). Returns their parameters in order.

    Each path reads the records and walks on its own: its cost is the cost of counting by that
    path alone, whatever the other paths hold.
    """
    start = len(ctes)
    source, params = _sqlite_source(i, path, where, "id AS rid, ")
    s_cte, p_cte, c_cte = (_cte(f"{name}{i}") for name in "spc")
    ctes.append(f"{s_cte} AS ({source})")
    carry = ["rid", f"xf{i}"] + ([f"x{i}"] if len(path) > 1 else [])
    walk, walk_params, walked = _sqlite_walk(i, path, s_cte, carry, ctes)
    params += walk_params
    flags = [f"t.{c}" for c in walked if c.startswith(f"first{i}_")] + [f"g{i}.key = 0"]
    # ``p{i}`` is read twice: computed once (MATERIALIZED), its levels streamed (else SQLite copied
    # their rows). No window function: with one, SQLite built no automatic index for the join on
    # ``rid`` and compared every record with every other.
    ctes[start:] = [c.replace(" AS (", " AS NOT MATERIALIZED (", 1) for c in ctes[start:]]
    ctes.append(
        f"{p_cte} AS MATERIALIZED (SELECT t.rid AS rid, g{i}.type AS t{i}, g{i}.value AS u{i}, count(*) AS m{i}, "
        f"max({' AND '.join(flags)}) AS f{i} FROM {walk} AS t{_sqlite_final(i, path)} "
        f"GROUP BY t.rid, g{i}.value, g{i}.type)"
    )
    ctes.append(f"{c_cte} AS (SELECT rid, sum(m{i}) AS k{i} FROM {p_cte} GROUP BY rid)")
    return params


def _joined(n: int, cast: str = "", *, over: bool = False) -> str:
    """PostgreSQL's paths' values (``p{i}``) joined on the record, leaving out every record whose
    numbers of values multiply past ``MAX_COMBINATIONS`` (checked as each path joins); ``records``
    then exceeds the records counted, which ``read_groups`` refuses. ``over``: only such records'
    rows. ``cast`` multiplies numerics, which cannot overflow."""
    joins = " JOIN ".join(_cte(f"p{i}") + (" USING (rid)" if i else "") for i in range(n))
    products = [" * ".join(f"k{j}{cast}" for j in range(i + 1)) for i in range(1, n)]
    if over:
        return f"{joins} WHERE {products[-1]} > {MAX_COMBINATIONS}"
    return f"{joins} WHERE " + " AND ".join(f"{p} <= {MAX_COMBINATIONS}" for p in products)


def _sqlite_counts(n: int) -> tuple[str, str]:
    """The records' numbers of values joined (``c{i}``), and their product (SQL)."""
    joins = " JOIN ".join(_cte(f"c{i}") + (" USING (rid)" if i else "") for i in range(n))
    return joins, " * ".join(f"k{i}" for i in range(n))


def _sqlite_values(
    where: Fragment, group_by: tuple[tuple[str, ...], ...]
) -> tuple[str, list[object]]:
    """The ``WITH`` list of ``_sqlite_path_values`` for every path, and its parameters."""
    ctes: list[str] = []
    params: list[object] = []
    for i, path in enumerate(group_by):
        params += _sqlite_path_values(i, path, where, ctes)
    return "WITH " + ", ".join(ctes), params


def sqlite_group_overflow(
    where: Fragment, group_by: tuple[tuple[str, ...], ...]
) -> Statement | None:
    """A row when a matching record gives more than ``MAX_COMBINATIONS`` combinations of values
    (``None`` for one path: one record's values cannot multiply). Asked only when the count gave
    no group: then every matching record is such a record, and the first row answers.

    Raises:
        InvalidFilter: a path is not one a collection's documents can be reached by.
    """
    _checked(group_by)
    if len(group_by) < 2:
        return None
    ctes, params = _sqlite_values(where, group_by)
    counts, bound = _sqlite_counts(len(group_by))
    return _statement(
        f"{ctes} SELECT 1 FROM {counts} WHERE {bound} > {MAX_COMBINATIONS} LIMIT 1", params
    )


def sqlite_group_count(
    where: Fragment, group_by: tuple[tuple[str, ...], ...], limit: int
) -> Statement:
    """Group the rows of the table matching ``where`` (compiled by the SQLite compiler).

    With several paths, each path's values per record (``_sqlite_path_values``) joined on the
    record; a record past ``MAX_COMBINATIONS`` combinations is left out and ``read_groups``
    refuses the answer (``sqlite_group_overflow`` when no row is left).

    Raises:
        InvalidFilter: a path is not one a collection's documents can be reached by.
    """
    _checked(group_by)
    n = len(group_by)
    if n > 1:
        ctes, params = _sqlite_values(where, group_by)
        # The records' numbers of values first (``c{i}``, one row per record), then their values
        # (``p{i}``) for the records within the bound; ``records`` counts every matching record.
        counts, bound = _sqlite_counts(n)
        values = "".join(f" JOIN {_cte(f'p{i}')} USING (rid)" for i in range(n))
        raw = (
            f"SELECT {', '.join(f't{i}, u{i}' for i in range(n))}, "
            f"sum({' * '.join(f'm{i}' for i in range(n))}) AS n, "
            f"sum({' AND '.join(f'f{i}' for i in range(n))}) AS f, "
            f"(SELECT count(*) FROM {_cte('c0')}) AS records FROM {counts}{values} "
            f"WHERE {bound} <= {MAX_COMBINATIONS} GROUP BY {', '.join(f'u{i}, t{i}' for i in range(n))}"
        )
        return _statement(f"{ctes} {_sqlite_typed(raw, n)}", (*params, limit))
    path = group_by[0]
    source, params = _sqlite_source(0, path, where, "")
    ctes_list = [f"{_cte('src')} AS ({source})"]
    carry = ["xf0"] + (["x0"] if len(path) > 1 else [])
    walk, walk_params, columns = _sqlite_walk(0, path, _cte("src"), carry, ctes_list)
    flags = [f"t.{c}" for c in columns if c.startswith("first")] + ["g0.key = 0"]
    # Two stages: the elements are grouped by their raw (json_each value, type), which costs one
    # comparison per element (the value first: it tells most elements apart); the typed key is
    # computed over those few groups and grouped again (``_sqlite_typed``).
    raw = (
        f"SELECT g0.type AS t0, g0.value AS u0, count(*) AS n, sum({' AND '.join(flags)}) AS f "
        f"FROM {walk} AS t{_sqlite_final(0, path)} GROUP BY u0, t0"
    )
    sql = f"WITH {', '.join(ctes_list)} {_sqlite_typed(raw, 1)}"
    return _statement(sql, (*params, *walk_params, limit))


def _postgres_chain(
    i: int, path: tuple[str, ...]
) -> tuple[str, str, str, list[str], str, list[object]]:
    """Joins for one path: (join SQL, rank SQL, value SQL, first-element conditions, order SQL,
    the join SQL's parameters: each part's name, bound as text, never in the SQL text).

    The join SQL is one ``LATERAL`` subquery per path (``p{i}``: its value ``v``, and ``f``: every
    element taken is the first) holding that path's two joins per part; ``OFFSET 0`` keeps the
    planner from pulling them up into one join of every part (four paths of 60 parts planned past a
    10 s budget: PostgreSQL's genetic join search over some 500 relations).
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


def _postgres_values(
    where: Fragment, group_by: tuple[tuple[str, ...], ...]
) -> tuple[str, list[object], list[str], list[str]]:
    """The ``WITH`` list of every path's values per record (``p{i}``: ``rid``, each distinct value
    ``e{i}``, how many times the record holds it ``m{i}``, whether it holds the record's first
    value ``f{i}``, the record's number of values ``k{i}`` and, for the first path, the number of
    matching records ``records``), each path reading the records on its own; its parameters; and
    per path the rank and the order SQL (``_postgres_chain``) of ``e{i}``."""
    ctes, ranks, order = [], [], []
    params: list[object] = []
    for i, path in enumerate(group_by):
        joins, rank, _, firsts, o, join_params = _postgres_chain(i, path)
        records = f", sum(bool_or({firsts[0]})::int) OVER () AS records" if i == 0 else ""
        ctes.append(
            f"{_cte(f'p{i}')} AS (SELECT t.id AS rid, p{i}.v AS e{i}, count(*) AS m{i}, bool_or({firsts[0]}) "
            f"AS f{i}, sum(count(*)) OVER (PARTITION BY t.id) AS k{i}{records} "
            f"FROM (SELECT id, data FROM {_TABLE} WHERE {where.sql}) AS t{joins} "
            f"GROUP BY t.id, p{i}.v)"
        )
        params += [*where.params, *join_params]
        ranks.append(rank.replace(f"p{i}.v", f"e{i}"))
        order.append(o)
    return "WITH " + ", ".join(ctes), params, ranks, order


def postgres_group_overflow(
    where: Fragment, group_by: tuple[tuple[str, ...], ...]
) -> Statement | None:
    """``sqlite_group_overflow`` in PostgreSQL."""
    _checked(group_by)
    if len(group_by) < 2:
        return None
    ctes, params, *_ = _postgres_values(where, group_by)
    sql = f"{ctes} SELECT 1 FROM {_joined(len(group_by), '::numeric', over=True)} LIMIT 1"
    return _statement(sql, params)


def _postgres_several(
    where: Fragment, group_by: tuple[tuple[str, ...], ...], limit: int
) -> Statement:
    """``postgres_group_count`` of several paths: each path's values per record
    (``_postgres_values``) joined on the record (``_joined``)."""
    n = len(group_by)
    ctes, params, ranks, order = _postgres_values(where, group_by)
    values = [
        f"(CASE WHEN jsonb_typeof(e{i}) IN ('boolean', 'number', 'string') THEN e{i} END)"
        for i in range(n)
    ]
    columns = ", ".join(
        f"{r} AS r{i}, {v} AS v{i}" for i, (r, v) in enumerate(zip(ranks, values, strict=True))
    )
    keys = ", ".join(f"r{i}, v{i}" for i in range(n))
    containers = _containers(n)
    first = " AND ".join(f"f{i}" for i in range(n))
    inner = (
        f"SELECT {columns}, {' * '.join(f'm{i}' for i in range(n))} AS n, "
        f"(CASE WHEN {first} THEN 1 ELSE 0 END) AS f, records FROM {_joined(n, '::numeric')}"
    )
    sql = (
        f"{ctes} SELECT {keys}, sum(n) AS n, sum(sum(f)) OVER () AS total, "
        f"count(*) OVER () AS groups, {containers}, max(max(records)) OVER () AS records "
        f"FROM ({inner}) AS s GROUP BY {keys} ORDER BY n DESC, {', '.join(order)} LIMIT %s"
    )
    return _statement(sql, (*params, limit))


def postgres_group_count(
    where: Fragment, group_by: tuple[tuple[str, ...], ...], limit: int
) -> Statement:
    """Group the rows of the table matching ``where`` (compiled by the PostgreSQL compiler).

    Raises:
        InvalidFilter: a path is not one a collection's documents can be reached by.
    """
    _checked(group_by)
    if len(group_by) > 1:
        return _postgres_several(where, group_by, limit)
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
    sql = _group_sql(source, "".join(joins), ranks, values, firsts, order).replace(
        "LIMIT ?", "LIMIT %s"
    )
    return _statement(sql, (*params, limit))


def _key(rank: int, value: Any) -> Any:
    if rank == 0:
        return None
    return bool(value) if rank == 1 else key_value(value) if rank == 2 else value


def read_groups(
    rows: Sequence[Sequence[Any]], group_by: tuple[tuple[str, ...], ...]
) -> GroupCounts:
    """The rows of a group statement as ``GroupCounts``.

    Raises:
        InvalidParams: with several paths, a record gave more than ``MAX_COMBINATIONS``
            combinations (it was left out: the records counted are fewer than those matched);
            else a group holds an object or an array inside an array.
    """
    if not rows:
        return GroupCounts()
    width = 2 * len(group_by)
    if len(group_by) > 1 and int(rows[0][width + 3 + len(group_by)]) != int(rows[0][width + 1]):
        raise combinations_error(group_by)
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
