"""The CLI's session: one id per home folder, kept in ``<home>/cli-session`` across ``jtag`` runs.

Query cursors belong to the session that opened them, so ``jtag data/query-open`` and a later
``jtag data/query-next`` must run in the same session: the id is created once (mode 0600) and reused,
in-process and against a server alike. ``--new-session`` starts a fresh one; ``JTAG_SESSION_ID``
overrides the file for one environment.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Mapping
from pathlib import Path

__all__ = ["SESSION_FILE", "cli_session", "new_session", "read_session", "session_path"]

SESSION_FILE = "cli-session"
_VALID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")


def session_path(home: Path) -> Path:
    return home.expanduser() / SESSION_FILE


def read_session(home: Path) -> str | None:
    """The stored session id, or None when there is none (or it is not a valid id)."""
    try:
        text = session_path(home).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if _VALID.match(text) else None


def _write(path: Path, session_id: str, *, replace: bool) -> bool:
    """Write the id readable only by its owner; False if another ``jtag`` created it first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not replace:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as fh:
            fh.write(session_id + "\n")
        return True
    tmp = path.with_name(f".{SESSION_FILE}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(session_id + "\n")
    os.replace(tmp, path)
    return True


def new_session(home: Path) -> str:
    """Start a fresh session: a new id replaces the stored one (or is used alone if it cannot be
    stored, e.g. a read-only home)."""
    session_id = str(uuid.uuid4())
    with contextlib.suppress(OSError):
        _write(session_path(home), session_id, replace=True)
    return session_id


def cli_session(
    home: Path, environ: Mapping[str, str], *, new: bool = False
) -> tuple[str, str | None]:
    """The session id for this run, and the id it replaced (when ``new`` ended a stored session).

    ``JTAG_SESSION_ID`` wins; otherwise the stored id, created on first use.
    """
    previous = read_session(home) if new else None
    fresh = new_session(home) if new else None
    explicit = (environ.get("JTAG_SESSION_ID") or "").strip()
    if explicit:
        return explicit, previous
    if fresh is not None:
        return fresh, previous
    stored = read_session(home)
    if stored is not None:
        return stored, None
    session_id = str(uuid.uuid4())
    try:
        if not _write(session_path(home), session_id, replace=False):
            # Another jtag created it between our read and our write: use theirs.
            return read_session(home) or new_session(home), None
    except OSError:
        pass  # a home we cannot write: this run still gets a session, it just is not kept
    return session_id, None
