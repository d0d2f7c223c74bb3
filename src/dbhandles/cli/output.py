"""How ``jtag`` prints an envelope: JSON (the default, for programs) or ``--format=table`` (for people)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from dbhandles.security.names import UNSHOWABLE_BEYOND_C0, UNSHOWABLE_CLASS
from dbhandles.values import dump_json

__all__ = ["render", "render_json", "render_table", "table", "visible"]

#: Fields shown first, in this order, when a row has them; the rest follow in first-seen order.
_LEADING = ("handle", "id", "name", "adapter", "isDefault", "recordCount")
_TRAILING = ("version", "createdAt", "updatedAt", "openedAt", "lastUsedAt")
_MAX_CELL = 48
#: Columns of the tables that have a fixed shape, most telling first (the terminal may cut the end).
_COLUMNS: dict[str, tuple[str, ...]] = {
    "tokens": ("tokenId", "actor", "isAdmin", "createdAt", "expiresAt", "revokedAt"),
    "entries": ("timestamp", "actor", "command", "operation", "success", "code", "collection",
                "recordId", "handle", "sessionId"),
}  # fmt: skip
_ENVELOPE_KEYS = ("success", "timestamp", "sessionId")


#: The one display rule of every format ``jtag`` prints (docs/security.md): the Unicode categories
#: Cc, Cf, Zl and Zp (``security/names.py``: controls, bidirectional controls and marks, zero-width
#: and other invisible format characters, line and paragraph separators) are never printed raw,
#: whoever wrote them (a record, a
#: command name an unauthenticated request gave, which ``data/audit`` shows): a table shows them as
#: ``\x1b``/``\u202e``, JSON as ``\u001b``/``\u202e`` (the same text to a JSON reader).
_CONTROL = re.compile(f"[{UNSHOWABLE_CLASS}]")
#: What JSON output escapes itself: orjson already escapes C0 controls (and ``"``, ``\\``).
_JSON_RAW = re.compile(f"[{UNSHOWABLE_BEYOND_C0}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def visible(text: str, keep: str = "") -> str:
    """``text`` with every character of the display rule (but those in ``keep``) shown as an
    escape (``\\x1b``, ``\\u202e``), so printing it cannot drive the terminal or reorder what it
    shows. JSON output escapes the same characters (``render_json``)."""
    return _CONTROL.sub(lambda m: m.group() if m.group() in keep else _escape(m), text)


def render_json(envelope: dict[str, Any]) -> str:
    """``envelope`` as indented JSON, every character of the display rule (``_CONTROL``) written as
    a ``\\uXXXX`` escape: the same JSON to a program, nothing that drives a terminal."""
    text = dump_json(envelope, orjson.OPT_INDENT_2).decode()
    # Outside strings JSON has only ASCII, so every match lies inside a string, where the escape
    # means the same character.
    return _JSON_RAW.sub(_json_escape, text)


def _json_escape(match: re.Match[str]) -> str:
    """One character as JSON's ``\\uXXXX`` escape (a surrogate pair past U+FFFF)."""
    units = match.group().encode("utf-16-be")
    return "".join(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2))


def render(envelope: dict[str, Any], fmt: str) -> str:
    """The text ``jtag`` prints for ``envelope`` in format ``fmt`` (``json`` or ``table``)."""
    return render_table(envelope) if fmt == "table" else render_json(envelope)


def _cell(value: Any, key: str = "") -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key.endswith("At") and isinstance(value, int) and value > 10**11:
        return datetime.fromtimestamp(value / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    text = value if isinstance(value, str) else dump_json(value).decode()
    # Cut before escaping, so that the cut never splits an escape (``\\u2028`` into ``\\u20``).
    text = text.replace("\n", " ")
    text = text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"
    return visible(text)


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    seen: list[str] = []
    for row in rows:
        for key in row:
            if key not in seen:
                seen.append(key)
    lead = [k for k in _LEADING if k in seen]
    tail = [k for k in _TRAILING if k in seen]
    return lead + [k for k in seen if k not in lead and k not in tail] + tail


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A plain-text table with a header rule; columns default to every key, id-like ones first."""
    keys = list(columns) if columns is not None else _columns(rows)
    if not keys:
        return "(no columns)"
    cells = [[_cell(row.get(c), c) for c in keys] for row in rows]
    cols = [visible(c.replace("\n", " ")) for c in keys]  # record keys are anyone's text too
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(cols)]
    import shutil  # here: only a table asks the terminal's width, and shutil costs ~1.5 ms to import

    width = shutil.get_terminal_size((160, 24)).columns
    # Drop trailing columns that would not fit the terminal rather than wrapping every line.
    while len(cols) > 1 and sum(widths) + 2 * (len(widths) - 1) > width:
        cols, widths, cells = cols[:-1], widths[:-1], [r[:-1] for r in cells]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend(
        "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )
    return "\n".join(lines)


def _summary(envelope: dict[str, Any], skip: str | None) -> list[str]:
    pairs = [(k, v) for k, v in envelope.items() if k not in _ENVELOPE_KEYS and k != skip]
    if not pairs:
        return []
    pairs = [(visible(k), v) for k, v in pairs]
    width = max(len(k) for k, _ in pairs)
    return [
        f"{k.ljust(width)}  {_cell(v, k) if not isinstance(v, str) else visible(v, keep=chr(10))}"
        for k, v in pairs
    ]


def render_table(envelope: dict[str, Any]) -> str:
    """Items, handles and collections as a table; any other result as aligned ``key  value`` lines."""
    if not envelope.get("success", False):
        code = visible(str(envelope.get("code", "error")))
        lines = [f"error [{code}]: {visible(str(envelope.get('error', '')), keep=chr(10))}"]
        if envelope.get("field"):
            lines.append(f"field: {visible(str(envelope['field']))}")
        return "\n".join(lines)
    for key in ("items", "handles", "collections", "fields", "results", "tokens", "entries"):
        rows = envelope.get(key)
        if isinstance(rows, list) and all(isinstance(r, dict) for r in rows):
            columns: Sequence[str] | None = _COLUMNS.get(key)
            if key == "handles":
                rows = [_handle_row(r) for r in rows]
                columns = list(rows[0]) if rows else None
            head = _summary(envelope, key)
            body = table(rows, columns) if rows else f"(no {key})"
            return "\n".join([*head, "", body] if head else [body])
    if isinstance(envelope.get("token"), str):
        # token/create: the one time the secret is shown.
        note = "store the token now: only its hash is kept, it cannot be shown again"
        return "\n".join([*_summary(envelope, None), "", note])
    if isinstance(envelope.get("data"), dict):
        record = envelope["data"]
        head = _summary(envelope, "data")
        return "\n".join([*head, "", table([{"field": k, "value": v} for k, v in record.items()])])
    return "\n".join(_summary(envelope, None)) or "ok"


def _handle_row(row: dict[str, Any]) -> dict[str, Any]:
    config = row.get("config") or {}
    where = config.get("path") or config.get("url") or config.get("dsn") or ""
    mode = config.get("mode", "")
    return {
        "handle": row.get("handle"),
        "adapter": row.get("adapter"),
        "where": where,
        "mode": mode,
        "isDefault": row.get("isDefault"),
        "aliases": ", ".join(row.get("aliases") or []),
        "openedAt": row.get("openedAt"),
        "lastUsedAt": row.get("lastUsedAt"),
    }
