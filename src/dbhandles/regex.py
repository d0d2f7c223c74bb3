"""``$regex``: one syntax (RE2's) and linear-time matching, the same on every adapter.

Python's ``re`` backtracks: ``(a|a)*$`` against 30 characters takes minutes, holding the GIL (so the
whole server stops). RE2 (``google-re2``) matches in time linear in the length of the text, releases
the GIL while it runs, and refuses what cannot be matched that way (backreferences, look-around).
Every place that evaluates ``$regex`` in Python goes through ``search``: the reference semantics
(``evaluate``, hence the memory and json adapters) and SQLite's ``regexp`` function. PostgreSQL
translates the same syntax to its own regexes (``adapters/postgres_regex.py``) or refuses the pattern.

The syntax is RE2's (https://github.com/google/re2/wiki/Syntax), minus ``\\C`` (one byte of the
UTF-8 encoding, meaningless on text); docs/filters.md lists it.

Linear is not cheap: one match costs up to (program size) x (bytes of text) steps, and a running
match cannot be interrupted. So a pattern whose compiled program is larger than
``MAX_PROGRAM_SIZE`` is refused, and ``search`` times a match that could be long on a prefix of
the text and weighs it against the command's time budget (``dbhandles.budget``, ``_timed``).
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from dbhandles import budget
from dbhandles.byte_cache import byte_memo, deep_sizeof
from dbhandles.values import json_text, name_text

__all__ = [
    "MAX_PROGRAM_SIZE",
    "NS_PER_STEP",
    "REGEX_CACHE_BYTES",
    "pattern_problem",
    "search",
    "set_members",
]

#: Bytes each cache of patterns keeps (``pattern_problem``'s answers, compiled patterns, the members
#: of character classes): patterns are the caller's text, so a stream of long distinct ones leaves
#: the oldest out instead of pinning memory (issue 13).
REGEX_CACHE_BYTES = 16 << 20
#: What one instruction of a compiled program is charged, with the pattern's text twice (RE2 keeps
#: a copy, and a forward and a reverse program). RE2 builds its DFA while it matches, within its own
#: ``max_mem`` per pattern, which ``sys.getsizeof`` cannot see and is not charged.
_INSTRUCTION_BYTES = 16

#: Largest compiled RE2 program (instructions) a ``$regex`` may have. RE2's worst case visits every
#: instruction for every byte of the text, so this bounds one match at 1 ms per byte at
#: ``NS_PER_STEP``: ``(?i)[\pL\pN]{300}x`` (402 905 instructions) is refused, ``\pL{80}`` (95 684)
#: and ``.{1000}`` (8 004) are accepted.
MAX_PROGRAM_SIZE = 100_000

#: A deliberately high figure for one step (one instruction over one byte) of RE2's slowest path
#: (the NFA it falls back to when its DFA runs out of memory); measured at 8-9 ns on a 2-core x86.
NS_PER_STEP = 10

#: Below this many worst-case steps (1 ms at ``NS_PER_STEP``) a match runs without looking at the
#: clock: the scans that call ``search`` look at it every few hundred records anyway.
_FREE_STEPS = 100_000

#: A match whose worst case does not fit in what is left of the budget is run on growing prefixes of
#: the text: ``_FIRST_WINDOW`` bytes, then four times as many each round, the last being the whole
#: text (at most a third more work). RE2 builds its DFA as it goes, so a short prefix overstates
#: the rate: before ``_SAMPLE_BYTES`` a prefix only decides whether the next one fits; from there
#: on, each prefix's time scaled to the text's length times ``_SAFETY`` must fit (RE2 may also
#: leave its DFA for its slower NFA part-way through a text, which a later prefix then shows).
_FIRST_WINDOW = 1024
_SAMPLE_BYTES = 16 * 1024
_SAFETY = 2.0


@lru_cache(maxsize=1)
def _re2() -> Any:
    """The ``re2`` module, imported by the first pattern: a process that reads no ``$regex`` (a CLI
    command, most server calls) never loads it."""
    import re2

    return re2


@lru_cache(maxsize=2)
def _options(*, capture: bool) -> Any:
    options = _re2().Options()
    options.log_errors = False  # a refused pattern is the caller's error, not a line on stderr
    options.never_capture = not capture  # matching only asks whether there is a match
    return options


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


@byte_memo(REGEX_CACHE_BYTES)
def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a ``$regex`` (RE2's own words), or ``None`` when it is one.

    RE2 ends its words with the part of the pattern it refused (``missing ]: [a``); that part is
    quoted as JSON text (``missing ]: "[a"``), like every sent value in a message, so a control
    character of the pattern is written as its escape, never raw."""
    try:
        _encode(pattern).decode("utf-8")
    except UnicodeDecodeError:
        return "the pattern is not valid Unicode (it holds a lone surrogate)"
    if _uses_single_byte(pattern):
        return "\\C (one byte of the UTF-8 encoding) is not supported; use . for one character"
    try:
        size = _re2().compile(_encode(pattern), _options(capture=True)).programsize
    except _re2().error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        words, sep, part = str(detail).partition(": ")
        return f"{words}: {json_text(part, 80)}" if sep else name_text(words, 200)
    if size > MAX_PROGRAM_SIZE:
        return (
            f"pattern too complex (program size {size} > {MAX_PROGRAM_SIZE}): every byte of the "
            "text may cost a step per instruction; use fewer or smaller repetitions of classes"
        )
    return None


def _compiled_bytes(key: object, compiled: object) -> int:
    instructions: int = getattr(compiled, "programsize", 0)
    return 2 * deep_sizeof(key) + instructions * _INSTRUCTION_BYTES


@byte_memo(REGEX_CACHE_BYTES, _compiled_bytes)
def _compiled(pattern: str) -> Any:
    problem = pattern_problem(pattern)
    if problem is not None:
        raise ValueError(f"invalid $regex {json_text(pattern, 80)}: {problem}")
    return _re2().compile(_encode(pattern), _options(capture=False))


def search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches somewhere in ``text`` (RE2 semantics, linear time).

    Under a time budget, a match that could be long is first timed on a prefix of ``text`` and
    weighed against what is left of the budget (``_timed``).

    Raises:
        ValueError: ``pattern`` is not valid (filters are checked when parsed, so only a caller
            that skipped ``filters.parse_filter`` sees this).
        QueryTimeout: the match was estimated, from a timed sample, not to finish within what is
            left of the command's time budget (the budget is then spent: ``budget.check`` raises
            too, so a driver that swallowed this reports it).
    """
    compiled = _compiled(pattern)
    data = _encode(text)
    if compiled.programsize * len(data) > _FREE_STEPS:
        found = _timed(compiled, data)
        if found is not None:
            return found
    return compiled.search(data) is not None


def _timed(compiled: Any, data: bytes) -> bool | None:
    """The answer of a match of ``compiled`` over ``data`` run prefix by prefix, timed; stop the
    command (``QueryTimeout``) when it was measured not to finish in what is left of its budget;
    ``None`` when the worst case fits (no budget, or enough left): match at once.

    No estimate alone refuses: when the worst case (``programsize * len(data)`` steps at
    ``NS_PER_STEP``) does not fit, prefixes of ``_FIRST_WINDOW``, then 4x more bytes are matched
    and timed up to the whole text (whose answer is returned). The command is stopped when a
    measured time, scaled by ``_SAFETY`` to the next prefix (below ``_SAMPLE_BYTES``) or to the
    whole text (from there on), does not fit in what is left.

    Raises:
        QueryTimeout: it does not fit (the budget is marked spent first, with the reason).
    """
    end = budget.deadline()
    if end is None:
        return None
    size, length = compiled.programsize, len(data)
    left = end - time.monotonic()
    if left > 0 and size * length * NS_PER_STEP <= left * 1e9:
        return None
    window = min(length, _FIRST_WINDOW)
    while True:
        start = time.monotonic()
        found = compiled.search(data, 0, window) is not None
        spent = time.monotonic() - start
        if window == length:
            return found
        left = end - time.monotonic()
        following = min(length, window * 4)
        # Past _SAMPLE_BYTES the whole match is weighed; before, only the next sample.
        whole = window >= _SAMPLE_BYTES
        estimate = _SAFETY * spent * (length if whole else following) / window
        if estimate > left:
            break
        window = following
    budget.spend(
        f"a $regex match over a value of {length} bytes was estimated (from a timed match over "
        f"its first {window} bytes) to take at least {estimate:.1f} s"
    )
    raise budget.exceeded()


@lru_cache(maxsize=1)
def _every_character() -> bytes:
    """Every code point but U+0000 and the surrogates, in order, as UTF-8 (4 MiB, built once)."""
    return "".join(chr(c) for r in (range(1, 0xD800), range(0xE000, 0x110000)) for c in r).encode(
        "utf-8"
    )


@byte_memo(REGEX_CACHE_BYTES)
def set_members(char_class: str) -> tuple[tuple[int, int], ...]:
    """The code points (as ``(first, last)`` ranges) that RE2 matches with ``char_class``, one
    character class such as ``[\\pL]`` or ``(?i)[\\x{e9}]``: RE2 itself says what a Unicode class
    or a case-insensitive character means, by one linear scan over every code point.

    U+0000 and the surrogates are never members; a range may span the surrogates.
    """
    text = _every_character()
    ranges: list[tuple[int, int]] = []
    for match in _re2().compile(_encode(char_class) + b"+", _options(capture=False)).finditer(text):
        start, end = match.span()
        first = text[start : start + 4].decode("utf-8", "ignore")[0]
        last = text[max(start, end - 4) : end].decode("utf-8", "ignore")[-1]
        ranges.append((ord(first), ord(last)))
    return tuple(ranges)
