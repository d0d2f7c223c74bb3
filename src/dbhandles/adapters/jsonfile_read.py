"""Reading a ``json`` adapter file: what it serves, which records it leaves out, and why a rewrite
would lose something (so the file opens read-only; docs/filters.md "Values")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from dbhandles.adapters.jsonfile_names import refuse_repeated_names
from dbhandles.adapters.sqlite_values import system_problem
from dbhandles.dbfiles import open_plain
from dbhandles.errors import DbHandlesError, NotADatabase, StorageError
from dbhandles.filters import check_new_collection
from dbhandles.values import MAX_DEPTH, item_path, json_text, member_path

__all__ = ["FORMAT", "FORMAT_VERSION", "Loaded", "Unreadable", "read_file"]

FORMAT = "dbhandles-json"
FORMAT_VERSION = 1

#: The top-level keys of a file this adapter writes (``_write``); a rewrite drops any other.
_TOP_KEYS = ("format", "version", "collections")

#: Per collection name, the ids of records that cannot be served, with why (``_withheld``).
Unreadable = dict[str, dict[str, str]]


class Loaded(NamedTuple):
    """What ``read_file`` found in a file."""

    #: Collection name -> the records served (``_withheld`` left out).
    served: dict[str, Any]
    #: Why the file must not be rewritten (``_unkept``), or ``None``.
    unkept: str | None
    #: The ids of the records left out, with why, by collection (``Unreadable``).
    unreadable: Unreadable
    #: How many records are left out, by collection: records, not ids (an id given three times
    #: is three records left out, as SQLite counts rows).
    counts: dict[str, int]


def read_file(path: Path) -> Loaded:
    """The collections of the file at ``path`` as served (``_withheld`` left out), why the file
    must not be rewritten (``_unkept``) or ``None``, and the records left out.

    Raises:
        StorageError: the file cannot be read.
        NotADatabase: it is no JSON, or no dbhandles JSON database: its ``version`` is another
            format version than ``FORMAT_VERSION`` (a later dbhandles' file, which a rewrite as
            version 1 would spoil), a collection's name is none dbhandles can address
            (``check_new_collection``: ``"c d"``, ``""``, a control character), a value
            nests deeper than ``_SERVED_DEPTH``, or an object gives a name twice
            (``jsonfile_names.refuse_repeated_names``: orjson would keep its last value only).
    """
    try:
        # Through the gate: a JSON file is never one of SQLite's files (see dbhandles.dbfiles).
        with open_plain(path, "rb", "config.path") as file:
            raw = file.read()
    except OSError as exc:
        raise StorageError(f"cannot read {json_text(str(path))}: {exc.strerror}") from exc
    if not raw.strip():
        return Loaded({}, None, {}, {})
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise NotADatabase(
            f"config.path: {json_text(str(path))} is not a dbhandles JSON database (invalid JSON: {exc})",
            field="config.path",
        ) from exc
    canonical = _canonical(raw, doc)
    if not canonical and isinstance(doc, dict):
        refuse_repeated_names(path, raw, doc)
    if (
        not isinstance(doc, dict)
        or doc.get("format") != FORMAT
        or not isinstance(doc.get("collections"), dict)
    ):
        raise NotADatabase(
            f"config.path: {json_text(str(path))} is not a dbhandles JSON database (expected an object with "
            f'"format": "{FORMAT}")',
            field="config.path",
        )
    version = doc.get("version", FORMAT_VERSION)
    if type(version) is not int or version != FORMAT_VERSION:
        raise NotADatabase(
            f"config.path: {json_text(str(path))} is a dbhandles JSON database of format version "
            f"{json_text(version, 40)}, which this dbhandles does not read (it reads version "
            f"{FORMAT_VERSION}); it was left as it is",
            field="config.path",
        )
    extra = sorted(key for key in doc if key not in _TOP_KEYS)
    for key in extra:
        if _deepest({key: doc[key]}, _SERVED_DEPTH) > _SERVED_DEPTH:
            raise NotADatabase(
                f"config.path: {json_text(str(path))}: its top-level key {json_text(key, 80)} nests "
                f"a value deeper than {_SERVED_DEPTH} levels, which dbhandles cannot read",
                field="config.path",
            )
    collections: dict[str, Any] = doc["collections"]
    for name, records in collections.items():
        if not isinstance(records, list) or not all(
            isinstance(r, dict) and isinstance(r.get("id"), str) for r in records
        ):
            raise NotADatabase(
                f"config.path: {json_text(str(path))}: collection {json_text(name, 80)} is not a list of records "
                "with string ids",
                field="config.path",
            )
        _addressable(path, name)
    served, unreadable, counts, why = _withheld(collections)
    deep = _twice_or_deep(path, collections)
    if extra:
        why = why or (
            f"the file's top-level key {json_text(extra[0], 80)} is not one dbhandles keeps "
            f"({', '.join(_TOP_KEYS)}), so a rewrite would drop it"
        )
    why = why or deep or (None if canonical else _unkept(raw, doc))
    if why is not None:
        # served read-only, and exactly: json keeps an integer past 64 bits that orjson rounds
        served, unreadable, counts, _ = _withheld(_exact(raw, collections))
    return Loaded(served, why, unreadable, counts)


def _addressable(path: Path, name: str) -> None:
    """Refuse a collection name that no command could name (a hand's ``"c d"``, ``""``,
    ``"x\\u0001"``): every name dbhandles writes passes ``check_new_collection``.

    Raises:
        NotADatabase: on ``config.path``, naming the collection (``data/open`` has no
            ``collection`` field to blame).
    """
    try:
        check_new_collection(name)
    except DbHandlesError as exc:
        raise NotADatabase(
            f"config.path: {json_text(str(path))}: its collection {json_text(name, 80)} has a name "
            "dbhandles cannot address (a collection's name is 1-64 letters, digits or "
            "underscores, not starting with a digit nor with a system prefix); rename it in the "
            "file by hand",
            field="config.path",
        ) from exc


def _exact(raw: bytes, collections: dict[str, Any]) -> dict[str, Any]:
    """The collections of the file ``raw`` (which ``orjson`` read as ``collections``) read again by
    ``json``, which keeps an integer past 64 bits exact where orjson reads an inexact float: such a
    file is served read-only (``_unkept``) and exactly, by reads, listings and exports alike
    (docs/filters.md "Values"). ``collections`` when ``json`` cannot read it (an integer of more
    than 4,300 digits, nesting past Python's recursion limit); a name given twice was refused
    before (``refuse_repeated_names``)."""
    try:
        exact: dict[str, Any] = json.loads(raw)["collections"]
    except (ValueError, RecursionError):
        return collections
    return exact


def _withheld(
    collections: dict[str, Any],
) -> tuple[dict[str, Any], Unreadable, dict[str, int], str | None]:
    """``collections`` without the records dbhandles cannot serve, those records' ids by
    collection with why, how many records that is by collection, and why the file must not be
    rewritten (the first of them) or ``None``.

    Such a record is one whose system fields are not what dbhandles writes
    (``sqlite_values.system_problem``: an id empty, too long or holding U+0000, a ``version``
    that is no integer from 1 to ``MAX_VERSION``, JSON ``true`` included, a timestamp that is not
    ``YYYY-MM-DDTHH:MM:SS.mmmZ``), or one of the records sharing an id (which the file holds
    twice: both are left out, so counts equal listings and an export does not keep one of
    them as if it were the only one), or a record of a collection whose name the file gives again
    in another case (``"C"`` and ``"c"``: collection names are case-insensitive, so serving one
    collection would merge them and a rewrite keep one; every record of both is left out, served
    under the first spelling as an empty collection). Left out of every listing, count and export,
    named by a read, and the file read-only: nothing is lost (docs/filters.md "Values")."""
    served: dict[str, Any] = {}
    unreadable: Unreadable = {}
    counts: dict[str, int] = {}
    first: str | None = None
    spellings: dict[str, list[str]] = {}
    for name in collections:
        spellings.setdefault(name.lower(), []).append(name)
    for names in spellings.values():
        name = names[0]
        served[name] = kept = []
        if len(names) > 1:
            quoted = " and ".join(json_text(spelling, 80) for spelling in names)
            clash = f"is in the collections {quoted}, whose names differ only in case"
            for spelling in names:
                for record in collections[spelling]:
                    unreadable.setdefault(name, {})[record["id"]] = clash
                    counts[name] = counts.get(name, 0) + 1
            first = first or (
                f"the collections {quoted} differ only in case, which dbhandles reads as one "
                "collection, so a rewrite would keep one of them"
            )
            continue
        records = collections[name]
        times: dict[str, int] = {}
        for record in records:
            times[record["id"]] = times.get(record["id"], 0) + 1
        for record in records:
            record_id = record["id"]
            if times[record_id] > 1:
                why: str | None = f"is given {times[record_id]} times in the file"
            else:
                why = system_problem(record_id, record.get("createdAt"),
                                     record.get("updatedAt"), record.get("version"))  # fmt: skip
                why = why and f"is unreadable: {why}"
            if why is None:
                kept.append(record)
                continue
            unreadable.setdefault(name, {})[record_id] = why
            counts[name] = counts.get(name, 0) + 1
            first = (
                first
                or f"record {json_text(record_id, 80)} of collection {json_text(name, 80)} {why}"
            )
    return served, unreadable, counts, first


#: How deep below a record a value of a file may nest and still be served read-only: orjson writes
#: at most 254 levels, and a record is written inside a file (4 levels) or a response (about 4).
_SERVED_DEPTH = 200


def _twice_or_deep(path: Path, collections: dict[str, Any]) -> str | None:
    """Why the file's records cannot be written back, whatever the file's form (compact, pretty or
    by hand): a value nested deeper than ``MAX_DEPTH`` below a record (``data/create`` refuses
    it); else ``None`` (an id given twice: ``_withheld``).

    Raises:
        NotADatabase: a value nests deeper than ``_SERVED_DEPTH`` below a record, which no read
            could send back (orjson refuses it; it once answered ``internal_error``).
    """
    for name, records in collections.items():
        for record in records:
            depth = _deepest(record, _SERVED_DEPTH)
            if depth > _SERVED_DEPTH:
                raise NotADatabase(
                    f"config.path: {json_text(str(path))}: record {json_text(record['id'], 80)} of "
                    f"collection {json_text(name, 80)} nests a value deeper than {_SERVED_DEPTH} "
                    f"levels, which dbhandles cannot send back (records nest at most {MAX_DEPTH})",
                    field="config.path",
                )
            if depth > MAX_DEPTH:
                found = _lost(record, "", 0)
                where = f"{found[0]}: " if found and found[0] else ""
                return (
                    f"record {json_text(record['id'], 80)} of collection {json_text(name, 80)}: "
                    f"{where}nests deeper than {MAX_DEPTH} levels"
                )
    return None


def _deepest(record: dict[str, Any], cap: int) -> int:
    """The nesting of the deepest value of ``record`` (a field's value is level 1), counted up to
    just past ``cap``. Without recursion: a file may nest 1024 levels (orjson's bound)."""
    deepest = 0
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(record, 0)]
    while stack:
        container, depth = stack.pop()
        if not container:
            continue
        if depth + 1 > deepest:
            deepest = depth + 1
            if deepest > cap:
                return deepest
        for item in container.values() if isinstance(container, dict) else container:
            if isinstance(item, dict | list):
                stack.append((item, depth + 1))
    return deepest


class _Lost:
    """What ``_unkept``'s second reading puts where orjson's reading loses a value: an integer
    outside [-2**63, 2**64) (orjson reads it as an inexact float) or a key's earlier value."""

    def __init__(self, why: str) -> None:
        self.why = why


def _exact_int(literal: str) -> int | _Lost:
    if len(literal) <= 20 and -(2**63) <= int(literal) < 2**64:
        return int(literal)
    return _Lost(
        f"holds the integer {literal[:40]}, past 64 bits, which dbhandles reads as an inexact "
        "float (store big numbers as strings)"
    )


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        obj[key] = _Lost(f"repeats the key {json_text(key, 40)}") if key in obj else value
    return obj


def _canonical(raw: bytes, doc: Any) -> bool:
    """Whether ``raw`` is exactly orjson's text of ``doc`` (compact or ``pretty``), as every file
    dbhandles writes is: then orjson lost nothing of it (no name given twice, no integer past 64
    bits), and it is not read a second time."""
    try:
        return raw in (orjson.dumps(doc), orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    except orjson.JSONEncodeError:  # nested past orjson's writer: _twice_or_deep names it
        return False


def _unkept(raw: bytes, doc: dict[str, Any]) -> str | None:
    """Why the file ``raw`` (read by orjson as ``doc``) cannot be written back as it is, naming the
    record and field, or ``None``: every value of it survives a rewrite (docs/filters.md "Values").

    Called after ``_twice_or_deep``, which checks ids and nesting whatever the file's form, and
    only for a file edited by hand (not ``_canonical``), read a second time, by ``json``, for what
    orjson reads inexactly: an integer past 64 bits (a name given twice was refused before, by
    ``jsonfile_names.refuse_repeated_names``). U+0000 and integers in [2**63, 2**64) are kept
    exactly by a rewrite."""
    try:
        again = json.loads(raw, object_pairs_hook=_pairs, parse_int=_exact_int)
    except RecursionError:
        return f"nests a value deeper than {MAX_DEPTH} levels"
    except ValueError:  # pragma: no cover - orjson read it
        return None
    for value in again.values():
        # Any top-level key given twice ("version": 2, "version": 1): a rewrite writes one value.
        if isinstance(value, _Lost):
            return f"the file {value.why} at its top level, of which a rewrite keeps one value"
    collections = again["collections"]
    for name, records in collections.items():
        if isinstance(records, _Lost):
            return f"collection {json_text(name, 80)} is given twice"
        for index, record in enumerate(records):
            found = _lost(record, "", 0)
            if found is not None:
                where, why = found
                place = f"{where}: " if where else ""
                record_id = doc["collections"][name][index]["id"]  # as orjson read it: one id
                return (
                    f"record {json_text(record_id, 80)} of collection "
                    f"{json_text(name, 80)}: {place}{why}"
                )
    return None


def _lost(value: Any, where: str, depth: int) -> tuple[str, str] | None:
    """The path (``member_path``) and why of the first value ``value`` (at nesting ``depth``, 0 for
    a record) loses in a rewrite, or ``None``."""
    if isinstance(value, _Lost):
        return where, value.why
    if depth > MAX_DEPTH:
        return where, f"nests deeper than {MAX_DEPTH} levels"
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, _Lost) and item.why.startswith("repeats"):
                return where, item.why
            found = _lost(item, member_path(where, key), depth + 1)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _lost(item, item_path(where, index), depth + 1)
            if found is not None:
                return found
    return None
