"""``data/job-start``, ``data/job-status``, ``data/job-list``, ``data/job-cancel``: long commands as jobs.

The jobs themselves (threads, limits, cancellation) are ``jobs.JobRunner``, one per service
(``service.jobs``); these handlers parse params and shape results. See docs/server.md, "Jobs".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import ConfigDict, Field, WithJsonSchema

from dbhandles.commands.base import Call, CallerParams, Result, command
from dbhandles.commands.grammar import params_of

if TYPE_CHECKING:
    from dbhandles.service import Service

__all__ = ["JOB_COMMAND_NAMES", "JobInfo", "JobParams", "JobStartParams"]


#: The commands that run as jobs (``jobs.JOB_COMMANDS``).
JOB_COMMAND_NAMES = ("data/copy", "data/export", "data/import", "data/vacuum")


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
    status: Literal["queued", "running", "done", "failed", "cancelled"]
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
    return JobInfo.model_validate(job.info())


@command(
    "data/job-status",
    params=JobParams,
    result=JobInfo,
    operation="read",
    positional="job_id",
    summary="A job's status, progress counts, and its result or error once finished.",
    example='jtag data/job-status --jobId="<jobId>"',
)
def job_status(service: Service, params: JobParams, call: Call) -> JobInfo:
    return JobInfo.model_validate(service.jobs.get(params.job_id, call.context).info())


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
    return JobListResult(jobs=[JobInfo.model_validate(j.info()) for j in jobs])


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
    return JobInfo.model_validate(service.jobs.cancel(params.job_id, call.context).info())
