"""``data/job-start``, ``data/job-status``, ``data/job-list``, ``data/job-cancel``: long commands as jobs.

The jobs themselves (threads, limits, cancellation) are ``jobs.JobRunner``, one per service
(``service.jobs``); these handlers parse params and shape results. See docs/server.md, "Jobs".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

import orjson
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from dbhandles.clock import iso_from_epoch
from dbhandles.commands.base import JOB_COMMAND_NAMES, Call, CallerParams, Result, command
from dbhandles.commands.grammar import params_of
from dbhandles.errors import JobCancelled

if TYPE_CHECKING:
    from dbhandles.service import Service
    from dbhandles.store.jobs import JobRow

__all__ = [
    "AFTER_INTERRUPTION",
    "JOB_COMMAND_NAMES",
    "Cancellable",
    "JobInfo",
    "JobParams",
    "JobStartParams",
    "bounded_result",
    "cancel_check",
    "interrupted_error",
    "job_outcome",
    "params_summary",
    "row_info",
]


#: What a job that was interrupted (its process died) left behind, by command (docs/server.md, "Jobs").
AFTER_INTERRUPTION = {
    "data/import": "the batches it committed are kept (at least the records its last progress "
    "shows as imported); run the same import again to store the rest (records already stored are "
    "skipped)",
    "data/export": "no final file was written (the output is renamed into place only at the end); "
    "run the export again",
    "data/copy": "the records it copied are kept (and, for a move, only those verified in the "
    "target were deleted from the source); run it again to copy the rest (copied records are "
    "skipped)",
    "data/vacuum": "a vacuum is all or nothing: the database is as it was, or vacuumed; run it "
    "again if needed",
}


def interrupted_error(row: JobRow) -> dict[str, Any]:
    """The ``error`` of a job whose process ended before the job did (``interrupted``)."""
    after = AFTER_INTERRUPTION.get(row.command, "run it again")
    return {
        "code": "interrupted",
        "error": f"{row.command} was interrupted: the process that ran it (pid {row.owner_pid} on "
        f"{row.owner_host}) ended before the job did; {after}",
    }


class Cancellable(Protocol):
    """What ``cancel_check`` reads of a job (``jobs.Job``)."""

    command: str
    cancel_requested: bool
    cancel_reason: str | None


def cancel_check(job: Cancellable) -> Callable[[], JobCancelled | None]:
    """The stop check (``budget.stopping``) of ``job``: once it is cancelled, the error of a job
    whose running statement was interrupted (by its connection's progress handler)."""

    def check() -> JobCancelled | None:
        if not job.cancel_requested:
            return None
        why = f" ({job.cancel_reason})" if job.cancel_reason else ""
        after = AFTER_INTERRUPTION.get(job.command, "run it again")
        return JobCancelled(
            f"{job.command} cancelled{why}: the statement it was running was interrupted; {after}"
        )

    return check


#: The most a job's result keeps in the job table, as JSON; a larger one keeps its counts only.
MAX_RESULT_BYTES = 64 * 1024
#: The longest text a params summary keeps (an error message: four times that).
MAX_TEXT = 1000
_SECRET = re.compile(r"pass|secret|token|credential|dsn|url", re.IGNORECASE)


def _iso(ms: int | None) -> str | None:
    return None if ms is None else iso_from_epoch(ms / 1000)


def _summarise(value: Any, depth: int) -> Any:
    if isinstance(value, dict):
        if depth >= 2:
            return "…"
        return {k: _summarise(v, depth + 1) for k, v in value.items() if not _SECRET.search(k)}
    if isinstance(value, list):
        return f"[{len(value)} items]"
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return value[:MAX_TEXT] + "…"
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        return str(value)  # JSON has the number, orjson (and the job table) do not
    return value


def params_summary(params: BaseModel) -> dict[str, Any]:
    """What the job table keeps of a job's params: the ones given (camelCase), long text cut,
    lists counted, nothing nested deeper than ``from.dbHandle``, and no key that names a secret
    (password, token, url, ...). Only the job's actor and administrators read it."""
    given = params.model_dump(
        mode="json", by_alias=True, exclude_defaults=True, exclude={"context", "session_id"}
    )
    summary: dict[str, Any] = _summarise(given, 0)
    return summary if len(orjson.dumps(summary)) <= 8 * MAX_TEXT else {"truncated": True}


def job_outcome(
    envelope: dict[str, Any] | None,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """``(result, error)`` of a finished job's envelope, as ``data/job-status`` shows them."""
    if envelope is None:
        return None, None
    if envelope.get("success") is True:
        skip = ("success", "timestamp", "sessionId")
        return {k: v for k, v in envelope.items() if k not in skip}, None
    return None, {k: envelope[k] for k in ("code", "error", "field") if k in envelope}


def bounded_result(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """``result`` as the table keeps it: whole up to ``MAX_RESULT_BYTES`` of JSON, else its counts."""
    if result is None or len(orjson.dumps(result)) <= MAX_RESULT_BYTES:
        return result
    kept: dict[str, Any] = {
        k: _summarise(v, 2) for k, v in result.items() if not isinstance(v, dict | list)
    }
    kept["truncated"] = True
    return kept


def row_info(row: JobRow) -> dict[str, Any]:
    """A row as ``data/job-status`` shows it (camelCase)."""
    return {
        "jobId": row.job_id,
        "command": row.command,
        "actor": row.actor,
        "status": row.status,
        "params": row.params,
        "progress": row.progress,
        "cancelRequested": row.cancel_requested,
        "createdAt": _iso(row.created_at),
        "startedAt": _iso(row.started_at),
        "finishedAt": _iso(row.finished_at),
        "result": row.result,
        "error": row.error,
    }


def _job_start_schema(schema: dict[str, Any]) -> None:
    """``params`` are the params of ``command`` (required when that command has required ones)."""
    from dbhandles.commands.base import COMMANDS

    branches = []
    for name in JOB_COMMAND_NAMES:
        required = any(f.is_required() for f in COMMANDS[name].params.model_fields.values())
        branch: dict[str, Any] = {
            "properties": {"command": {"const": name}, "params": params_of(name)}
        }
        if required:
            branch["required"] = ["params"]
        branches.append(branch)
    schema["anyOf"] = branches


class JobStartParams(CallerParams):
    model_config = ConfigDict(json_schema_extra=_job_start_schema)

    command: Annotated[str, WithJsonSchema({"type": "string", "enum": list(JOB_COMMAND_NAMES)})]
    """The long command to run: data/import, data/export, data/copy or data/vacuum."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Its parameters, as for the command itself (checked when the job starts)."""


class JobParams(CallerParams):
    job_id: str = Field(min_length=1, max_length=64)
    """The jobId that data/job-start (or data/job-list) gave."""


class JobInfo(Result):
    job_id: str
    command: str
    actor: str
    status: Literal["queued", "running", "done", "failed", "cancelled", "interrupted"]
    params: dict[str, Any] | None = None
    progress: dict[str, Any]
    cancel_requested: bool
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class JobListParams(CallerParams):
    pass


class JobListResult(Result):
    jobs: list[JobInfo]


@command(
    "data/job-start",
    params=JobStartParams,
    result=JobInfo,
    operation="write",
    summary="Start data/import, data/export, data/copy or data/vacuum as a job on the server; answer its jobId at once.",
    example='jtag data/job-start --command=data/import --params=\'{"input": "/datasets/a.jsonl", "output": "/datasets/a.sqlite"}\'',
)
def job_start(service: Service, params: JobStartParams, call: Call) -> JobInfo:
    job = service.jobs.start(params.command, params.params, call.context)
    return JobInfo.model_validate(service.jobs.get(job.id, call.context))


@command(
    "data/job-status",
    params=JobParams,
    result=JobInfo,
    operation="read",
    positional="job_id",
    summary="A job's status, progress counts, and its result or error once finished (from any process on the home).",
    example='jtag data/job-status --jobId="<jobId>"',
)
def job_status(service: Service, params: JobParams, call: Call) -> JobInfo:
    return JobInfo.model_validate(service.jobs.get(params.job_id, call.context))


@command(
    "data/job-list",
    params=JobListParams,
    result=JobListResult,
    operation="read",
    summary="The caller's jobs (every actor's for an administrator): running, queued and recently finished.",
    example="jtag data/job-list",
)
def job_list(service: Service, params: JobListParams, call: Call) -> JobListResult:
    jobs = service.jobs.list(call.context)
    return JobListResult(jobs=[JobInfo.model_validate(j) for j in jobs])


@command(
    "data/job-cancel",
    params=JobParams,
    result=JobInfo,
    operation="write",
    positional="job_id",
    summary="Cancel a job: a queued one at once, a running import at its next chunk (committed batches stay).",
    example='jtag data/job-cancel --jobId="<jobId>"',
)
def job_cancel(service: Service, params: JobParams, call: Call) -> JobInfo:
    return JobInfo.model_validate(service.jobs.cancel(params.job_id, call.context))
