"""Brings every run row that has not ended in step with its workflow.

PostgreSQL and Temporal can drift apart: an API that dies between committing a run and starting
its workflow leaves the run `queued` with no workflow; a workflow terminated from outside (or one
that failed before writing its end) leaves its row `running`. For each run in `queued`,
`running` or `waiting_approval` older than the grace (a young row may still be starting):

- no workflow, and the run never started: it is started from what its row holds (the exact job
  version and target snapshot), idempotently (services/run_launch.py); one that cannot be
  started (its job version is gone, Temporal refuses it) is failed with why. A child run is left
  to its parent while the parent is open.
- no workflow, but the run had started: failed, its workflow is gone.
- a closed workflow: the row takes the workflow's end (a terminated workflow fails the run with
  "the workflow was terminated: <reason>"), `finished_at` is set and its steps are closed as the
  workflow's own `close_run_steps` would.

Every change is logged with the run id and the reason, and the reason is on the row. One pass
runs at a time across API replicas: it holds a transaction-scoped advisory lock, and a replica
that does not get it skips its turn. The lock is the caller's transaction's: whoever opens the
unit of work (api/background.py) runs it and commits.
"""

import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import func, update
from sqlalchemy.orm import defer
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import CancelledError, TerminatedError, TimeoutError
from temporalio.service import RPCError, RPCStatusCode

from opsconductor.contracts.runs import (
    TERMINAL_RUN_STATUSES,
    RunClosing,
    RunStatus,
)
from opsconductor.errors import DependencyUnavailable, LaunchUncertain, NotFound
from opsconductor.jobspec.document import JobDocument
from opsconductor.models.base import utcnow
from opsconductor.models.run import Run
from opsconductor.services import jobs, run_records
from opsconductor.services.run_launch import launch, stored_request
from opsconductor.text import storable
from opsconductor.workflows.job_run import JobRunWorkflow

logger = logging.getLogger(__name__)

# Not the schedules' key (services/schedules.py): the two reconcilers do not wait for each other.
LOCK_KEY = 0x0C5C_4ED0_1E50_0006
RPC_TIMEOUT = timedelta(seconds=10)
_OPEN = frozenset({WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.CONTINUED_AS_NEW})
WORKFLOW_GONE = "its workflow is gone from Temporal (it was never recorded, or its history expired)"


@dataclass
class RunReconcileReport:
    # Another replica held the lock: this pass did nothing.
    skipped: bool = False
    checked: int = 0
    started: list[uuid.UUID] = field(default_factory=list)
    ended: dict[uuid.UUID, RunStatus] = field(default_factory=dict)


async def reconcile_runs(
    session: AsyncSession, temporal: Client, grace: timedelta, console_url: str
) -> RunReconcileReport:
    """One pass, in the caller's unit of work (which holds the lock until it ends)."""
    report = RunReconcileReport()
    if not (await session.exec(select(func.pg_try_advisory_xact_lock(LOCK_KEY)))).one():
        report.skipped = True
        return report
    rows = (
        await session.exec(
            select(Run)
            # A big run's snapshot is megabytes: loaded only for a run that is to be started.
            .options(defer(Run.targets), defer(Run.parameters))  # type: ignore[arg-type]
            .where(
                col(Run.status).not_in(TERMINAL_RUN_STATUSES),
                col(Run.created_at) < utcnow() - grace,
            )
            .order_by(col(Run.created_at))
        )
    ).all()
    for run in rows:
        report.checked += 1
        outcome = await settle(session, temporal, run, console_url)
        if outcome is RunStatus.running:
            report.started.append(run.id)
        elif outcome in TERMINAL_RUN_STATUSES:
            report.ended[run.id] = outcome
    return report


async def settle(
    session: AsyncSession, temporal: Client, run: Run, console_url: str
) -> RunStatus | None:
    """Brings one run in step: answers `running` when it was started here, the terminal status
    it was given, or None when nothing changed (its workflow is open, or its start is pending)."""
    handle = temporal.get_workflow_handle_for(JobRunWorkflow.run, run.workflow_id)
    try:
        description = await handle.describe(rpc_timeout=RPC_TIMEOUT)
    except RPCError as error:
        if error.status is not RPCStatusCode.NOT_FOUND:
            raise DependencyUnavailable(
                f"Temporal did not describe a run: {error.message}"
            ) from None
        return await _start_or_fail(session, temporal, run, console_url)
    if description.status is None or description.status in _OPEN:
        return None
    try:
        summary = await handle.result(follow_runs=False, rpc_timeout=RPC_TIMEOUT)
    except WorkflowFailureError as error:
        status, reason = _ending_of(error)
        return await end_run(session, run, status, reason)
    except RPCError as error:
        raise _unavailable("answer a run's result", error) from None
    return await end_run(session, run, summary.status, summary.reason)


async def settle_for_cancel(
    session: AsyncSession, temporal: Client, run_id: uuid.UUID, console_url: str
) -> RunStatus:
    """A cancel found no open workflow: a run that never started is cancelled (its start is not
    attempted); one whose workflow ended takes that end. Answers the run's status after."""
    run = await session.get(Run, run_id, with_for_update=True)
    if run is None or run.status in TERMINAL_RUN_STATUSES:
        return RunStatus(run.status) if run else RunStatus.cancelled
    if run.status == RunStatus.queued and run.started_at is None:
        try:
            await temporal.get_workflow_handle(run.workflow_id).describe(rpc_timeout=RPC_TIMEOUT)
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                return await end_run(
                    session, run, RunStatus.cancelled, "the run was cancelled before it started"
                )
            raise DependencyUnavailable(
                f"Temporal did not describe a run: {error.message}"
            ) from None
    return await settle(session, temporal, run, console_url) or RunStatus(run.status)


def _unavailable(what: str, error: RPCError) -> DependencyUnavailable:
    return DependencyUnavailable(f"Temporal did not {what}: {error.message}")


def _ending_of(error: WorkflowFailureError) -> tuple[RunStatus, str]:
    cause = error.cause
    if isinstance(cause, TerminatedError):
        return RunStatus.failed, f"the workflow was terminated: {cause.message}"
    if isinstance(cause, CancelledError):
        return RunStatus.cancelled, "the run was cancelled"
    if isinstance(cause, TimeoutError):
        return RunStatus.failed, "the workflow timed out"
    return RunStatus.failed, f"the workflow failed: {cause or error}"


async def _start_or_fail(
    session: AsyncSession, temporal: Client, run: Run, console_url: str
) -> RunStatus | None:
    if run.status != RunStatus.queued or run.started_at is not None:
        return await end_run(session, run, RunStatus.failed, WORKFLOW_GONE)
    if run.parent_run_id is not None:
        parent = await session.get(Run, run.parent_run_id)
        if parent is not None and parent.status not in TERMINAL_RUN_STATUSES:
            return None  # its parent's job.run step starts it
        return await end_run(
            session, run, RunStatus.failed, "its parent run ended before starting it"
        )
    await session.refresh(run, ["targets", "parameters"])
    try:
        request = await stored_request(session, run)
    except NotFound as error:
        return await end_run(
            session, run, RunStatus.failed, f"the run could not be started: {error.detail}"
        )
    try:
        await launch(temporal, request, console_url)
    except LaunchUncertain as error:
        logger.warning(
            "run start unconfirmed; the next pass looks again",
            extra={"run_id": str(run.id), "error": error.detail},
        )
        return None
    except DependencyUnavailable as error:
        return await end_run(session, run, RunStatus.failed, error.detail)
    logger.warning(
        "run started by the reconciler: its workflow had not been started",
        extra={"run_id": str(run.id), "workflow_id": run.workflow_id},
    )
    return RunStatus.running


async def end_run(
    session: AsyncSession, run: Run, status: RunStatus, reason: str | None
) -> RunStatus:
    """Gives a run that has not ended its end, and its steps theirs (as `close_run_steps`)."""
    reason = reason or f"the workflow ended {status.value}"
    await run_records.close_steps(
        session,
        RunClosing(
            run_id=run.id,
            **await _step_ids(session, run),
            reason=reason,
            cancelled=status is RunStatus.cancelled,
        ),
    )
    now = utcnow()
    await session.exec(
        update(Run)
        .where(col(Run.id) == run.id, col(Run.status).not_in(TERMINAL_RUN_STATUSES))
        .values(
            status=status.value,
            reason=storable(reason),
            finished_at=now,
            started_at=func.coalesce(Run.started_at, now),
        )
    )
    logger.warning(
        "run brought in step with its workflow",
        extra={"run_id": str(run.id), "status": status.value, "reason": reason},
    )
    return status


async def _step_ids(session: AsyncSession, run: Run) -> dict[str, list[str]]:
    """The run's steps by kind, from its job version; none when that version is gone (then only
    the steps already recorded are closed)."""
    try:
        _, version = await jobs.get_job_version(session, run.job_id, run.job_version)
    except NotFound:
        return {"per_target_step_ids": [], "run_once_step_ids": []}
    steps = JobDocument.model_validate(version.document).steps
    return {
        "per_target_step_ids": [step.id for step in steps if not step.run_once],
        "run_once_step_ids": [step.id for step in steps if step.run_once],
    }
