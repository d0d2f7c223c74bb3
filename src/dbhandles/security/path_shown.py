"""What a remote non-admin actor is shown of a path, and where the service's own state is
(re-exported by ``security/paths.py``, the one path policy, which decides on these places)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from dbhandles.context import ACTOR_PATTERN, Context
from dbhandles.errors import DbHandlesError
from dbhandles.settings import Settings

__all__ = [
    "DATA_SHOWN",
    "FILE_RESULTS",
    "HOME_SHOWN",
    "is_service_state",
    "mask_error",
    "shown",
    "shown_result",
    "shown_text",
]

_ACTOR = re.compile(ACTOR_PATTERN)


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def is_service_state(settings: Settings, real: Path) -> bool:
    """Whether ``real`` is the home or inside it (the default database and its side files, the
    tokens, ``server.json``, session files)."""
    home = Path(os.path.realpath(settings.home))
    return _under(real, home) or _under(real, Path(os.path.abspath(settings.home)))


# -- what a remote non-admin actor is shown of a path -----------------------------------------------

#: How a file of the home is shown to a remote non-admin actor: where the home is, is not its to
#: know (``<home>/default.sqlite``).
HOME_SHOWN = "<home>"
#: How the data root is shown to it: the default data root lies next to the home
#: (``<home>-data``), so its path would show where the home is. The actor's own files are shown
#: by their names in its space (``notes.sqlite``: what it gives to name them), those of another
#: space as ``<data>/bob/shared.sqlite``.
DATA_SHOWN = "<data>"
#: The commands whose results name files: their envelopes are shown through ``shown_text``
#: (``Service.execute``; a job's result is one of these commands' results). Record data is never
#: in them, so no value of a record is ever rewritten.
FILE_RESULTS = frozenset({
    "data/open", "data/list-handles", "data/import", "data/export", "data/job-start",
    "data/job-status", "data/job-list", "data/job-cancel", "data/list-grants", "data/grant",
    "data/revoke",
})  # fmt: skip
#: The commands of FILE_RESULTS whose results are job records (``_shown_job``).
JOB_RESULTS = frozenset({"data/job-start", "data/job-status", "data/job-list", "data/job-cancel"})


def _spellings(settings: Settings, context: Context) -> list[tuple[str, str]]:
    """``(prefix, shown as)`` for the actor's space, the data root and the home, each as
    configured and real, longest first (a space lies in the data root)."""
    pairs: dict[str, str] = {}
    home = settings.home
    for spelled in (os.path.abspath(home), os.path.realpath(home)):
        pairs[spelled.rstrip(os.sep) + os.sep] = HOME_SHOWN + "/"
    root = settings.space_root()
    roots = {str(root), os.path.abspath(settings.data_root or root)}
    for spelled in roots:
        pairs[spelled.rstrip(os.sep) + os.sep] = DATA_SHOWN + "/"
        if _ACTOR.fullmatch(context.actor):
            pairs[os.path.join(spelled, context.actor) + os.sep] = ""
    return sorted(pairs.items(), key=lambda pair: len(pair[0]), reverse=True)


def _masked(context: Context) -> bool:
    return not context.trusted_local and not context.is_admin


def shown_text(settings: Settings, context: Context, text: str) -> str:
    """``text`` (a path, a message naming paths) as a remote non-admin actor sees it: a file of
    its own space by its name there, another file of the data root as ``<data>/...``, a file of
    the home as ``<home>/...``; as is for the local user and administrators."""
    if not _masked(context) or os.sep not in text:
        return text
    for prefix, replacement in _spellings(settings, context):
        if prefix in text:
            text = text.replace(prefix, replacement)
    return text


def shown(settings: Settings, context: Context, path: str | None) -> str | None:
    """A path in a result or event, as ``context`` is shown it (``shown_text``); a file of the
    home is shown by its name only (``<home>/default.sqlite``)."""
    if path is None or not _masked(context):
        return path
    if is_service_state(settings, Path(path)):
        return f"{HOME_SHOWN}/{Path(path).name}"
    return shown_text(settings, context, path)


def shown_result(
    settings: Settings, context: Context, command: str, envelope: dict[str, object]
) -> dict[str, object]:
    """The success envelope of ``command`` as a remote non-admin actor is shown it: every text of
    a result that names files (``FILE_RESULTS``) through ``shown_text``; unchanged otherwise."""
    if command not in FILE_RESULTS or not _masked(context):
        return envelope
    shown_value = _shown_value(settings, context, envelope, command in JOB_RESULTS)
    assert isinstance(shown_value, dict)
    return shown_value


def mask_error(
    settings: Settings, context: Context, exc: DbHandlesError, given: object = None
) -> None:
    """Show a remote non-admin actor neither the home nor the data root in ``exc``'s words (changed
    in place, its code and field kept): the backstop every command's error passes
    (``Service.execute``). Each spelling of the home (as configured, and real) becomes ``<home>``,
    also at the very end of the message; the data root becomes ``<data>`` and the actor's own space
    nothing, as ``shown_text`` shows them in results (the default data root lies next to the home).

    A spelling that a string of the caller's params holds (``given``: keys and values at any depth,
    ``_holds``) is left as it is: the caller named it, and masking only its answers would tell it
    that it had named the home or the data root.
    """
    if not _masked(context) or os.sep not in exc.message:
        return
    message = _masked_message(settings, context, exc.message, given)
    if message != exc.message:
        exc.message = message
        exc.args = (message,)


def _masked_message(settings: Settings, context: Context, message: str, given: object) -> str:
    """``message`` as ``mask_error`` shows it (``given``: the params of the call it answers)."""
    for prefix, replacement in _spellings(settings, context):
        if prefix == os.sep or prefix not in message + os.sep:
            continue
        home = replacement == HOME_SHOWN + "/"
        # The home is looked for as the caller could spell it, without a trailing separator.
        if _holds(given, prefix[:-1] if home else prefix):
            continue
        message = message.replace(prefix, replacement)
        if home and message.endswith(prefix[:-1]):  # "... the home is /srv/home"
            message = message[: -len(prefix) + 1] + HOME_SHOWN
    return message


def _holds(given: object, text: str) -> bool:
    """Whether a string of ``given`` (params as sent: keys and values, at any depth) holds
    ``text``. A walk with its own stack, not ``str(given)`` nor recursion: params nested past
    Python's recursion limit (a body may nest 1024 levels, a Python caller any number) must get
    their error envelope, never a ``RecursionError`` (docs/security.md, "Audit log")."""
    stack = [given]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if text in value:
                return True
        elif isinstance(value, Mapping):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
        elif hasattr(value, "__pydantic_fields__"):  # a Python caller's params model
            stack.extend(vars(value).values())
    return False


def _shown_value(settings: Settings, context: Context, value: object, jobs: bool = False) -> object:
    # A result of FILE_RESULTS is a few levels deep (a job's summary is bounded), so recursion is safe.
    if isinstance(value, str):
        return shown_text(settings, context, value)
    if isinstance(value, dict):
        if jobs and "jobId" in value:
            return _shown_job(settings, context, value)
        return {key: _shown_value(settings, context, item, jobs) for key, item in value.items()}
    if isinstance(value, list):
        return [_shown_value(settings, context, item, jobs) for item in value]
    return value


def _shown_job(settings: Settings, context: Context, job: dict[str, object]) -> dict[str, object]:
    """A job record (``commands/jobs.row_info``) as its actor is shown it: its result as the
    command's own result is shown, its ``params`` as the actor gave them, and its ``error`` in the
    words the same call answers at once (``mask_error`` given the job's params): a path the caller
    gave is echoed as given in both, so neither tells it that it named the home."""
    given = job.get("params")
    shown: dict[str, object] = {}
    for key, item in job.items():
        if key == "params":
            shown[key] = item
        elif key == "error" and isinstance(item, dict) and isinstance(item.get("error"), str):
            words = item["error"]
            if os.sep in words:
                words = _masked_message(settings, context, words, given)
            shown[key] = {**item, "error": words}
        else:
            shown[key] = _shown_value(settings, context, item)
    return shown
