"""How ``jtag`` prints an envelope: JSON (the default, for programs) or ``--format=table`` (for people)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

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


#: C0 controls, DEL, C1 controls, and the bidirectional overrides and isolates (which reorder what
#: a terminal shows): never printed raw in a table, whoever wrote them (a record, a command name an
#: unauthenticated request gave, which ``data/audit`` shows).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible(text: str, keep: str = "") -> str:
    """``text`` with every control character (but those in ``keep``) shown as an escape (``\\x1b``,
    ``\\u202e``), so printing it cannot drive the terminal. JSON output needs none: orjson
    escapes C0 controls, and its text is read by programs."""
    return _CONTROL.sub(lambda m: m.group() if m.group() in keep else _escape(m), text)


def render_json(envelope: dict[str, Any]) -> str:
    return orjson.dumps(envelope, option=orjson.OPT_INDENT_2).decode()


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
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    text = visible(text.replace("\n", " "))
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"


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
