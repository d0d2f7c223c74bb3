"""``CollectionCompiler``: the filter compiler over a collection's records, which hold no U+0000."""

from __future__ import annotations

from dbhandles.adapters.sql_compile import Fragment, SqlCompiler
from dbhandles.filters import Compare, ElemMatch, check_collection_values

__all__ = ["CollectionCompiler"]


class CollectionCompiler(SqlCompiler):
    """``SqlCompiler`` for a collection (SQLite, PostgreSQL): a filter string holding U+0000, which
    ``parse_filter`` takes for a table dbhandles did not create (another tool may have stored it
    there), is ``invalid_filter`` naming its field (``filters.check_collection_values``), as the
    adapters that evaluate in Python answer (``filters.check_collection_query``): no record of a
    collection holds it (docs/filters.md "Values").

    Each test is checked where it is compiled (an ``$elemMatch`` whole, since its element's
    compiler is a plain ``SqlCompiler``), so a filter is walked once.
    """

    def _compare(self, node: Compare) -> Fragment:
        check_collection_values(node)
        return super()._compare(node)

    def _elem_match(self, node: ElemMatch) -> Fragment:
        check_collection_values(node)
        return super()._elem_match(node)
