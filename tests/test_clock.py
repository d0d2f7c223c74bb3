"""Timestamps (``clock.py``): the text kept for the last millisecond is the text of that millisecond,
whatever the order of the calls and the threads that make them."""

from __future__ import annotations

import threading
import time

from hypothesis import given
from hypothesis import strategies as st

from dbhandles.clock import iso_from_epoch


def _formatted(t: float) -> str:
    """The timestamp written out from scratch, without any kept text."""
    second = int(t)
    day = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{day}.{int((t - second) * 1000):03d}Z"


@given(st.lists(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False), max_size=40))
def test_iso_from_epoch_is_the_text_of_each_value(values: list[float]) -> None:
    for t in values:
        assert iso_from_epoch(t) == _formatted(t)


def test_iso_from_epoch_at_the_edges_of_a_millisecond_and_a_second() -> None:
    # Values whose millisecond a product t * 1000 rounds up: the kept text is keyed on the
    # text's own parts, so a value just under a millisecond never gets the next one's text.
    edges = [1_700_000_000.0009999999, 1_700_000_000.0011, 1_700_000_000.9995, 1_700_000_001.0,
             1_700_000_000.999999, 0.0, 1.0005, 1.0005]  # fmt: skip
    for t in edges + edges[::-1]:
        assert iso_from_epoch(t) == _formatted(t)


def test_threads_never_get_another_milliseconds_text() -> None:
    # Two threads taking turns on values of different seconds and milliseconds: each answer is
    # the text of its own value (the kept pair is replaced whole, never half).
    values = [[1_800_000_000.25 + i * 1.001 for i in range(2000)],
              [1_700_000_000.5 + i * 0.0007 for i in range(2000)]]  # fmt: skip
    wrong: list[tuple[float, str]] = []

    def run(mine: list[float]) -> None:
        for t in mine:
            text = iso_from_epoch(t)
            if text != _formatted(t):
                wrong.append((t, text))

    threads = [threading.Thread(target=run, args=(v,)) for v in values]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
