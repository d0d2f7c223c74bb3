"""Contract: one rule for a split's fractions on every door and adapter (issue 14, docs/counting.md).

Each fraction is a number from ``MIN_FRACTION`` (one part in a million) to 1 and they sum to 1, so
every part's hash range is some 1.15e12 hashes wide: ``1e-300`` or a subnormal ``5e-324`` was
accepted and gave a part that is always empty; now ``data/list``, ``data/query-open``,
``data/export`` and ``jtag export-jsonl`` refuse it with ``invalid_params`` naming the fraction
(``split.fractions.train``; an odd name by ``values.member_path``: ``split.fractions["x.y"]``).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from dbhandles import InvalidParams, Service
from dbhandles.adapters.sampling import HASH_SPACE, MIN_FRACTION, sample_hash, split_bounds
from dbhandles.cli.jsonl import export_main

IDS = [f"r{i:03d}" for i in range(120)]


@pytest.fixture
def rows(service: Service, db: str) -> str:
    ops = [
        {"op": "create", "collection": "s", "id": i, "data": {"n": n}} for n, i in enumerate(IDS)
    ]
    service.execute("data/batch", {"dbHandle": db, "operations": ops})
    return db


def _doors(service: Service, db: str, split: dict[str, Any], tmp_path: Path) -> list[Any]:
    """What each door answers for ``split``: a result, or the ``InvalidParams`` it raised."""
    calls = [
        ("data/list", {"collection": "s", "limit": 500}),
        ("data/query-open", {"collection": "s"}),
        ("data/export", {"collection": "s", "output": str(tmp_path / "out.jsonl"),
                         "overwrite": True}),
    ]  # fmt: skip
    answers: list[Any] = []
    for command, params in calls:
        try:
            answers.append(service.execute(command, {"dbHandle": db, **params, "split": split}))
        except InvalidParams as exc:
            answers.append(exc)
    return answers


@pytest.mark.parametrize(
    ("fractions", "field"),
    [({"train": 1e-300, "test": 1.0}, "split.fractions.train"),
     ({"train": 5e-324, "test": 1.0}, "split.fractions.train"),
     ({"train": MIN_FRACTION / 2, "test": 1 - MIN_FRACTION / 2}, "split.fractions.train"),
     ({"train": 0.0, "test": 1.0}, "split.fractions.train"),
     ({"train": 0.5, "test": 1.5}, "split.fractions.test"),
     ({"x.y": 1e-300, "train": 1.0}, 'split.fractions["x.y"]'),
     ({"train": 0.5, "test": 0.6}, "split.fractions")],
)  # fmt: skip
def test_a_fraction_that_gives_an_empty_part_is_refused_everywhere(
    service: Service, rows: str, tmp_path: Path, fractions: dict[str, float], field: str
) -> None:
    split = {"name": "train", "fractions": fractions}
    for answer in _doors(service, rows, split, tmp_path):
        assert isinstance(answer, InvalidParams), answer
        assert answer.field == field
        assert answer.message.startswith(f"{field}: "), answer.message
    out = tmp_path / "cli.jsonl"
    argv = [f"--db-handle={rows}", "--collection=s", f"--output={out}", "--quiet",
            f"--split={{\"name\": \"train\", \"fractions\": {json.dumps(fractions)}}}"]  # fmt: skip
    assert export_main(argv, service=service) == 1
    assert not out.exists()


@pytest.mark.parametrize(
    "fractions",
    [{"a": 0.1, "b": 0.2, "c": 0.7}, {"a": MIN_FRACTION, "b": 1 - MIN_FRACTION},
     {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, {"only": 1.0}],
)  # fmt: skip
def test_accepted_fractions_give_every_part_a_range_and_cover_every_record_once(
    service: Service, rows: str, tmp_path: Path, fractions: dict[str, float]
) -> None:
    seen: list[str] = []
    ranges = sorted(split_bounds(fractions, name) for name in fractions)
    assert ranges[0][0] == 0 and ranges[-1][1] == HASH_SPACE
    for (_, high), (low, _) in itertools.pairwise(ranges):
        assert high == low
    for name in fractions:
        low, high = split_bounds(fractions, name)
        assert high - low >= MIN_FRACTION * HASH_SPACE * (1 - 1e-6)
        split = {"name": name, "fractions": fractions, "seed": 5}
        listed, opened, exported = _doors(service, rows, split, tmp_path)
        ids = [r["id"] for r in listed["items"]]
        assert ids == [i for i in IDS if low <= sample_hash("split", 5, i) < high]
        assert opened["totalCount"] == exported["exported"] == len(ids)
        service.execute("data/query-close", {"queryHandle": opened["queryHandle"]})
        seen += ids
    assert sorted(seen) == IDS
