"""Object names given twice in a ``json`` adapter file: refused, naming the name, where it is and
its line (docs/filters.md "Values")."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from dbhandles.errors import NotADatabase
from dbhandles.values import item_path, json_text, member_path

__all__ = ["refuse_repeated_names"]

#: A JSON string, or one of the punctuation marks that shape a text (numbers, ``true``, ``false``
#: and ``null`` hold none of these bytes, so they are stepped over).
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\],]')


class _Twice(Exception):
    """An object of the text gives ``name`` twice (raised by ``_unique`` out of ``json.loads``)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``' ``object_pairs_hook``: the object, or ``_Twice`` at a name given again.
    ``json`` has undone every escape by then, so ``"a"`` and ``"\\u0061"`` are one name."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise _Twice(name)
            seen.add(name)
    return obj


def refuse_repeated_names(path: Path, raw: bytes, doc: dict[str, Any]) -> None:
    """Refuse the file ``raw`` (at ``path``, read by orjson as ``doc``) if any of its objects gives
    a name twice: at the top level, in ``collections``, in a record or in any value of one.

    RFC 8259 §4 says the names of an object SHOULD be unique and that a reader of one whose names
    are not may keep the last pair only or report an error. orjson keeps the last, so a file
    edited by hand to hold ``"a"`` twice was served as its last copy and the first was lost
    without a word; dbhandles reports the error instead. Python's ``json`` finds the repeat
    (``object_pairs_hook``); ``_where`` then names its place and line for the message.

    Raises:
        NotADatabase: on ``config.path``, naming the file, the place, the name and its line.
    """
    try:
        json.loads(raw, object_pairs_hook=_unique)
    except _Twice as twice:
        found = _where(raw, doc)
        if found is None:  # pragma: no cover - the scan finds every repeat json finds
            place, name, line = "an object", twice.name, None
        else:
            place, name, line = found
        at = f" (line {line})" if line is not None else ""
        raise NotADatabase(
            f"config.path: {json_text(str(path))}: {place} gives the key {json_text(name, 80)} "
            f"twice{at}; the names of a JSON object should be unique (RFC 8259) and dbhandles "
            "would serve only the last of them, losing the other, so it does not open the file: "
            "remove or rename one of them in the file by hand",
            field="config.path",
        ) from None
    except (ValueError, RecursionError):
        # What json cannot read (an integer of more than 4,300 digits, nesting past Python's
        # recursion limit) orjson did; ``jsonfile_read._unkept`` names it.
        return


def _where(raw: bytes, doc: dict[str, Any]) -> tuple[str, str, int] | None:
    """The first name given twice in one object of ``raw``, in the text's order: the place of
    that object in words, the name, and the line of its second copy; ``None`` if there is none.

    A scan of the text's strings and punctuation (the text is valid JSON: orjson read it); each
    open container keeps the names it has seen, or its item index."""
    #: Per open container: [names seen (None for an array), current name or index, expects a name].
    stack: list[list[Any]] = []
    for match in _TOKEN.finditer(raw):
        token = match.group()
        if token == b"{":
            stack.append([set(), None, True])
        elif token == b"[":
            stack.append([None, 0, False])
        elif token in (b"}", b"]"):
            stack.pop()
        elif token == b",":
            frame = stack[-1]
            if frame[0] is None:
                frame[1] += 1
            else:
                frame[2] = True
        elif stack and stack[-1][2]:  # a string where a name goes: this object's name
            frame = stack[-1]
            name = json.loads(token)
            if name in frame[0]:
                line = raw.count(b"\n", 0, match.start()) + 1
                return _place([f[1] for f in stack[:-1]], doc), name, line
            frame[0].add(name)
            frame[1], frame[2] = name, False
    return None


def _place(steps: list[Any], doc: dict[str, Any]) -> str:
    """``steps`` (names and indexes from the top) in words: the top level, ``collections``, a
    record (named by its id as orjson read it) with the path inside it, or another place."""
    if not steps:
        return "its top level"
    if steps[0] != "collections":
        return f"its top-level key {json_text(steps[0], 80)} at {_path(steps[1:]) or 'its value'}"
    if len(steps) == 1:
        return 'its "collections" object'
    name = steps[1]
    if len(steps) == 2:
        return f"collection {json_text(name, 80)}"
    records = doc.get("collections", {}).get(name)
    index = steps[2]
    record = records[index] if isinstance(records, list) and index < len(records) else None
    record_id = record.get("id") if isinstance(record, dict) else None
    who = json_text(record_id, 80) if isinstance(record_id, str) else f"number {index}"
    inner = _path(steps[3:])
    return f"record {who} of collection {json_text(name, 80)}" + (f" at {inner}" if inner else "")


def _path(steps: list[Any]) -> str:
    where = ""
    for step in steps:
        where = item_path(where, step) if isinstance(step, int) else member_path(where, step)
    return where
