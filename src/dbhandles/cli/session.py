"""The CLI's session: one id per home folder, kept in ``<home>/cli-session`` across ``jtag`` runs.

Query cursors belong to the session that opened them, so ``jtag data/query-open`` and a later
``jtag data/query-next`` must run in the same session: the id is created once (mode 0600) and reused,
in-process and against a server alike. ``--new-session`` starts a fresh one; ``JTAG_SESSION_ID``
overrides the file for one environment. Every id is held to the one session id rule
(``context.SESSION_ID_PATTERN``): a bad ``JTAG_SESSION_ID`` is ``invalid_params`` naming it, and a
session file that does not hold a valid id is replaced.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Mapping
from pathlib import Path

from dbhandles.context import SESSION_ID_RULE, is_session_id
from dbhandles.errors import InvalidParams
from dbhandles.values import json_text

__all__ = [
    "SESSION_ENV",
    "SESSION_FILE",
    "cli_session",
    "env_session",
    "new_session",
    "read_session",
    "refused_params",
    "run_session",
    "session_path",
    "without_session_env",
    "writes_session",
]

SESSION_FILE = "cli-session"
#: The environment variable that names the CLI's session instead of the session file.
SESSION_ENV = "JTAG_SESSION_ID"


def env_session(environ: Mapping[str, str]) -> str | None:
    """``JTAG_SESSION_ID`` (surrounding blanks ignored), ``None`` when unset or empty.

    Raises:
        InvalidParams: it is set but not a session id, blanks only included (field
            ``JTAG_SESSION_ID``): a value that is set is never silently ignored.
    """
    raw = environ.get(SESSION_ENV) or ""
    if not raw:
        return None
    # Only ASCII blanks are trimmed: a U+2028 (or any other character outside the rule) is refused.
    value = raw.strip(" \t\r\n")
    if not is_session_id(value):
        raise InvalidParams(
            f"{SESSION_ENV}: {json_text(raw[:129], 80)} is not a valid session id ({SESSION_ID_RULE}); fix "
            f"it or unset it to use the session kept in <home>/{SESSION_FILE}",
            field=SESSION_ENV,
        )
    return value


def session_path(home: Path) -> Path:
    return home.expanduser() / SESSION_FILE


def read_session(home: Path) -> str | None:
    """The stored session id, or None when there is none (or it is not a valid id)."""
    try:
        text = session_path(home).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if is_session_id(text) else None


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

    Raises:
        InvalidParams: ``JTAG_SESSION_ID`` is not a session id (``env_session``).
    """
    explicit = env_session(environ)  # checked first: a bad one changes nothing
    previous = read_session(home) if new else None
    fresh = new_session(home) if new else None
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


def writes_session(home: Path, environ: Mapping[str, str], *, new: bool = False) -> bool:
    """Whether ``cli_session`` would write the session file (and make the home holding it): a
    fresh session asked for (``new``), or none stored and none named by ``JTAG_SESSION_ID`` (a
    bad one writes nothing: it is refused)."""
    if new:
        return True
    try:
        explicit = env_session(environ)
    except InvalidParams:
        return False
    return not explicit and read_session(home) is None


def run_session(
    home: Path, environ: Mapping[str, str], params: Mapping[str, object], *, new: bool = False
) -> tuple[str | None, str | None, InvalidParams | None]:
    """What session one ``jtag`` run sends: ``(id, replaced id, refusal)``.

    An explicit ``--sessionId`` (``sessionId`` in ``params``) wins over the session file: the run
    sends that one id (over a server the file's id would reach it too, header and param, and
    disagree: ``session_mismatch``). Two explicit ids, ``JTAG_SESSION_ID`` and a different
    ``--sessionId``, are both sent, and the dispatcher refuses them as ``session_mismatch``, as the
    original's dispatcher refuses a ``sessionId`` that is not the caller's session. Otherwise
    ``cli_session``. A bad
    ``JTAG_SESSION_ID`` is returned, not raised: the run still reaches the dispatcher, which
    refuses and audits it as it does a bad ``--sessionId`` (``refused_params``).
    """
    try:
        session_id, ended = cli_session(home, environ, new=new)
    except InvalidParams as exc:
        return None, None, exc
    if "sessionId" in params and not environ.get(SESSION_ENV, "").strip(" \t\r\n"):
        return None, ended, None
    return session_id, ended, None


def without_session_env(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without ``JTAG_SESSION_ID``: ``run_session`` already decided what it means."""
    return {key: value for key, value in environ.items() if key != SESSION_ENV}


def refused_params(params: Mapping[str, object], environ: Mapping[str, str]) -> dict[str, object]:
    """``params`` carrying a bad ``JTAG_SESSION_ID`` as ``sessionId``: the dispatcher (in-process,
    or the server) refuses it before the command runs and audits the refusal, the very row a bad
    ``--sessionId`` leaves. The value is never a session id (``env_session`` refused it), so the
    command cannot run."""
    raw = environ.get(SESSION_ENV, "")
    assert not is_session_id(raw.strip(" \t\r\n"))
    return {**params, "sessionId": raw}
