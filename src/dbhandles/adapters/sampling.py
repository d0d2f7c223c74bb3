"""Deterministic samples and train/validation/test splits: the hash every adapter computes the same way.

A record's place in a sample or a split depends only on its ``id`` and a seed, never on the adapter,
the storage order or the other records, so the same call gives the same records everywhere:

* ``sample_hash(salt, seed, id)`` is the first 15 hex digits (60 bits) of the MD5 of the UTF-8 text
  ``"<salt>:<seed>:<id>"``, as an integer in ``[0, 2**60)``. MD5 is used as a well-spread, standard,
  everywhere-available function (PostgreSQL has ``md5()``), not for security.
* ``<id>`` is the id's one canonical text (``id_hash_text``): a string as it is, a number as the id
  rule of every door spells it (``values.number_text``: ``-7.0`` is ``-7``, ``1e-07`` is ``1e-7``),
  anything else (a key of a table dbhandles did not create: ``{"$base64": ...}``) as compact JSON.
  A SQLite ``REAL`` key served as ``-7.0`` was hashed as Python's ``str`` spelt it (``"-7.0"``)
  while PostgreSQL, memory and JSON hashed ``"-7"``: one row fell in different parts after a copy.
* A **split** (salt ``split``) cuts ``[0, 2**60)`` into consecutive ranges, one per split name, sized
  by its fraction, names in sorted order (so the same fractions give the same split however the object
  was written); a record belongs to the split whose range holds its hash. Each fraction is at least
  ``MIN_FRACTION``, so every part's range is some 1.15e12 hashes wide, never empty.
* A **sample** of ``n`` (salt ``sample``) keeps the ``n`` matching records (inside the split, if one is
  given) with the smallest hashes, ties by ``id``; the records are then returned in the list's order.

The memory and JSON adapters use ``select`` below; the SQL adapters compute the same hash in SQL
(``sql_facets``); the contract suite checks that every adapter picks the same records.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from dbhandles.values import NAN_WORDS, NUMBER_BOUND, json_text, member_path, number_text

__all__ = [
    "HASH_BITS",
    "HASH_SPACE",
    "MIN_FRACTION",
    "Sampling",
    "SplitError",
    "id_hash_text",
    "sample_hash",
    "select",
    "split_bounds",
]

#: Bits of the hash (15 hex digits): an integer that fits a signed 64-bit column in every engine.
HASH_BITS = 60
HASH_SPACE = 2**HASH_BITS
#: The largest sample one call may ask for.
MAX_SAMPLE = 10_000_000
#: How far the fractions of a split may be from summing to 1 (rounding of decimal fractions).
_SUM_TOLERANCE = 1e-9
_TOLERANCE_TEXT = "1e-9"
#: The smallest fraction of a split: one part in a million of the hash space (2**60 / 10**6, some
#: 1.15e12 hashes, a range the rounding of the cumulative sums, some 2**60 * 2**-52 = 256 hashes,
#: never empties). A smaller fraction (``1e-300``, a subnormal ``5e-324``) gave a range that
#: rounds to nothing, an always-empty part accepted in silence; it is refused instead.
MIN_FRACTION = 1e-6


class SplitError(ValueError):
    """A ``split`` whose name or fractions are no split; ``where`` is the part of ``split`` at
    fault (``name``, ``fractions``, ``fractions.train``, spelled by ``values.member_path``)."""

    def __init__(self, message: str, where: str) -> None:
        super().__init__(message)
        self.where = where


R = TypeVar("R", bound=Mapping[str, Any])


def sample_hash(salt: str, seed: int, record_id: str) -> int:
    """The 60-bit hash of a record id under a salt (``sample`` or ``split``) and a seed."""
    digest = hashlib.md5(f"{salt}:{seed}:{record_id}".encode(), usedforsecurity=False)
    return int(digest.hexdigest()[:15], 16)


def id_hash_text(record_id: object) -> str:
    """The text a record's id is hashed by: the one spelling of that id on every adapter.

    A string is itself; an integer, or a finite float within ±2**63, is ``values.number_text`` of it
    (``7``, ``-7.0`` -> ``"-7"``, ``-0.0`` -> ``"0"``, ``2.5``, ``1e-07`` -> ``"1e-7"``), the text a
    number given as an id stands for at every door, so ``data/read --id=-7`` and the split agree;
    a number past ±2**63 (a foreign ``REAL`` key ``1e300``) that is a double is that double's
    shortest JSON text (``1e+300``, as orjson writes it and a copy spells the id), whether it comes
    as a float or as the integer PostgreSQL serves (``9300000000000000000`` -> ``9.3e+18``);
    an infinity or NaN as the wire writes it (``1e400``, ``-1e400``, ``NaN``); anything else
    (``{"$base64": ...}``, ``true``) its compact JSON with sorted keys. Never raises.
    """
    if type(record_id) is str:
        return record_id
    if type(record_id) is int:
        if -NUMBER_BOUND < record_id < NUMBER_BOUND:
            return str(record_id)
        # Past 64 bits PostgreSQL serves a double precision key as the integer its shortest text
        # names (9.3e18 -> 9300000000000000000) where SQLite serves the float: one spelling, the
        # float's, whenever the integer is a double.
        try:
            double = float(record_id)
        except OverflowError:
            return str(record_id)
        return orjson.dumps(double).decode() if int(double) == record_id else str(record_id)
    if type(record_id) is float:
        if record_id != record_id:  # as the wire writes it (``wire``): NaN, ±1e400
            return "NaN"
        if record_id in (math.inf, -math.inf):
            return "1e400" if record_id > 0 else "-1e400"
        if -NUMBER_BOUND < record_id < NUMBER_BOUND:
            return number_text(record_id)
        return orjson.dumps(record_id).decode()
    try:
        return orjson.dumps(record_id, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # not JSON (no adapter serves such an id): its text still hashes
        return str(record_id)


def split_bounds(fractions: Mapping[str, float], name: str) -> tuple[int, int]:
    """The half-open hash range ``[low, high)`` of split ``name`` (names taken in sorted order).

    Raises:
        SplitError: ``name`` is not among the fractions, a fraction is not a number from
            ``MIN_FRACTION`` to 1, or they do not sum to 1 (within ``_SUM_TOLERANCE``); the
            message names the problem, ``where`` the part (callers turn it into ``invalid_params``).
    """
    if name not in fractions:
        names = ", ".join(json_text(key, 80) for key in sorted(fractions))
        raise SplitError(f"{json_text(name, 80)} is not one of the fractions ({names})", "name")
    for key, value in fractions.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SplitError(f"a fraction is a number, got {json_text(value, 80)}",
                             member_path("fractions", key))  # fmt: skip
        if value != value:  # NaN: no bound holds, and "not from ... to 1" would not say why
            raise SplitError(f"a fraction is a number: {NAN_WORDS}",
                             member_path("fractions", key))  # fmt: skip
        if not MIN_FRACTION <= value <= 1:
            raise SplitError(
                f"a fraction is a number from {MIN_FRACTION:g} (one part in a million) to 1, got "
                f"{json_text(value, 80)}" + (": a smaller part is empty" if value < 1 else ""),
                member_path("fractions", key),
            )
    total = math.fsum(fractions.values())
    if abs(total - 1) > _SUM_TOLERANCE:
        # The sum in its shortest exact text (0.9999999, 1.000001, as JSON writes a float), so the
        # message never says "they sum to 1" about a sum that is refused.
        raise SplitError(f"the fractions must sum to 1 within {_TOLERANCE_TEXT} (they sum to "
                         f"{json_text(total)})", "fractions")  # fmt: skip
    low = 0.0
    for key in sorted(fractions):
        high = low + fractions[key]
        if key == name:
            last = key == max(fractions)
            return int(low * HASH_SPACE), HASH_SPACE if last else int(high * HASH_SPACE)
        low = high
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class Sampling:
    """Which records a list, a cursor or an export keeps: a split range and/or a sample size.

    Attributes:
        size: keep the ``size`` records with the smallest ``sample`` hashes (``None``: all).
        seed: the seed of the sample hash.
        split: ``(seed, low, high)``: keep records whose ``split`` hash lies in ``[low, high)``.
    """

    size: int | None = None
    seed: int = 0
    split: tuple[int, int, int] | None = None

    def in_split(self, record_id: object) -> bool:
        """Whether the split keeps the record of this id (``id_hash_text`` spells it)."""
        if self.split is None:
            return True
        seed, low, high = self.split
        return low <= sample_hash("split", seed, id_hash_text(record_id)) < high

    def to_wire(self) -> dict[str, Any]:
        """A JSON form (kept in a query cursor's spec); ``from_wire`` reads it back."""
        return {
            "size": self.size,
            "seed": self.seed,
            "split": list(self.split) if self.split else None,
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any] | None) -> Sampling | None:
        if data is None:
            return None
        split = data.get("split")
        return cls(
            size=data.get("size"),
            seed=int(data.get("seed", 0)),
            split=(int(split[0]), int(split[1]), int(split[2])) if split else None,
        )


def select(records: Iterable[R], sampling: Sampling) -> list[R]:
    """The records ``sampling`` keeps, in their given order (the reference for every adapter)."""
    kept = [r for r in records if sampling.in_split(r["id"])]
    if sampling.size is None or len(kept) <= sampling.size:
        return kept
    seed = sampling.seed
    # Ranked by position, ties by the id's text: ids of a foreign table may mix types (``1`` and
    # ``"1"`` of an untyped SQLite key) or be unhashable (``{"$base64": ...}``).
    texts = [id_hash_text(r["id"]) for r in kept]
    ranked = sorted(
        range(len(kept)), key=lambda i: (sample_hash("sample", seed, texts[i]), texts[i])
    )
    chosen = set(ranked[: sampling.size])
    return [r for i, r in enumerate(kept) if i in chosen]
