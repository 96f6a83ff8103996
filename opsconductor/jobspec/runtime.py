"""What flows between the API, the job-run workflow and the step activities at run time.

Everything here is plain data, safe to import in workflow code, and small enough for history:
outputs are capped by the activities before they are returned.
"""

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


class RunRequest(BaseModel):
    """The workflow's one input: everything decided when the run was accepted."""

    run_id: uuid.UUID
    job_id: uuid.UUID
    job_name: str
    job_version: int
    plan: Plan
    parameters: dict[str, Any]
    targets: list[TargetSnapshot]
    triggered_by: str
    request_id: str | None = None


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
