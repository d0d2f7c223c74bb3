"""``$regex`` on PostgreSQL: an RE2 pattern rewritten as an ARE that matches exactly the same strings.

``$regex`` takes RE2 syntax everywhere (``dbhandles.regex``). PostgreSQL's ``~`` speaks another
dialect: ``\\b`` is a backspace there, ``\\w`` and ``(?i)`` follow the collation's idea of letters,
``.`` matches a newline, ``\\pL`` does not exist. So the pattern is parsed here, by RE2's grammar,
and written out again in a small ARE subset whose meaning depends on nothing but code points:

* every set of characters (a literal, ``.``, a class, ``\\d``, ``[[:alpha:]]``, ``\\pL``, any of
  them under ``(?i)``) becomes one bracket of code point ranges, computed as RE2 defines it:
  directly for ASCII (RE2's Perl and POSIX classes are ASCII; folding ASCII adds only U+212A, the
  Kelvin sign, and U+017F, the long s), and for Unicode classes or case folding beyond ASCII by
  asking RE2 itself which code points the set matches (one linear scan of every code point);
* ``^``, ``$`` and ``\\A``/``\\z`` become ARE anchors, ``(?m)^``/``(?m)$`` look-behind/ahead for a
  newline, ``\\b``/``\\B`` look-around on ``[0-9A-Z_a-z]`` (RE2's word characters);
* groups become non-capturing and laziness is dropped: whether a match exists does not depend on it;
* RE2 also finds empty matches between the bytes of a multi-byte character (where ``\\B`` holds):
  a pattern that matches there also matches any text with a character past ASCII.

The ARE runs under ``COLLATE "C"`` (``PostgresDialect.regex``) and is refused (``invalid_filter``)
when PostgreSQL cannot run it exactly: a repetition count above 255 (its limit), or more than
``MAX_SCANS`` sets that need a scan of Unicode.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from dbhandles.byte_cache import byte_memo
from dbhandles.errors import InvalidFilter
from dbhandles.regex import REGEX_CACHE_BYTES, pattern_problem, set_members
from dbhandles.values import json_text

__all__ = ["MAX_REPEAT", "MAX_SCANS", "translate_regex"]

#: PostgreSQL's largest repetition count (RE2 takes up to 1000).
MAX_REPEAT = 255
#: Sets per pattern that need RE2 to scan Unicode (about 10 ms each, cached).
MAX_SCANS = 16

_MAX = 0x10FFFF
Ranges = tuple[tuple[int, int], ...]

_WORD: Ranges = ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A))
_PERL: dict[str, Ranges] = {
    "d": ((0x30, 0x39),),
    "s": ((0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20)),
    "w": _WORD,
}
_POSIX: dict[str, Ranges] = {
    "alnum": ((0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)),
    "alpha": ((0x41, 0x5A), (0x61, 0x7A)),
    "ascii": ((0x00, 0x7F),),
    "blank": ((0x09, 0x09), (0x20, 0x20)),
    "cntrl": ((0x00, 0x1F), (0x7F, 0x7F)),
    "digit": ((0x30, 0x39),),
    "graph": ((0x21, 0x7E),),
    "lower": ((0x61, 0x7A),),
    "print": ((0x20, 0x7E),),
    "punct": ((0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)),
    "space": ((0x09, 0x0D), (0x20, 0x20)),
    "upper": ((0x41, 0x5A),),
    "word": _WORD,
    "xdigit": ((0x30, 0x39), (0x41, 0x46), (0x61, 0x66)),
}
_ESCAPED = {"a": 0x07, "f": 0x0C, "n": 0x0A, "r": 0x0D, "t": 0x09, "v": 0x0B}
_REPEAT = re.compile(r"\{(\d+)(?:(,)(\d*))?\}")
_FLAGS = re.compile(r"\(\?([imsU]*)(?:-([imsU]+))?([:)])")
_NAMED = re.compile(r"\(\?P?<[^>]*>")
#: What PostgreSQL text can hold: every code point but U+0000 and the surrogates.
_TEXT: Ranges = ((0x01, 0xD7FF), (0xE000, _MAX))
_W = "[0-9A-Z_a-z]"
_ASSERTIONS = {
    "^": "^",
    "$": "$",
    "^m": "(?:^|(?<=\\n))",
    "$m": "(?:$|(?=\\n))",
    "b": f"(?:(?<={_W})(?!{_W})|(?<!{_W})(?={_W}))",
    "B": f"(?:(?<={_W})(?={_W})|(?<!{_W})(?!{_W}))",
}


# -- sets of code points ----------------------------------------------------------------------------


def _union(*sets: Iterable[tuple[int, int]]) -> Ranges:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(r for s in sets for r in s):
        if merged and lo <= merged[-1][1] + 1:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return tuple(merged)


def _complement(ranges: Ranges, universe: Ranges = ((0, _MAX),)) -> Ranges:
    out: list[tuple[int, int]] = []
    for ulo, uhi in universe:
        start = ulo
        for lo, hi in ranges:
            if hi < start or lo > uhi:
                continue
            if lo > start:
                out.append((start, lo - 1))
            start = max(start, hi + 1)
        if start <= uhi:
            out.append((start, uhi))
    return tuple(out)


def _intersect(ranges: Ranges, universe: Ranges) -> Ranges:
    return _complement(_union(_complement(ranges), _complement(universe)))


def _ascii_fold(ranges: Ranges) -> Ranges:
    """RE2's case folding of a set of ASCII characters."""
    extra: list[tuple[int, int]] = []
    for lo, hi in ranges:
        for c in range(lo, hi + 1):
            if 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A:
                other = c ^ 0x20
                extra.append((other, other))
                if c in (0x4B, 0x6B):  # k K and the Kelvin sign
                    extra.append((0x212A, 0x212A))
                elif c in (0x53, 0x73):  # s S and the long s
                    extra.append((0x017F, 0x017F))
    return _union(ranges, extra)


def _re2_char(c: int) -> str:
    return f"\\x{{{c:X}}}"


def _re2_class(ranges: Ranges) -> str:
    return "".join(
        _re2_char(lo) if lo == hi else f"{_re2_char(lo)}-{_re2_char(hi)}" for lo, hi in ranges
    )


def _are_char(c: int) -> str:
    if c < 0x80 and chr(c).isalnum():
        return chr(c)
    return f"\\u{c:04X}" if c <= 0xFFFF else f"\\U{c:08X}"


def _are_bracket(ranges: Ranges, negated: bool) -> str:
    body = "".join(
        _are_char(lo) if lo == hi else f"{_are_char(lo)}-{_are_char(hi)}" for lo, hi in ranges
    )
    return f"[{'^' if negated else ''}{body}]"


def _are_set(ranges: Ranges) -> str:
    """An ARE atom matching exactly the characters of ``ranges`` that text can hold."""
    inside = _intersect(ranges, _TEXT)
    outside = _complement(inside, _TEXT)
    if len(inside) == 1 and inside[0][0] == inside[0][1]:
        return _are_char(inside[0][0])
    if not outside or (inside and len(inside) <= len(outside)):
        return _are_bracket(inside, negated=False)
    return _are_bracket(outside, negated=True)  # also the empty set: matches nothing text holds


# -- the tree ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Set:
    ranges: Ranges


@dataclass(frozen=True, slots=True)
class _Assert:
    kind: str


@dataclass(frozen=True, slots=True)
class _Cat:
    items: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Alt:
    items: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Repeat:
    item: _Node
    low: int
    high: int | None


_Node = _Set | _Assert | _Cat | _Alt | _Repeat


def _render(node: _Node) -> str:
    if isinstance(node, _Set):
        return _are_set(node.ranges)
    if isinstance(node, _Assert):
        return _ASSERTIONS[node.kind]
    if isinstance(node, _Cat):
        return "".join(_render(item) for item in node.items)
    if isinstance(node, _Alt):
        return "(?:" + "|".join(_render(item) for item in node.items) + ")"
    item = _render(node.item)
    if not isinstance(node.item, _Set):
        item = f"(?:{item})"  # ARE quantifies an atom: never a bare constraint like ^ or a sequence
    low, high = node.low, node.high
    if (low, high) == (0, None):
        return item + "*"
    if (low, high) == (1, None):
        return item + "+"
    if (low, high) == (0, 1):
        return item + "?"
    if high == low:
        return f"{item}{{{low}}}"
    return f"{item}{{{low},{'' if high is None else high}}}"


def _empty_inside_a_character(node: _Node) -> bool:
    """Whether ``node`` matches the empty string inside a multi-byte character.

    RE2 searches UTF-8 bytes: a search may start between two bytes of one character, where ``\\B``
    holds (both neighbours are bytes that are not ASCII word characters) and every other assertion
    fails. Nothing can be consumed from there, so such a match is empty. PostgreSQL has no such
    positions: the translation adds "any character past ASCII" for patterns that match there.
    """
    if isinstance(node, _Set):
        return False
    if isinstance(node, _Assert):
        return node.kind == "B"
    if isinstance(node, _Cat):
        return all(_empty_inside_a_character(item) for item in node.items)
    if isinstance(node, _Alt):
        return any(_empty_inside_a_character(item) for item in node.items)
    return node.low == 0 or _empty_inside_a_character(node.item)


# -- the parser (RE2's grammar: https://github.com/google/re2/wiki/Syntax) ------------------------


class _Refused(Exception):
    pass


class _Parser:
    """Parses a pattern RE2 has accepted (so error paths are only a safety net)."""

    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0
        self.fold = False
        self.multiline = False
        self.dot_nl = False
        self.scanned: set[str] = set()

    # structure

    def parse(self) -> _Node:
        node = self._alternation()
        if self.i != len(self.p):
            raise _Refused("an unbalanced ')'")
        return node

    def _alternation(self) -> _Node:
        branches = [self._concat()]
        while self.i < len(self.p) and self.p[self.i] == "|":
            self.i += 1
            branches.append(self._concat())
        return branches[0] if len(branches) == 1 else _Alt(tuple(branches))

    def _concat(self) -> _Node:
        items: list[_Node] = []
        while self.i < len(self.p) and self.p[self.i] not in "|)":
            self._item(items)
        return items[0] if len(items) == 1 else _Cat(tuple(items))

    def _item(self, items: list[_Node]) -> None:
        p, c = self.p, self.p[self.i]
        if c == "(":
            group = self._group()
            if group is not None:
                items.append(group)
        elif c in "*+?":
            self.i += 1
            self._quantify(items, *{"*": (0, None), "+": (1, None), "?": (0, 1)}[c])
        elif c == "{" and (bound := _REPEAT.match(p, self.i)):
            self.i = bound.end()
            low = int(bound.group(1))
            high = low if not bound.group(2) else int(bound.group(3)) if bound.group(3) else None
            self._quantify(items, low, high)
        elif c == ".":
            self.i += 1
            items.append(_Set(((0, _MAX),) if self.dot_nl else ((0, 9), (11, _MAX))))
        elif c in "^$":
            self.i += 1
            items.append(_Assert(c + ("m" if self.multiline else "")))
        elif c == "[":
            items.append(_Set(self._class()))
        elif c == "\\":
            self._escape(items)
        else:
            self.i += 1
            items.append(_Set(self._literal(ord(c))))

    def _quantify(self, items: list[_Node], low: int, high: int | None) -> None:
        if self.i < len(self.p) and self.p[self.i] == "?":
            self.i += 1  # lazy: the same strings match
        if not items:
            raise _Refused("a repetition with nothing to repeat")
        if max(low, high or 0) > MAX_REPEAT:
            raise _Refused(f"a repetition count above {MAX_REPEAT}")
        items.append(_Repeat(items.pop(), low, high))

    def _group(self) -> _Node | None:
        p = self.p
        saved = (self.fold, self.multiline, self.dot_nl)
        flags = _FLAGS.match(p, self.i)
        if flags is not None:
            on, off, end = flags.groups()
            for letter, value in [(f, True) for f in on] + [(f, False) for f in off or ""]:
                if letter == "i":
                    self.fold = value
                elif letter == "m":
                    self.multiline = value
                elif letter == "s":
                    self.dot_nl = value
            self.i = flags.end()
            if end == ")":
                return None  # (?flags): for the rest of the enclosing group
        elif named := _NAMED.match(p, self.i):
            self.i = named.end()
        elif p.startswith("(?", self.i):
            raise _Refused(f"the group syntax {json_text(p[self.i : self.i + 3])}")
        else:
            self.i += 1
        node = self._alternation()
        if not p.startswith(")", self.i):
            raise _Refused("a missing ')'")
        self.i += 1
        self.fold, self.multiline, self.dot_nl = saved
        return node

    # characters

    def _literal(self, c: int) -> Ranges:
        return self._fold(((c, c),)) if self.fold else ((c, c),)

    def _fold(self, ranges: Ranges) -> Ranges:
        ascii_part = _intersect(ranges, ((0, 0x7F),))
        rest = _intersect(ranges, ((0x80, _MAX),))
        if not rest:
            return _ascii_fold(ascii_part)
        return _union(_ascii_fold(ascii_part), self._scan(f"(?i)[{_re2_class(rest)}]"))

    def _scan(self, text: str) -> Ranges:
        self.scanned.add(text)
        if len(self.scanned) > MAX_SCANS:
            raise _Refused(
                f"more than {MAX_SCANS} Unicode classes or case-insensitive non-ASCII characters"
            )
        return set_members(text)

    def _group_set(self, positive: Ranges, negated: bool) -> Ranges:
        """A Perl or POSIX class (``\\D`` and ``[:^alpha:]`` fold first, then negate, as RE2 does)."""
        ranges = _ascii_fold(positive) if self.fold else positive
        return _complement(ranges) if negated else ranges

    def _unicode_class(self) -> Ranges:
        """``\\pL``, ``\\p{Greek}``, ``\\P{^Lu}``... as RE2 defines them (by its own tables)."""
        p, start = self.p, self.i
        end = p.index("}", start) + 1 if p.startswith("{", start + 2) else start + 3
        self.i = end
        return self._scan(f"{'(?i)' if self.fold else ''}[{p[start:end]}]")

    def _escape(self, items: list[_Node]) -> None:
        p = self.p
        e = p[self.i + 1] if self.i + 1 < len(p) else ""
        if e == "Q":
            end = p.find("\\E", self.i + 2)
            text = p[self.i + 2 :] if end < 0 else p[self.i + 2 : end]
            self.i = len(p) if end < 0 else end + 2
            items.extend(_Set(self._literal(ord(c))) for c in text)
        elif e in ("A", "z"):
            self.i += 2
            items.append(_Assert("^" if e == "A" else "$"))
        elif e in ("b", "B"):
            self.i += 2
            items.append(_Assert(e))
        elif e and e in "dDsSwW":
            self.i += 2
            items.append(_Set(self._group_set(_PERL[e.lower()], e.isupper())))
        elif e in ("p", "P"):
            items.append(_Set(self._unicode_class()))
        else:
            items.append(_Set(self._literal(self._escaped_char())))

    def _escaped_char(self) -> int:
        """The character of an escape such as ``\\x{263a}``, ``\\101``, ``\\n`` or ``\\.``."""
        p = self.p
        e = p[self.i + 1] if self.i + 1 < len(p) else ""
        if e and e in "01234567":
            digits = e
            j = self.i + 2
            while len(digits) < 3 and j < len(p) and p[j] in "01234567":
                digits += p[j]
                j += 1
            self.i = j
            return int(digits, 8)
        if e == "x":
            if p.startswith("{", self.i + 2):
                end = p.index("}", self.i)
                value = int(p[self.i + 3 : end], 16)
                self.i = end + 1
                return value
            value = int(p[self.i + 2 : self.i + 4], 16)
            self.i += 4
            return value
        if e in _ESCAPED:
            self.i += 2
            return _ESCAPED[e]
        if e and ord(e) < 0x80 and not e.isalnum():
            self.i += 2
            return ord(e)
        raise _Refused(f"the escape \\{e}")

    def _class(self) -> Ranges:
        p = self.p
        self.i += 1
        negated = p.startswith("^", self.i)
        if negated:
            self.i += 1
        parts: list[Ranges] = []
        first = True
        while True:
            if self.i >= len(p):
                raise _Refused("a missing ']'")
            c = p[self.i]
            if c == "]" and not first:
                self.i += 1
                break
            first = False
            if p.startswith("[:", self.i) and (end := p.find(":]", self.i + 2)) >= 0:
                name = p[self.i + 2 : end]
                self.i = end + 2
                positive = _POSIX.get(name.removeprefix("^"))
                if positive is None:
                    raise _Refused(f"the class [:{name}:]")
                parts.append(self._group_set(positive, name.startswith("^")))
            elif c == "\\" and p[self.i + 1 : self.i + 2] in ("p", "P"):
                parts.append(self._unicode_class())
            elif c == "\\" and p[self.i + 1 : self.i + 2] in tuple("dDsSwW"):
                e = p[self.i + 1]
                self.i += 2
                parts.append(self._group_set(_PERL[e.lower()], e.isupper()))
            else:
                low = self._class_char()
                high = low
                if p.startswith("-", self.i) and not p.startswith("-]", self.i):
                    self.i += 1
                    high = self._class_char()
                parts.append(self._fold(((low, high),)) if self.fold else ((low, high),))
        ranges = _union(*parts)
        return _complement(ranges) if negated else ranges

    def _class_char(self) -> int:
        if self.p[self.i] == "\\":
            return self._escaped_char()
        self.i += 1
        return ord(self.p[self.i - 1])


# -- the entry point --------------------------------------------------------------------------------


def _refuse(pattern: str, what: str) -> InvalidFilter:
    return InvalidFilter(
        f"$regex: {json_text(pattern, 80)} uses {what}, which PostgreSQL cannot match exactly as RE2 does; "
        "rewrite the pattern (docs/filters.md lists what PostgreSQL handles)"
    )


@byte_memo(REGEX_CACHE_BYTES)
def translate_regex(pattern: str) -> str:
    """A PostgreSQL ARE (to run under ``COLLATE "C"``) matching exactly the strings RE2's search
    of ``pattern`` does, among those PostgreSQL text can hold.

    Raises:
        InvalidFilter: the pattern is not valid RE2, or PostgreSQL cannot run it exactly (a
            repetition count above 255; too many Unicode classes).
    """
    problem = pattern_problem(pattern)
    if problem is not None:
        raise InvalidFilter(
            f"$regex: {json_text(pattern, 80)} is not a valid RE2 regular expression ({problem})"
        )
    try:
        node = _Parser(pattern).parse()
    except _Refused as exc:
        raise _refuse(pattern, str(exc)) from None
    if _empty_inside_a_character(node):
        return f"(?:{_render(node)})|[\\u0080-\\U0010FFFF]"
    return _render(node)
