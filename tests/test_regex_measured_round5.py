"""``$regex`` under a time budget: refused only on a measured estimate, never on a worst case alone.

Unicode classes make large RE2 programs (``\\pL{80}``: about 95,000 instructions) whose worst case
over 200 KB (program size x bytes) is far past a 10 s budget, yet RE2 answers in a fraction of a
second. They used to be refused at once with a ``query_timeout`` saying the query "ran past" its
budget; now a match is timed on growing prefixes of the value, and stopped only when what was
measured, scaled to the whole value, does not fit in what is left.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from dbhandles import budget
from dbhandles.errors import QueryTimeout
from dbhandles.regex import search
from dbhandles.service import Service
from dbhandles.settings import Settings
from tests.conftest import ADAPTERS, adapter_config

#: Patterns with programs of 80,000-96,000 instructions, ordinary in text search.
UNICODE_PATTERNS = [r"\pL{80}", r"[\pL\pN]{60}", r"(?i)\p{L}{80}", r"\pL{12}\s\pL{12}"]
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "Überprüfung", "naïve",
         "café", "2026", "Zürich", "12345"]  # fmt: skip


def _text(size: int, seed: int) -> str:
    rng = random.Random(seed)
    words = []
    while sum(len(w) + 1 for w in words) < size:
        words.append(rng.choice(WORDS))
    return " ".join(words)[:size]


@pytest.fixture(params=ADAPTERS)
def adapter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_large_unicode_programs_answer_on_long_ordinary_text(adapter: str, tmp_path: Path) -> None:
    values = {
        "t20k": _text(20_000, 1),
        "t200k": _text(200_000, 2),
        "long_word": _text(100_000, 3) + " " + "Ä" * 100,
        "short": "ab",
    }
    with Service(settings=Settings(home=tmp_path / "home", query_timeout_ms=10_000)) as service:
        config = adapter_config(adapter, tmp_path)
        handle = service.execute("data/open", {"adapter": adapter, "config": config})["dbHandle"]
        for record_id, text in values.items():
            service.execute(
                "data/create",
                {"dbHandle": handle, "collection": "items", "id": record_id, "data": {"t": text}},
            )
        for pattern in UNICODE_PATTERNS:
            want = sorted(rid for rid, text in values.items() if search(pattern, text))
            found = service.execute(
                "data/list",
                {"dbHandle": handle, "collection": "items", "fields": ["id"],
                 "filter": {"t": {"$regex": pattern}}},
            )  # fmt: skip
            assert sorted(item["id"] for item in found["items"]) == want, pattern
            counted = service.execute(
                "data/count",
                {"dbHandle": handle, "collection": "items", "filter": {"t": {"$regex": pattern}}},
            )
            assert counted["total"] == len(want), pattern


def test_a_match_measured_too_slow_says_it_was_estimated() -> None:
    # Linear, but a few tens of microseconds per byte: a 1 MB value cannot finish in 2 s.
    with pytest.raises(QueryTimeout) as caught, budget.query_budget(2_000):
        search("(?:a?){999}a{999}x", "a" * 1_000_000)
    message = caught.value.message
    assert "estimated" in message and "1000000 bytes" in message and "2000 ms" in message
    assert "ran past" not in message


def test_the_reason_lasts_until_the_budget_ends() -> None:
    with budget.query_budget(60_000):
        budget.spend("a reason")
        assert budget.expired()
        assert "a reason" in budget.exceeded().message
    with budget.query_budget(1):
        budget.spend()  # no reason: the deadline itself
        message = budget.exceeded().message
    assert "ran past its time budget of 1 ms" in message
