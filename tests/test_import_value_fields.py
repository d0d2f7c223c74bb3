"""Issue #14, fifth outside round: every bad value of an import line is named by its field and its
line, the value kinds a strict JSON reader refuses outright included (a lone surrogate escape, in a
value or a key, ``NaN``, ``Infinity``): before, those were named by a column of the text
("invalid JSON: no low surrogate in string at column 91"). Each bad line is set aside alone with
``onError=skip`` (the rejects file holds the same reason), and ``onError=abort`` says line and field."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbhandles import DbHandlesError, Service
from dbhandles.importer.parse import Rejected, parse_chunk
from dbhandles.values import check_value

#: (line, field the reason starts with, a word of the reason)
BAD_LINES: list[tuple[bytes, str, str]] = [
    (b'{"messages": [{"content": "x"}, {"content": "y"}, {"content": "\\ud800"}]}',
     "messages[2].content", "lone surrogate"),
    (b'{"t": "\\udc00\\ud800"}', "t", "lone surrogate"),
    (b'{"k\\udfff": 1}', 'the record\'s key "k\\udfff"', "lone surrogate"),
    (b'{"a": {"k\\ud800": 1}}', 'a: key "k\\ud800"', "lone surrogate"),
    (b'{"a": {"b": NaN}}', "a.b", "NaN is not a number"),
    (b'{"a": [Infinity]}', "a[0]", "the number is infinite"),
    (b'{"a": -Infinity}', "a", "the number is infinite"),
    (b'{"a": 1e400}', "a", "the number is infinite"),
    (b'{"m": [1, {"k": "\\u0000"}]}', "m[1].k", "U+0000"),
    (b'{"big": [0, 99999999999999999999]}', "big[1]", "2**63"),
    (b'{"x.y": {"": -9223372036854775808}}', '["x.y"][""]', "2**63"),
]  # fmt: skip


@pytest.mark.usefixtures("import_parser")
def test_each_bad_value_of_an_import_line_is_named_by_field_and_line(
    service: Service, tmp_path: Path
) -> None:
    source, rejects = tmp_path / "in.jsonl", tmp_path / "rejects.jsonl"
    good = b'{"ok": "\\ud83d\\ude00"}'  # a surrogate pair is one character: kept
    last = b'{"ok": "\\ud83d\\ude00", "n": 2}'
    source.write_bytes(b"\n".join([good, *(line for line, _, _ in BAD_LINES), last]) + b"\n")
    result = service.execute("data/import", {"dbHandle": "default", "collection": "c",
                                             "input": str(source), "onError": "skip",
                                             "rejects": str(rejects)})  # fmt: skip
    assert (result["imported"], result["failed"]) == (2, len(BAD_LINES))
    set_aside = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    assert len(set_aside) == len(BAD_LINES)
    for i, (rejected, (_, field, word)) in enumerate(zip(set_aside, BAD_LINES, strict=True)):
        assert rejected["line"] == i + 2
        assert rejected["reason"].startswith(f"{field}: ") and word in rejected["reason"], rejected
    # The result lists the first errors (a bounded sample), each as the rejects file has it.
    for error in result["errors"]:
        assert error["reason"] == set_aside[error["line"] - 2]["reason"]
    listed = service.execute("data/list", {"collection": "c"})["items"]
    assert [r["ok"] for r in listed] == ["\U0001f600", "\U0001f600"]


@pytest.mark.parametrize(("line", "field", "word"), BAD_LINES[:6])
def test_an_aborted_import_says_line_and_field(
    service: Service, tmp_path: Path, line: bytes, field: str, word: str
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"ok": 1}\n' + line + b"\n")
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/import", {"dbHandle": "default", "collection": "c",
                                        "input": str(source), "onError": "abort"})  # fmt: skip
    assert f"line 2: {field}: " in caught.value.message and word in caught.value.message


_STRINGS = st.text(alphabet=st.characters(codec=None, min_codepoint=0x20, max_codepoint=0xDFFF),
                   max_size=4)  # fmt: skip


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_STRINGS, st.one_of(_STRINGS, st.lists(_STRINGS, max_size=3)), max_size=3))
def test_a_refused_line_names_the_field_the_value_rule_names(record: dict[str, object]) -> None:
    """Whatever strings a line holds (lone surrogates included, escaped as JSON writes them), the
    importer's reason is the message ``check_value`` gives that record, or the line is kept."""
    import json

    line = json.dumps(record).encode()  # ensure_ascii: a lone surrogate is written as its escape
    [item] = parse_chunk([line], None).items
    try:
        check_value(record, "")
        expected: str | None = None
    except DbHandlesError as exc:
        expected = exc.message
    assert (item.reason if isinstance(item, Rejected) else None) == expected
