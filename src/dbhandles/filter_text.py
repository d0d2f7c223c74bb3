"""``HeldText``: a filter string holding U+0000 that remembers where in the filter it was given."""

from __future__ import annotations

__all__ = ["HeldText"]


class HeldText(str):
    """A filter value holding U+0000, which only a table dbhandles did not create may hold
    (docs/filters.md "Values"), with ``where``: the position the filter gave it at
    (``filter.tags.$in[1]``), so a collection's refusal names the element as every other refusal
    of a filter value does. Equal to, hashed as and bound as the plain string."""

    where: str

    def __new__(cls, value: str, where: str) -> HeldText:
        text = super().__new__(cls, value)
        text.where = where
        return text
