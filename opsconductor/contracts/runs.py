"""The run's Temporal contract: the job-run workflow's input and result, its target batches,
the step outcomes it records, the run-record activities, approvals, ids, names and statuses.

Plain data, safe in workflow code, and small enough for history: outputs are capped by the
activities before they are returned.
"""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from opsconductor.contracts import activity_contract
from opsconductor.contracts.name_lists import NameList
from opsconductor.contracts.steps import Stream, TargetSnapshot, fitted, with_repeats
from opsconductor.jobspec.document import Order
from opsconductor.jobspec.plan import Plan, SegmentKind

JOB_RUN_WORKFLOW = "job-run"
TARGET_BATCH_WORKFLOW = "job-run-batch"
# The update an approver's decision is sent as, and the query the progress is read from.
DECIDE_APPROVAL_UPDATE = "decide-approval"
PROGRESS_QUERY = "progress"


def run_workflow_id(run_id: uuid.UUID) -> str:
    """A run's workflow id is its run id: a repeated start of one run cannot start a second
    workflow, and the API finds a run's workflow from its row alone."""
    return f"run-{run_id}"


def batch_workflow_id(run_workflow: str, segment: int, offset: int) -> str:
    return f"{run_workflow}-s{segment}-b{offset}"


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


class StepOutcome(BaseModel):
    step_id: str
    target: str | None = None
    status: StepStatus
    reason: str | None = None
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    outputs: dict[str, Any] = Field(default_factory=dict)
    # Outputs that repeat stdout or stderr, carried once as the stream (StepResult.text_outputs).
    text_outputs: dict[str, Stream] = Field(default_factory=dict)
    # The step's worker stored stdout, stderr and outputs on the record: recording this outcome
    # keeps them (what it carries here is only what later steps read, or nothing).
    output_recorded: bool = False
    # The step's worker stored this (succeeded) outcome on the record: not recorded again.
    state_recorded: bool = False
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
        outputs = fitted(self.outputs, limit)
        return self.model_copy(
            update={
                "stdout": self.stdout[-limit:],
                "stderr": self.stderr[-limit:],
                "outputs": outputs,
                "text_outputs": {} if outputs is not self.outputs else self.text_outputs,
            }
        )

    def without_output(self) -> "StepOutcome":
        """A copy with its state only, for outcomes no later step reads."""
        return self.model_copy(
            update={"stdout": "", "stderr": "", "outputs": {}, "text_outputs": {}}
        )

    def all_outputs(self) -> dict[str, Any]:
        """The outputs as the action documents them, the ones repeating a stream included."""
        return with_repeats(self.outputs, self.text_outputs, self.stdout, self.stderr)

    def context(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "failed": self.failed,
            "succeeded": self.status is StepStatus.succeeded,
            "skipped": self.status is StepStatus.skipped,
            "exit_code": self.exit_code,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "outputs": self.all_outputs(),
        }


DEFAULT_BATCH_SIZE = 100
# A batch's history stays under this many events: a fifth of Temporal's 51,200, leaving room
# for retries, signals and cancellation (docs/engine.md, "Scale: target batches").
BATCH_EVENT_BUDGET = 10_000
# History events one target spends on one step: its activity (scheduled, started, completed),
# the markers of its two records (running, final) and, at worst, a workflow task of its own
# (scheduled, started, completed) plus one more for what it unblocks. Measured: 8 to 10.
EVENTS_PER_TARGET_STEP = 10


def batch_size_for(plan: Plan, configured: int) -> int:
    """Targets per batch: the configured size, smaller when a batch runs so many steps that
    its history would pass `BATCH_EVENT_BUDGET`. 50 steps make batches of 20 targets."""
    if plan.document.strategy.order is Order.per_step:
        steps = 1  # every step is a segment (and batches) of its own
    else:
        steps = max(
            (len(s.step_ids) for s in plan.segments if s.kind is SegmentKind.per_target),
            default=1,
        )
    return max(1, min(configured, BATCH_EVENT_BUDGET // (EVENTS_PER_TARGET_STEP * steps)))


def fits_one_history(plan: Plan, targets: int) -> bool:
    """Whether all of a run's per-target steps over all its targets fit one batch's event
    budget. Only then may a run whose targets fit in one batch run that batch in its own
    workflow (workflows/job_run.py): each per-target segment is a batch of its own, and a run of
    50 per-step steps over 100 targets would otherwise put 50 batches' events in one history."""
    steps = sum(len(s.step_ids) for s in plan.segments if s.kind is SegmentKind.per_target)
    return targets * steps * EVENTS_PER_TARGET_STEP <= BATCH_EVENT_BUDGET


# Batches one execution of the job-run workflow runs before it continues as new (a fresh
# history, same workflow id). The parent's history grows ~33 kB and ~9 events per batch
# (docs/engine.md, "Scale: the parent continues as new"): 500 batches stay near 16 MB and
# 4,500 events, a third of Temporal's limits, whatever the number of targets.
DEFAULT_BATCHES_PER_HISTORY = 500
# The patch that lets a run continue as new: a run recorded before it never does.
CONTINUE_AS_NEW_PATCH = "job-run-continue-as-new"


class RunProgress(BaseModel):
    """What a job-run workflow carries into its continuation: where to resume and what it has
    learnt so far, in compact form. Never a step's output, never a secret; target snapshots
    stay in the run row.

    `states` holds, for each per-target step, one token per target in the order of
    `RunRequest.target_names`, comma-separated: a status letter (workflows/continuation.py)
    and the exit code, if any; empty where the step has no outcome yet; a run of equal tokens
    as `<token>*<count>` (`s0*4,f1,u,s0*994,*5`)."""

    started_at: datetime
    # Where to resume: the plan's segment, the step within it (order: per-step) and the offset
    # of the first batch not yet started.
    segment: int
    step: int = 0
    offset: int
    # Child workflow ids count segments run (`batch_workflow_id`); the progress query's counts.
    segments_run: int
    batches_total: int
    batches_done: int
    started: str  # the targets that took part so far: a bit per target, as hex
    states: dict[str, str] = Field(default_factory=dict)
    run_once: list[StepOutcome] = Field(default_factory=list)
    # How many times the run has continued as new, this continuation included.
    continuations: int = 1


class RunRequest(BaseModel):
    """The workflow's one input: everything decided when the run was accepted.

    Targets travel by name only: their snapshots stay in the run row and each target batch
    loads its own; past 1,000 names the list travels packed (contracts/name_lists.py), so a run
    over 100,000 targets starts with an input far below Temporal's 2 MB payload limit.
    """

    run_id: uuid.UUID
    job_id: uuid.UUID
    job_name: str
    job_version: int
    plan: Plan
    parameters: dict[str, Any]
    target_names: NameList
    triggered_by: str
    # Who asked for the run, or for the run that started this child run (its `triggered_by` is
    # `run:<parent id>`): the one person its approval gates refuse as approver (four eyes).
    # None in requests stored before it existed; `triggered_by` then.
    requester: str | None = None
    request_id: str | None = None
    parent_run_id: uuid.UUID | None = None
    # Targets per child workflow; bounds every batch history whatever the size of the run.
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, ge=1)
    # Batches per history before the run continues as new (tests set a small one).
    max_batches_per_history: int = Field(default=DEFAULT_BATCHES_PER_HISTORY, ge=1)
    # Targets per chunk activity for chunked actions (`CHUNKED_ACTIONS`); 0, as in requests
    # stored before chunks existed, runs one activity per target.
    chunk_size: int = Field(default=0, ge=0)
    # Set only in a continuation's input: what the run did before it.
    progress: RunProgress | None = None


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
    # The run's `chunk_size`.
    chunk_size: int = Field(default=0, ge=0)


class BatchResult(BaseModel):
    outcomes: dict[str, list[StepOutcome]]
    started: list[str]


class RunSummary(BaseModel):
    run_id: uuid.UUID
    status: RunStatus
    succeeded_targets: NameList
    failed_targets: NameList
    reason: str | None = None
    # The outputs of the run's run-once steps, by step id: what a parent's job.run step sees.
    outputs: dict[str, Any] = Field(default_factory=dict)


TERMINAL_RUN_STATUSES = frozenset({RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled})


# -- run records: written by local activities on the orchestration worker ----------------------


class StepRecord(BaseModel):
    run_id: uuid.UUID
    outcome: StepOutcome


class TargetBatch(BaseModel):
    run_id: uuid.UUID
    offset: int
    count: int


class RunClosing(BaseModel):
    """Every step of the run without a final state gets one: running steps are cancelled;
    steps that never started are skipped (`run_aborted`), or cancelled when the run was."""

    run_id: uuid.UUID
    per_target_step_ids: list[str]
    run_once_step_ids: list[str]
    reason: str
    cancelled: bool


class RunStatusRecord(BaseModel):
    run_id: uuid.UUID
    status: RunStatus
    reason: str | None = None


class RunRecord(BaseModel):
    """Several of a run's records in one transaction, so a short run writes once as it starts
    and once as it ends (docs/engine.md "Run records: one write at each end"). Applied in
    this order: the step outcomes, closing the run's steps, the run's status."""

    run_id: uuid.UUID
    steps: list[StepOutcome] = []
    closing: RunClosing | None = None
    status: RunStatusRecord | None = None


# Runs recorded before it wrote the `running` status, every step record, closing the steps and
# the final status each in a local activity of its own.
FOLD_RUN_RECORDS_PATCH = "job-run-fold-records"

_CONTRACT = "a contract: workers register its implementation (activities/run_records.py)"


@activity_contract
async def record_step(record: StepRecord) -> None:
    """Upserts one step's outcome on the run record (idempotent by run, target and step)."""
    raise NotImplementedError(_CONTRACT)


@activity_contract
async def record_run_status(record: RunStatusRecord) -> None:
    raise NotImplementedError(_CONTRACT)


@activity_contract
async def record_run(record: RunRecord) -> None:
    raise NotImplementedError(_CONTRACT)


@activity_contract
async def load_target_batch(batch: TargetBatch) -> list[TargetSnapshot]:
    """The snapshots of the run's targets at [offset, offset + count)."""
    raise NotImplementedError(_CONTRACT)


@activity_contract
async def close_run_steps(closing: RunClosing) -> None:
    raise NotImplementedError(_CONTRACT)


# -- approvals ------------------------------------------------------------------------------


class ApprovalDecision(BaseModel):
    step: str
    approve: bool
    by: str
    role: str
    comment: str = ""


# Failure types of a refused decision, which the API answers as 409 (nothing to decide) and
# 403 (not an approver).
APPROVAL_NOT_PENDING = "ApprovalNotPending"
APPROVAL_NOT_PERMITTED = "ApprovalNotPermitted"


# -- search attributes: how the Temporal UI and CLI find a job's runs ---------------------------

JOB_ID = SearchAttributeKey.for_keyword("OpsJobId")
JOB_NAME = SearchAttributeKey.for_keyword("OpsJobName")
TRIGGERED_BY = SearchAttributeKey.for_keyword("OpsTriggeredBy")
# The run's status (RunStatus), kept current by the workflow: `OpsRunStatus="failed"` in the UI.
RUN_STATUS = SearchAttributeKey.for_keyword("OpsRunStatus")
RUN_SEARCH_ATTRIBUTES = (JOB_ID, JOB_NAME, TRIGGERED_BY, RUN_STATUS)
# Upserting the status adds commands; histories recorded before it replay without them.
RUN_STATUS_SEARCH_ATTRIBUTE_PATCH = "run-status-search-attribute"


def run_search_attributes(request: RunRequest) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(JOB_ID, str(request.job_id)),
            SearchAttributePair(JOB_NAME, request.job_name),
            SearchAttributePair(TRIGGERED_BY, request.triggered_by),
            SearchAttributePair(RUN_STATUS, RunStatus.queued.value),
        ]
    )


class RunDisplay(BaseModel):
    """What the Temporal UI shows for a run's workflow: one line, and markdown under it (both
    sealed by our codec like any payload). Never parameter values: they may be secrets."""

    summary: str
    details: str


# Targets the details name before "and N more".
DETAILS_TARGETS = 10


def run_display(request: RunRequest, console_url: str) -> RunDisplay:
    """The same text for every way a run starts (API, reconciler, schedule, `job.run`);
    `console_url` is the public URL the details link back to."""
    count = len(request.target_names)
    targets = f"{count} target{'' if count == 1 else 's'}"
    names = request.target_names[:DETAILS_TARGETS]
    more = count - len(names)
    named = ", ".join(names) + (f" and {more} more" if more else "") or "none"
    link = f"{console_url}/runs/{request.run_id}"
    job = f"{request.job_name} v{request.job_version}"
    return RunDisplay(
        summary=f"{job} · {targets} · by {request.triggered_by}",
        details="\n".join(
            [
                f"**Job** {request.job_name}, version {request.job_version}",
                f"**Targets** ({count}) {named}",
                f"**Started by** {request.triggered_by}",
                f"**Console** [{link}]({link})",
            ]
        ),
    )
