"""``$regex``: one syntax (RE2's) and linear-time matching, the same on every adapter.

Python's ``re`` backtracks: ``(a|a)*$`` against 30 characters takes minutes, holding the GIL (so the
whole server stops). RE2 (``google-re2``) matches in time linear in the length of the text, releases
the GIL while it runs, and refuses what cannot be matched that way (backreferences, look-around).
Every place that evaluates ``$regex`` in Python goes through ``search``: the reference semantics
(``evaluate``, hence the memory and json adapters) and SQLite's ``regexp`` function. PostgreSQL
translates the same syntax to its own regexes (``adapters/postgres_regex.py``) or refuses the pattern.

The syntax is RE2's (https://github.com/google/re2/wiki/Syntax), minus ``\\C`` (one byte of the
UTF-8 encoding, meaningless on text); docs/filters.md lists it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

__all__ = ["pattern_problem", "search", "set_members"]


def _options(*, capture: bool) -> Any:
    options = re2.Options()
    options.log_errors = False  # a refused pattern is the caller's error, not a line on stderr
    options.never_capture = not capture  # matching only asks whether there is a match
    return options


_CHECK = _options(capture=True)
_MATCH = _options(capture=False)


def _encode(text: str) -> bytes:
    # Stored text is valid Unicode; a lone surrogate (which no adapter stores) must not crash a scan.
    return text.encode("utf-8", "surrogatepass")


def _uses_single_byte(pattern: str) -> bool:
    """Whether ``pattern`` uses ``\\C`` (outside ``\\Q...\\E``; RE2 refuses it inside a class)."""
    i, n = 0, len(pattern)
    while i < n:
        if pattern.startswith("\\Q", i):
            end = pattern.find("\\E", i + 2)
            if end < 0:
                return False
            i = end + 2
        elif pattern[i] == "\\":
            if pattern.startswith("C", i + 1):
                return True
            i += 2
        else:
            i += 1
    return False


@lru_cache(maxsize=1024)
def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a ``$regex`` (RE2's own words), or ``None`` when it is one."""
    try:
        _encode(pattern).decode("utf-8")
    except UnicodeDecodeError:
        return "the pattern is not valid Unicode (it holds a lone surrogate)"
    if _uses_single_byte(pattern):
        return "\\C (one byte of the UTF-8 encoding) is not supported; use . for one character"
    try:
        re2.compile(_encode(pattern), _CHECK)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        return str(detail)
    return None


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> Any:
    problem = pattern_problem(pattern)
    if problem is not None:
        raise ValueError(f"invalid $regex {pattern!r}: {problem}")
    return re2.compile(_encode(pattern), _MATCH)


def search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches somewhere in ``text`` (RE2 semantics, linear time).

    Raises:
        ValueError: ``pattern`` is not valid (filters are checked when parsed, so only a caller
            that skipped ``filters.parse_filter`` sees this).
    """
    return _compiled(pattern).search(_encode(text)) is not None


@lru_cache(maxsize=1)
def _every_character() -> bytes:
    """Every code point but U+0000 and the surrogates, in order, as UTF-8 (4 MiB, built once)."""
    return "".join(chr(c) for r in (range(1, 0xD800), range(0xE000, 0x110000)) for c in r).encode(
        "utf-8"
    )


@lru_cache(maxsize=256)
def set_members(char_class: str) -> tuple[tuple[int, int], ...]:
    """The code points (as ``(first, last)`` ranges) that RE2 matches with ``char_class``, one
    character class such as ``[\\pL]`` or ``(?i)[\\x{e9}]``: RE2 itself says what a Unicode class
    or a case-insensitive character means, by one linear scan over every code point.

    U+0000 and the surrogates are never members; a range may span the surrogates.
    """
    text = _every_character()
    ranges: list[tuple[int, int]] = []
    for match in re2.compile(_encode(char_class) + b"+", _MATCH).finditer(text):
        start, end = match.span()
        first = text[start : start + 4].decode("utf-8", "ignore")[0]
        last = text[max(start, end - 4) : end].decode("utf-8", "ignore")[-1]
        ranges.append((ord(first), ord(last)))
    return tuple(ranges)
