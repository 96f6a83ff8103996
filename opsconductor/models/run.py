"""Run records: what the API shows of runs, written by the workflow's run-record activities."""

import uuid
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import BigInteger, DateTime, Index, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from opsconductor.contracts.runs import DEFAULT_BATCH_SIZE, RunStatus, StepStatus
from opsconductor.models.base import id_field, timestamp_field

# Run-once steps have no target; an empty key (not NULL) keeps them unique per run.
RUN_ONCE_TARGET = ""


# -- tables ---------------------------------------------------------------------------------------


class Run(SQLModel, table=True):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_job_id_created_at", "job_id", "created_at"),
        # The runs list's order (services/runs.py::list_runs), read backwards: its first page
        # and each cursor page read only their rows (benchmarks/README.md, fix 13).
        Index("ix_runs_created_at_id", "created_at", "id"),
        # NULLs are distinct: only runs started with an Idempotency-Key are held to it.
        UniqueConstraint(
            "job_id",
            "triggered_by",
            "idempotency_key",
            name="uq_runs_job_id_triggered_by_idempotency_key",
        ),
    )

    id: uuid.UUID = id_field()
    job_id: uuid.UUID = Field(foreign_key="jobs.id")
    job_name: str = Field(max_length=64)
    job_version: int
    status: RunStatus = Field(sa_type=String(24), index=True)
    reason: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)
    targets: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONB)
    triggered_by: str = Field(max_length=128)
    # The user whose credential grants the run uses (docs/security.md): who started it, a
    # schedule's owner, or a parent run's. None only for runs stored before grants existed.
    run_as: str | None = Field(default=None, max_length=64)
    workflow_id: str = Field(max_length=128)
    request_id: str | None = Field(default=None, max_length=128)
    # A run started by another run's job.run step.
    parent_run_id: uuid.UUID | None = Field(default=None, foreign_key="runs.id", index=True)
    batch_size: int = DEFAULT_BATCH_SIZE
    # The client's Idempotency-Key of `POST /jobs/{id}/runs`; the run's id is derived from it.
    idempotency_key: str | None = Field(default=None, max_length=128)
    created_at: datetime = timestamp_field()
    started_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    finished_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class RunStep(SQLModel, table=True):
    __tablename__ = "run_steps"
    __table_args__ = (UniqueConstraint("run_id", "target", "step_id"),)

    id: uuid.UUID = id_field()
    run_id: uuid.UUID = Field(foreign_key="runs.id", index=True)
    target: str = Field(max_length=128)
    step_id: str = Field(max_length=64)
    status: StepStatus = Field(sa_type=String(16))
    reason: str | None = None
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    outputs: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)
    attempts: int = 0
    tolerated: bool = False
    started_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    finished_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class RunLogLine(SQLModel, table=True):
    __tablename__ = "run_logs"
    __table_args__ = (Index("ix_run_logs_run_id_id", "run_id", "id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInteger)
    run_id: uuid.UUID = Field(foreign_key="runs.id")
    target: str = Field(max_length=128)
    step_id: str = Field(max_length=64)
    # Which attempt of the step printed the line: a retried step, or one run again after its
    # worker shut down, prints each attempt's output anew.
    attempt: int = 1
    stream: str = Field(max_length=8)
    line: str
    created_at: datetime = timestamp_field()


# -- API schemas ----------------------------------------------------------------------------------


# Printable ASCII without spaces at either end: what clients put in (UUIDs, request hashes).
IDEMPOTENCY_KEY_PATTERN = r"^[!-~](?:[ -~]*[!-~])?$"


class RunCreate(SQLModel):
    parameters: dict[str, Any] = Field(default_factory=dict)
    targets: dict[str, Any] | None = Field(
        default=None, description="A target selector overriding the job's (groups, tags, names)"
    )


class RunAccepted(SQLModel):
    id: uuid.UUID
    status: RunStatus
    workflow_id: str


class RunListItem(SQLModel):
    id: uuid.UUID
    job_id: uuid.UUID
    job_name: str
    job_version: int
    status: RunStatus
    reason: str | None
    triggered_by: str
    parent_run_id: uuid.UUID | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RunStepPublic(SQLModel):
    id: str
    status: StepStatus
    reason: str | None
    exit_code: int | None
    stdout: str
    stderr: str
    outputs: dict[str, Any]
    attempts: int
    tolerated: bool
    started_at: datetime | None
    finished_at: datetime | None


class RunTargetPublic(SQLModel):
    name: str
    status: StepStatus
    steps: list[RunStepPublic]


class StepTargetCounts(SQLModel):
    id: str
    by_status: dict[StepStatus, int] = Field(
        description="Targets by this step's status; a target the step has not reached is pending"
    )


class RunTargetsSummary(SQLModel):
    total: int = Field(description="The run's targets")
    by_status: dict[StepStatus, int] = Field(description="Targets by their status")
    steps: list[StepTargetCounts] = Field(description="Per-target steps, in the order they began")


class RunDetail(RunListItem):
    parameters: dict[str, Any]
    summary: RunTargetsSummary
    targets: list[RunTargetPublic] | None = Field(
        default=None,
        description="Every target's steps, only with `?include=targets`; "
        "`GET /runs/{id}/targets` pages them",
    )
    steps: list[RunStepPublic] = Field(description="The run-once steps")
    workflow_id: str


class RunLogLinePublic(SQLModel):
    id: int
    target: str
    step_id: str
    attempt: int = Field(description="The step's attempt that printed the line, from 1")
    stream: str
    line: str
    created_at: datetime


class ApprovalCreate(SQLModel):
    step: str = Field(min_length=1)
    decision: Literal["approve", "reject"]
    comment: str = Field(default="", max_length=2000)
