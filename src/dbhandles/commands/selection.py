"""The ``sample``, ``seed`` and ``split`` params of ``data/list``, ``data/query-open`` and ``data/export``.

What they select is ``adapters.sampling`` (a hash of each record's id, the same on every adapter);
this module declares the params and turns them into a ``Sampling``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, model_validator

from dbhandles.adapters.sampling import MAX_SAMPLE, MIN_FRACTION, Sampling, SplitError, split_bounds
from dbhandles.commands.base import Params
from dbhandles.errors import InvalidParams

__all__ = [
    "SEED_BOUND",
    "SampleSize",
    "Seed",
    "SplitSpec",
    "add_seed_rule",
    "sampling_of",
    "seed_rule",
]

#: Seeds are integers a JSON reader keeps exactly (|seed| < 2**53): a larger integer may reach the
#: server as the nearest double, which would be another seed than the one sent.
SEED_BOUND = 2**53 - 1
Seed = Annotated[int, Field(ge=-SEED_BOUND, le=SEED_BOUND)]

#: ``seed`` applies to ``sample`` (``sampling_of``'s first check), in JSON Schema.
_SEED_NEEDS_SAMPLE: dict[str, Any] = {
    "if": {"required": ["seed"], "properties": {"seed": {"not": {"const": 0}}}},
    "then": {"required": ["sample"], "properties": {"sample": {"type": "integer"}}},
}


def seed_rule() -> dict[str, Any]:
    """ "A seed other than 0 needs a sample" as JSON Schema keywords (``if``/``then``)."""
    return {key: dict(value) for key, value in _SEED_NEEDS_SAMPLE.items()}


def add_seed_rule(schema: dict[str, Any]) -> None:
    """Add ``seed_rule`` to a params model's JSON Schema (for ``json_schema_extra``)."""
    schema.update(seed_rule())


SampleSize = Annotated[int, Field(ge=1, le=MAX_SAMPLE)]


class SplitSpec(Params):
    """One part of a deterministic train/validation/test split (docs/counting.md)."""

    name: str = Field(min_length=1, max_length=64)
    """The split to keep, one of the names in fractions (e.g. 'train')."""
    fractions: dict[
        Annotated[str, Field(min_length=1, max_length=64)],
        # Checked by ``split_bounds`` (the field named by ``values.member_path``); the schema says it.
        Annotated[float, Field(json_schema_extra={"minimum": MIN_FRACTION, "maximum": 1})],
    ] = Field(min_length=1, max_length=16)
    """Each split's share, from 0.000001 to 1, summing to 1, e.g. {"train": 0.8, "validation": 0.1, "test": 0.1}."""
    seed: Seed = 0
    """The same seed gives the same split; another seed shuffles it."""

    @model_validator(mode="after")
    def _bounds(self) -> SplitSpec:
        self.bounds()
        return self

    def bounds(self) -> tuple[int, int]:
        """The hash range of this split (``sampling.split_bounds``).

        Raises:
            InvalidParams: the name or the fractions are not a split.
        """
        try:
            return split_bounds(self.fractions, self.name)
        except SplitError as exc:
            where = f"split.{exc.where}"
            raise InvalidParams(f"{where}: {exc}", field=where) from exc


def sampling_of(sample: int | None, seed: int, split: SplitSpec | None) -> Sampling | None:
    """The ``Sampling`` of a call's ``sample``/``seed``/``split``, or ``None`` for every record.

    Raises:
        InvalidParams: ``seed`` without ``sample``, or a bad split.
    """
    if sample is None and seed != 0:
        raise InvalidParams("seed: applies to sample; give sample: N as well", field="seed")
    if sample is None and split is None:
        return None
    bounds = None
    if split is not None:
        low, high = split.bounds()
        bounds = (split.seed, low, high)
    return Sampling(size=sample, seed=seed, split=bounds)
