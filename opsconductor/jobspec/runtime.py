"""What flows between the API, the job-run workflow and the step activities at run time.

Everything here is plain data, safe to import in workflow code, and small enough for history:
outputs are capped by the activities before they are returned.
"""

import json
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from opsconductor.jobspec.plan import Plan


class RunStatus(StrEnum):
    queued = "queued"
    running = "running"
    waiting_approval = "waiting_approval"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class StepStatus(StrEnum):
    pending = "pending"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    skipped = "skipped"
    cancelled = "cancelled"


class SkipReason(StrEnum):
    condition = "condition"
    upstream_failed = "upstream_failed"
    # The run stopped starting targets (max_failed_targets) or ended before the step's turn.
    run_aborted = "run_aborted"


class TargetSnapshot(BaseModel):
    """A target as it was when the run started; later edits do not change a running run."""

    id: uuid.UUID
    name: str
    address: str
    port: int
    protocol: str
    credential_id: uuid.UUID | None = None
    os: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    vars: dict[str, Any] = Field(default_factory=dict)

    def context(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"credential_id"})


class StepOutcome(BaseModel):
    step_id: str
    target: str | None = None
    status: StepStatus
    reason: str | None = None
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    outputs: dict[str, Any] = Field(default_factory=dict)
    attempts: int = 0
    # A failure of an `on_error: continue` step: recorded, but it fails neither the target
    # nor the steps that need it.
    tolerated: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def failed(self) -> bool:
        """A failure, or a skip caused by one upstream (which its dependants see as one)."""
        return self.status is StepStatus.failed or (
            self.status is StepStatus.skipped and self.reason == SkipReason.upstream_failed
        )

    @property
    def blocks_dependants(self) -> bool:
        return self.failed and not self.tolerated

    def bounded(self, limit: int) -> "StepOutcome":
        """A copy whose output fits `limit` characters per field, for crossing a workflow
        boundary where many outcomes share one payload."""
        outputs = self.outputs
        if len(json.dumps(outputs, default=str)) > limit:
            outputs = {"truncated": True}
        return self.model_copy(
            update={
                "stdout": self.stdout[-limit:],
                "stderr": self.stderr[-limit:],
                "outputs": outputs,
            }
        )

    def without_output(self) -> "StepOutcome":
        """A copy with its state only, for outcomes no later step reads."""
        return self.model_copy(update={"stdout": "", "stderr": "", "outputs": {}})

    def context(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "failed": self.failed,
            "succeeded": self.status is StepStatus.succeeded,
            "skipped": self.status is StepStatus.skipped,
            "exit_code": self.exit_code,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "outputs": self.outputs,
        }


DEFAULT_BATCH_SIZE = 100


class RunRequest(BaseModel):
    """The workflow's one input: everything decided when the run was accepted.

    Targets travel by name only: their snapshots stay in the run row and each target batch
    loads its own, so a run over 10,000 targets starts with an input far below Temporal's 2 MB
    payload limit.
    """

    run_id: uuid.UUID
    job_id: uuid.UUID
    job_name: str
    job_version: int
    plan: Plan
    parameters: dict[str, Any]
    target_names: list[str]
    triggered_by: str
    request_id: str | None = None
    parent_run_id: uuid.UUID | None = None
    # Targets per child workflow; bounds every batch history whatever the size of the run.
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, ge=1)


class BatchRequest(BaseModel):
    """One child workflow's share of a per-target segment: the targets at
    [offset, offset + count) of the run's snapshot run the segment's steps as a DAG."""

    run_id: uuid.UUID
    plan: Plan
    # The run's template context (params, job, run) as of the batch's start.
    base: dict[str, Any]
    offset: int
    count: int
    step_ids: list[str]
    concurrency: int = Field(ge=1)
    # max_failed_targets, in targets, and how many had failed before this batch started.
    failure_allowance: int | None = None
    failed_before: int = 0
    # Targets of this batch that took part in earlier segments, and their outcomes so far.
    started: list[str] = Field(default_factory=list)
    prior: dict[str, list[StepOutcome]] = Field(default_factory=dict)
    # Steps whose output a later step reads; the others come back with their state only.
    keep_output: list[str] = Field(default_factory=list)
    run_once: list[StepOutcome] = Field(default_factory=list)


class BatchResult(BaseModel):
    outcomes: dict[str, list[StepOutcome]]
    started: list[str]


class StepRequest(BaseModel):
    """One step on one target (or once for the run), as sent to a protocol activity.

    `with_` is still a template: the activity renders it, so `secret('name')` is resolved on
    the worker and never enters history.
    """

    run_id: uuid.UUID
    step_id: str
    action: str
    with_: dict[str, Any]
    context: dict[str, Any]
    target: TargetSnapshot | None = None
    credential: str | None = None


class StepResult(BaseModel):
    """What a step activity returns, or attaches to its failure so the last attempt's output
    is still shown."""

    attempt: int = 1
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    outputs: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


class RunSummary(BaseModel):
    run_id: uuid.UUID
    status: RunStatus
    succeeded_targets: list[str]
    failed_targets: list[str]
    reason: str | None = None
    # The outputs of the run's run-once steps, by step id: what a parent's job.run step sees.
    outputs: dict[str, Any] = Field(default_factory=dict)
