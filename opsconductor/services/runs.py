"""Runs: accepting a run (parameters, target snapshot, the exact job version), launching its
workflow after the commit, cancelling it, deciding its approvals, and reading run records back.

Services never commit (db.py); starting a run is the documented exception, through
`db.commit_then_launch`. What acts on Temporal takes a `Workflows` (services/workflows.py),
which the router hands on untouched.
"""

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import defer
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from opsconductor.contracts.runs import (
    APPROVAL_NOT_PENDING,
    APPROVAL_NOT_PERMITTED,
    DEFAULT_BATCH_SIZE,
    TERMINAL_RUN_STATUSES,
    ApprovalDecision,
    RunRequest,
    RunStatus,
    batch_size_for,
    run_workflow_id,
)
from opsconductor.contracts.steps import TargetSnapshot
from opsconductor.db import commit_then_launch, side_transaction
from opsconductor.errors import (
    Conflict,
    DependencyUnavailable,
    FieldProblem,
    InputInvalid,
    LaunchUncertain,
    PermissionDenied,
)
from opsconductor.jobspec.document import JobDocument, TargetSelector
from opsconductor.jobspec.parameters import resolve_parameters
from opsconductor.jobspec.plan import compile_plan
from opsconductor.jobspec.validation import pydantic_problems
from opsconductor.models.base import public_view, utcnow
from opsconductor.models.job import JobPublic
from opsconductor.models.page import Page
from opsconductor.models.run import (
    ApprovalCreate,
    Run,
    RunAccepted,
    RunCreate,
    RunListItem,
    RunLogLine,
)
from opsconductor.security.rbac import Principal
from opsconductor.services import credential_grants, jobs, run_reconciler
from opsconductor.services.audit import AuditEntry
from opsconductor.services.credential_grants import Requester
from opsconductor.services.lookup import get_or_404
from opsconductor.services.paging import PageRequest, paginate_as
from opsconductor.services.run_launch import (
    idempotent_run_id,
    launch,
    request_for,
    requester_of,
    stored_request,
)
from opsconductor.services.targets.selection import resolve_selector
from opsconductor.services.workflows import WorkflowGone, Workflows
from opsconductor.workflows.job_run import JobRunWorkflow

logger = logging.getLogger(__name__)

# A followed log is read again this often while nothing new came, and this many lines a read.
FOLLOW_POLL_SECONDS = 0.5
LOG_PAGE = 1000


@dataclass(frozen=True)
class PreparedRun:
    run: Run
    request: RunRequest


@dataclass(frozen=True)
class RunOrigin:
    """Who or what asked for a run, and how it is to be executed."""

    triggered_by: str
    request_id: str | None = None
    parent_run_id: uuid.UUID | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    # A client's Idempotency-Key and the user it is scoped to (services/run_launch.py).
    idempotency_key: str | None = None
    user_id: uuid.UUID | None = None
    # Whose credential grants the run uses; stored on the run as `run_as` for the worker.
    requester: Requester | None = None


async def prepare_run(
    session: AsyncSession,
    job: JobPublic,
    body: RunCreate,
    origin: RunOrigin,
    run_id: uuid.UUID | None = None,
) -> PreparedRun:
    """Validates and stores a queued run of the job's current version (not yet launched).

    With a `run_id` already stored (a retried child-run activity), answers that run's request
    unchanged instead of storing a second one."""
    if run_id is not None and (existing := await session.get(Run, run_id)) is not None:
        return PreparedRun(run=existing, request=await stored_request(session, existing))
    document = JobDocument.model_validate(job.document)
    parameters, problems = resolve_parameters(document.parameters, body.parameters)
    problems = [
        FieldProblem(f"body.{problem.path}", problem.message, problem.type) for problem in problems
    ]
    selector = document.targets
    if body.targets is not None:
        try:
            selector = TargetSelector.model_validate(body.targets)
        except ValidationError as error:
            problems += pydantic_problems(error, prefix="body.targets")
    if problems:
        raise InputInvalid("the run request is invalid", problems)
    plan = compile_plan(document)
    targets = await _resolve(session, selector)
    if plan.has_per_target_steps and not targets:
        raise InputInvalid(
            "the job has per-target steps but its target selector matches no target",
            [FieldProblem("body.targets", "matches no target", "empty_selection")],
        )
    if origin.requester is not None:
        await credential_grants.check_run(session, origin.requester, document, targets)
    # Sized to the plan: a job of many steps runs in smaller batches (docs/engine.md).
    origin = replace(origin, batch_size=batch_size_for(plan, origin.batch_size))
    run = _new_run(
        run_id or uuid.uuid4(),
        job,
        origin,
        parameters,
        status=RunStatus.queued,
        targets=[target.model_dump(mode="json") for target in targets],
    )
    session.add(run)
    await session.flush()
    return PreparedRun(
        run=run, request=request_for(run, document, await requester_of(session, run))
    )


async def record_refused(
    session: AsyncSession,
    job: JobPublic,
    body: RunCreate,
    origin: RunOrigin,
    run_id: uuid.UUID,
    reason: str,
) -> Run:
    """A run that could not be accepted where nobody was there to be told (a scheduled fire):
    stored as failed with the reason, so it shows among the job's runs."""
    run = _new_run(
        run_id,
        job,
        origin,
        body.parameters,
        status=RunStatus.failed,
        reason=reason,
        finished_at=utcnow(),
    )
    session.add(run)
    await session.flush()
    return run


def _new_run(
    run_id: uuid.UUID,
    job: JobPublic,
    origin: RunOrigin,
    parameters: dict[str, Any],
    **fields: Any,
) -> Run:
    """A run of the job's current version; `fields` add its status and what goes with it."""
    return Run(
        id=run_id,
        job_id=job.id,
        job_name=job.name,
        job_version=job.version,
        parameters=parameters,
        triggered_by=origin.triggered_by,
        run_as=origin.requester.username if origin.requester else None,
        workflow_id=run_workflow_id(run_id),
        request_id=origin.request_id,
        parent_run_id=origin.parent_run_id,
        batch_size=origin.batch_size,
        idempotency_key=origin.idempotency_key,
        **fields,
    )


async def _resolve(session: AsyncSession, selector: TargetSelector) -> list[TargetSnapshot]:
    if selector.is_empty:
        return []
    try:
        return await resolve_selector(session, selector)
    except InputInvalid as error:
        raise InputInvalid(
            error.detail,
            [FieldProblem(f"body.{item.path}", item.message, item.type) for item in error.problems],
        ) from None


async def mark_not_launched(session: AsyncSession, run_id: uuid.UUID, reason: str) -> None:
    await session.exec(
        update(Run)
        .where(col(Run.id) == run_id)
        .values(status=RunStatus.failed.value, reason=reason, finished_at=utcnow())
    )


async def start_run(
    session: AsyncSession,
    workflows: Workflows,
    job_id: uuid.UUID,
    body: RunCreate,
    origin: RunOrigin,
    entry: AuditEntry,
) -> RunAccepted:
    """Accepts a run of the job and launches its workflow once the run row is committed.

    With an Idempotency-Key the run's id is derived from it: a repeated request answers the run
    the first one created. A start Temporal did not answer in time is answered `queued`: the
    run reconciler starts it, or finds it started (services/run_reconciler.py)."""
    job = await jobs.get_job(session, job_id)
    run_id = None
    if origin.idempotency_key is not None:
        assert origin.user_id is not None, "an idempotency key is scoped to a user"
        run_id = idempotent_run_id(job.id, origin.user_id, origin.idempotency_key)
        # Held until this transaction ends (its commit before the launch): a concurrent request
        # with the same key waits here, then finds the run instead of inserting it again.
        await session.exec(select(func.pg_advisory_xact_lock(_lock_number(run_id))))
        if (existing := await session.get(Run, run_id)) is not None:
            entry.on("run", existing.id)
            entry.detail["idempotent_replay"] = True
            return _accepted(existing)
    prepared = await prepare_run(session, job, body, origin, run_id)
    entry.on("run", prepared.run.id)

    async def not_launched(side: AsyncSession, reason: str) -> None:
        await mark_not_launched(side, prepared.run.id, reason)

    try:
        await commit_then_launch(
            session,
            workflows.sessionmaker,
            lambda: launch(workflows.client, prepared.request, workflows.console_url),
            not_launched,
        )
    except LaunchUncertain as error:
        logger.warning(
            "run start unconfirmed; left queued for the run reconciler",
            extra={"run_id": str(prepared.run.id), "error": error.detail},
        )
    return _accepted(prepared.run)


def _lock_number(run_id: uuid.UUID) -> int:
    """A run id as a PostgreSQL advisory lock key (a signed 64-bit number)."""
    return int.from_bytes(run_id.bytes[:8], "big", signed=True)


def _accepted(run: Run) -> RunAccepted:
    return RunAccepted(id=run.id, status=run.status, workflow_id=run.workflow_id)


def _refuse_ended(run: Run) -> None:
    if run.status in TERMINAL_RUN_STATUSES:
        raise Conflict(f"run {run.id} already ended ({run.status})")


async def cancel_run(session: AsyncSession, workflows: Workflows, run_id: uuid.UUID) -> None:
    """Asks the run's workflow to cancel. A run whose workflow is not open is settled here, as
    the reconciler would: from the ended workflow (then 409, it already ended), or, never
    started, cancelled before it starts."""
    run = await get_run_row(session, run_id)
    _refuse_ended(run)
    if await workflows.is_open(run.workflow_id):
        try:
            await workflows.cancel(run.workflow_id)
            return
        except WorkflowGone:
            pass  # it ended in between
    # Kept though the answer may be an error (which rolls the request back).
    async with side_transaction(workflows.sessionmaker) as side:
        settled = await run_reconciler.settle_for_cancel(
            side, workflows.client, run.id, workflows.console_url
        )
    if settled != RunStatus.cancelled:
        raise Conflict(f"run {run.id} already ended ({settled})")


async def decide_approval(
    session: AsyncSession,
    workflows: Workflows,
    run_id: uuid.UUID,
    body: ApprovalCreate,
    principal: Principal,
    entry: AuditEntry,
) -> str:
    """Hands the decision to the run's workflow; answers what the workflow made of it."""
    run = await get_run_row(session, run_id)
    entry.detail.update({"step": body.step, "decision": body.decision})
    _refuse_ended(run)
    decision = ApprovalDecision(
        step=body.step,
        approve=body.decision == "approve",
        by=principal.user.username,
        role=str(principal.role),
        comment=body.comment,
    )
    handle = workflows.client.get_workflow_handle_for(JobRunWorkflow.run, run.workflow_id)
    try:
        # By reference, so the update's name and types come from the workflow. (temporalio's
        # stubs type an async update's result as the coroutine, hence the ignore.)
        outcome: str = await handle.execute_update(
            JobRunWorkflow.decide_approval,  # type: ignore[arg-type]
            decision,
        )
        return outcome
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        if isinstance(cause, ApplicationError) and cause.type == APPROVAL_NOT_PERMITTED:
            raise PermissionDenied(cause.message) from None
        if isinstance(cause, ApplicationError) and cause.type == APPROVAL_NOT_PENDING:
            raise Conflict(cause.message) from None
        raise
    except RPCError as error:
        raise DependencyUnavailable(
            f"Temporal did not take the decision: {error.message}"
        ) from None


async def get_run_row(session: AsyncSession, run_id: uuid.UUID) -> Run:
    return await get_or_404(session, Run, run_id, "run")


async def list_runs(
    session: AsyncSession,
    *,
    job_id: uuid.UUID | None,
    status: RunStatus | None,
    since: datetime | None,
    parent_run_id: uuid.UUID | None = None,
    page: PageRequest,
) -> Page[RunListItem]:
    # A run's target snapshots and parameters are not listed, and a 10,000-target run's
    # snapshots are megabytes of JSON to decode on every page that shows it.
    statement = (
        select(Run)
        .options(
            defer(Run.targets, raiseload=True),  # type: ignore[arg-type]
            defer(Run.parameters, raiseload=True),  # type: ignore[arg-type]
        )
        # Both descending: ix_runs_created_at_id read backwards serves the order and a cursor.
        .order_by(col(Run.created_at).desc(), col(Run.id).desc())
    )
    if job_id is not None:
        statement = statement.where(Run.job_id == job_id)
    if status is not None:
        statement = statement.where(Run.status == status)
    if since is not None:
        statement = statement.where(col(Run.created_at) >= since)
    if parent_run_id is not None:
        statement = statement.where(Run.parent_run_id == parent_run_id)
    return await paginate_as(session, statement, page, _list_items)


async def _list_items(session: AsyncSession, rows: Sequence[Run]) -> list[RunListItem]:
    return [public_view(RunListItem, row) for row in rows]


async def log_lines(
    session: AsyncSession, run_id: uuid.UUID, after: int, limit: int
) -> list[RunLogLine]:
    result = await session.exec(
        select(RunLogLine)
        .where(RunLogLine.run_id == run_id, col(RunLogLine.id) > after)
        .order_by(col(RunLogLine.id))
        .limit(limit)
    )
    return list(result.all())


async def read_log(session: AsyncSession, run_id: uuid.UUID, after: int) -> list[RunLogLine]:
    """A page of the run's log lines after line id `after`."""
    await get_run_row(session, run_id)
    return await log_lines(session, run_id, after, LOG_PAGE)


async def follow_log(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    run_id: uuid.UUID,
    after: int,
    gone: Callable[[], Awaitable[bool]],
) -> AsyncIterator[RunLogLine | RunStatus]:
    """The run's log lines after `after` as they come, then its final status; until `gone`.

    The run is looked up now (a 404 comes before the stream starts); each later read is a
    short session of its own, not the request's."""
    await get_run_row(session, run_id)
    return _follow(sessionmaker, run_id, after, gone)


async def _follow(
    sessionmaker: async_sessionmaker[AsyncSession],
    run_id: uuid.UUID,
    cursor: int,
    gone: Callable[[], Awaitable[bool]],
) -> AsyncIterator[RunLogLine | RunStatus]:
    while not await gone():
        async with sessionmaker() as reader:
            lines = await log_lines(reader, run_id, cursor, LOG_PAGE)
            run = await get_run_row(reader, run_id)
        for line in lines:
            cursor = line.id or cursor
            yield line
        if not lines and run.status in TERMINAL_RUN_STATUSES:
            yield RunStatus(run.status)
            return
        if not lines:
            await asyncio.sleep(FOLLOW_POLL_SECONDS)
