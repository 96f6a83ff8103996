"""Schedules: definitions in PostgreSQL, each kept in step with its Temporal schedule.

Every change writes the row (flushed, not committed), then puts the Temporal side in step,
and answers how to undo that Temporal change (a `Change`). The functions a route calls (the
last section: they take the `Workflows` the router hands on, services/workflows.py) commit
with `db.commit_or_undo`, which runs the undo if the commit fails: the one exception to
"services never commit" (db.py). A Temporal failure raises before anything is committed, so
the request's transaction rolls the row back.
"""

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client, ScheduleActionExecutionStartWorkflow, ScheduleDescription

from opsconductor.contracts.runs import RunStatus
from opsconductor.contracts.schedules import scheduled_run_id
from opsconductor.db import commit_or_undo
from opsconductor.errors import (
    Conflict,
    DependencyUnavailable,
    FieldProblem,
    InputInvalid,
)
from opsconductor.jobspec.cron import in_words, next_fires, parse
from opsconductor.jobspec.document import JobDocument
from opsconductor.jobspec.parameters import resolve_parameters
from opsconductor.models.base import public_view, utcnow
from opsconductor.models.job import JobPublic
from opsconductor.models.page import Page
from opsconductor.models.run import Run
from opsconductor.models.schedule import (
    BackfillAccepted,
    BackfillRange,
    BackfillRequest,
    ExecutorState,
    FirePreview,
    FirePreviewQuery,
    OverlapPolicy,
    RecentRun,
    Schedule,
    ScheduleCreate,
    SchedulePublic,
    ScheduleUpdate,
)
from opsconductor.services import jobs, temporal_schedules
from opsconductor.services.audit import AuditEntry
from opsconductor.services.lookup import get_or_404
from opsconductor.services.paging import PageRequest, paginate, with_items
from opsconductor.services.workflows import Workflows

# The advisory lock between changes (shared) and the reconciler (exclusive): the reconciler
# never sees a change half made, e.g. a Temporal schedule whose row is not committed yet.
LOCK_KEY = 0x0C5C_4ED0_1E50_0005
NEXT_RUNS = 5
# A backfill may start at most this many runs; a longer range is refused, not truncated.
# (Temporal lists at most 1000 matching times, so the count is always known beyond this.)
MAX_BACKFILL_RUNS = 500
# How many schedules a list page describes on Temporal at once.
DESCRIBE_CONCURRENCY = 10

Undo = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Change:
    schedule: Schedule
    undo: Undo


async def hold_changes(session: AsyncSession) -> None:
    """Held until the caller's transaction ends."""
    await session.exec(select(func.pg_advisory_xact_lock_shared(LOCK_KEY)))


async def hold_all(session: AsyncSession) -> None:
    """Exclusive: waits for changes in flight to end, and keeps new ones out."""
    await session.exec(select(func.pg_advisory_xact_lock(LOCK_KEY)))


# -- reading ---------------------------------------------------------------------------------


async def get_schedule(session: AsyncSession, schedule_id: uuid.UUID) -> Schedule:
    return await get_or_404(session, Schedule, schedule_id, "schedule")


async def _locked(session: AsyncSession, schedule_id: uuid.UUID) -> Schedule:
    return await get_or_404(session, Schedule, schedule_id, "schedule", with_for_update=True)


async def list_schedules(
    session: AsyncSession, workflows: Workflows, job_id: uuid.UUID | None, page: PageRequest
) -> Page[SchedulePublic]:
    statement = select(Schedule).order_by(col(Schedule.name))
    if job_id is not None:
        statement = statement.where(Schedule.job_id == job_id)
    rows = await paginate(session, statement, page)
    return with_items(rows, await present(session, workflows.client, rows.items))


async def present(
    session: AsyncSession, temporal: Client, schedules: Sequence[Schedule]
) -> list[SchedulePublic]:
    """The rows with what Temporal knows of them: next fires and recent runs."""
    limit = asyncio.Semaphore(DESCRIBE_CONCURRENCY)

    async def described(schedule: Schedule) -> tuple[ExecutorState, ScheduleDescription | None]:
        async with limit:
            try:
                found = await temporal_schedules.describe(temporal, schedule.id)
            except DependencyUnavailable:
                # The definition is still worth showing while Temporal is away.
                return "unavailable", None
        return ("ok", found) if found is not None else ("missing", None)

    descriptions = await asyncio.gather(*(described(schedule) for schedule in schedules))
    recent = {
        schedule.id: _recent(found)
        for schedule, (_, found) in zip(schedules, descriptions, strict=True)
    }
    statuses = await _run_statuses(
        session, [run_id for runs in recent.values() for run_id, _, _ in runs]
    )
    return [
        _public(schedule, state, found, recent[schedule.id], statuses)
        for schedule, (state, found) in zip(schedules, descriptions, strict=True)
    ]


def _recent(found: ScheduleDescription | None) -> list[tuple[uuid.UUID, datetime, datetime]]:
    if found is None:
        return []
    answers = []
    for action in found.info.recent_actions:
        started = action.action
        if isinstance(started, ScheduleActionExecutionStartWorkflow):
            run_id = scheduled_run_id(started.workflow_id, started.first_execution_run_id)
            answers.append((run_id, action.scheduled_at, action.started_at))
    return answers


async def _run_statuses(
    session: AsyncSession, run_ids: list[uuid.UUID]
) -> dict[uuid.UUID, RunStatus]:
    if not run_ids:
        return {}
    rows = await session.exec(select(Run.id, Run.status).where(col(Run.id).in_(run_ids)))
    return {run_id: RunStatus(status) for run_id, status in rows.all()}


def _public(
    schedule: Schedule,
    state: ExecutorState,
    found: ScheduleDescription | None,
    recent: list[tuple[uuid.UUID, datetime, datetime]],
    statuses: dict[uuid.UUID, RunStatus],
) -> SchedulePublic:
    next_runs = [] if found is None or schedule.paused else found.info.next_action_times
    recent_runs = [
        RecentRun(
            run_id=run_id,
            status=statuses.get(run_id),
            scheduled_at=scheduled_at,
            started_at=started_at,
        )
        # Newest first, like every other list here.
        for run_id, scheduled_at, started_at in reversed(recent)
    ]
    return public_view(
        SchedulePublic,
        schedule,
        next_runs=list(next_runs[:NEXT_RUNS]),
        recent_runs=recent_runs,
        executor=state,
    )


# -- changing --------------------------------------------------------------------------------


def _check_parameters(job: JobPublic, given: dict[str, object]) -> None:
    """As a run would check them now; they are checked again at every fire, against the
    job's version of that moment."""
    document = JobDocument.model_validate(job.document)
    _, problems = resolve_parameters(document.parameters, given)
    if problems:
        raise InputInvalid(
            "the schedule's parameters do not fit the job",
            [FieldProblem(f"body.{item.path}", item.message, item.type) for item in problems],
        )


async def _check_name_free(session: AsyncSession, name: str, schedule_id: uuid.UUID) -> None:
    result = await session.exec(
        select(Schedule.id).where(Schedule.name == name, Schedule.id != schedule_id)
    )
    if result.first() is not None:
        raise Conflict(f"a schedule named {name!r} already exists")


async def create_schedule(
    session: AsyncSession, temporal: Client, body: ScheduleCreate, actor: str
) -> Change:
    await hold_changes(session)
    job = await jobs.job_named_in_body(session, body.job_id)
    _check_parameters(job, body.parameters)
    schedule_id = uuid.uuid4()
    name = body.name or f"{job.name[:55]}-{schedule_id.hex[:8]}"
    await _check_name_free(session, name, schedule_id)
    schedule = Schedule(
        id=schedule_id,
        job_id=job.id,
        name=name,
        cron=body.cron,
        timezone=body.timezone,
        parameters=body.parameters,
        targets=None if body.targets is None else body.targets.model_dump(mode="json"),
        overlap=body.overlap,
        catchup_window_seconds=int(body.catchup_window.total_seconds()),
        paused=body.paused,
        note=body.note,
        created_by=actor,
        run_as=actor,
    )
    session.add(schedule)
    await session.flush()
    await temporal_schedules.put(temporal, schedule.id, temporal_schedules.desired(schedule))

    async def undo() -> None:
        await temporal_schedules.remove(temporal, schedule_id)

    return Change(schedule, undo)


async def update_schedule(
    session: AsyncSession,
    temporal: Client,
    schedule_id: uuid.UUID,
    body: ScheduleUpdate,
    actor: str,
) -> Change:
    given = body.model_dump(exclude_unset=True)
    nulls = [name for name, value in given.items() if value is None and name != "targets"]
    if nulls:
        raise InputInvalid(
            "fields may not be null",
            [FieldProblem(f"body.{name}", "may not be null", "null") for name in nulls],
        )

    async def apply(schedule: Schedule) -> None:
        if "parameters" in given:
            _check_parameters(await jobs.get_job(session, schedule.job_id), given["parameters"])
        if "name" in given:
            await _check_name_free(session, given["name"], schedule.id)
        if "catchup_window" in given and body.catchup_window is not None:
            # From the parsed body: the dump spells a duration as text ("1m").
            del given["catchup_window"]
            given["catchup_window_seconds"] = int(body.catchup_window.total_seconds())
        for name, value in given.items():
            setattr(schedule, name, value)
        # Its runs now use the grants of who changed it last (docs/security.md).
        schedule.run_as = actor

    return await _change(session, temporal, schedule_id, apply)


async def set_paused(
    session: AsyncSession, temporal: Client, schedule_id: uuid.UUID, paused: bool, note: str
) -> Change:
    async def apply(schedule: Schedule) -> None:
        schedule.paused = paused
        schedule.note = note

    return await _change(session, temporal, schedule_id, apply)


async def _change(
    session: AsyncSession,
    temporal: Client,
    schedule_id: uuid.UUID,
    apply: Callable[[Schedule], Awaitable[None]],
) -> Change:
    await hold_changes(session)
    schedule = await _locked(session, schedule_id)
    before = temporal_schedules.desired(schedule)
    await apply(schedule)
    schedule.updated_at = utcnow()
    session.add(schedule)
    await session.flush()
    await temporal_schedules.put(temporal, schedule.id, temporal_schedules.desired(schedule))

    async def undo() -> None:
        await temporal_schedules.put(temporal, schedule_id, before)

    return Change(schedule, undo)


async def delete_schedule(session: AsyncSession, temporal: Client, schedule_id: uuid.UUID) -> Undo:
    await hold_changes(session)
    return await _delete(session, temporal, [await _locked(session, schedule_id)])


async def delete_job_schedules(session: AsyncSession, temporal: Client, job_id: uuid.UUID) -> Undo:
    """A deleted job's schedules go with it: they could only fire failures."""
    await hold_changes(session)
    result = await session.exec(select(Schedule).where(Schedule.job_id == job_id).with_for_update())
    return await _delete(session, temporal, list(result.all()))


async def _delete(session: AsyncSession, temporal: Client, schedules: list[Schedule]) -> Undo:
    before = [(schedule.id, temporal_schedules.desired(schedule)) for schedule in schedules]
    for schedule in schedules:
        await session.delete(schedule)
    await session.flush()
    removed: list[uuid.UUID] = []

    async def undo() -> None:
        for schedule_id, definition in before:
            if schedule_id in removed:
                await temporal_schedules.put(temporal, schedule_id, definition)

    try:
        for schedule_id, _ in before:
            await temporal_schedules.remove(temporal, schedule_id)
            removed.append(schedule_id)
    except DependencyUnavailable:
        # The rows stay (the transaction rolls back): so must the schedules removed so far.
        await undo()
        raise
    return undo


# -- what a route calls: the Temporal client from `Workflows`, the commit here -----------------


async def read_schedule(
    session: AsyncSession, workflows: Workflows, schedule_id: uuid.UUID
) -> SchedulePublic:
    (answer,) = await present(session, workflows.client, [await get_schedule(session, schedule_id)])
    return answer


async def add_schedule(
    session: AsyncSession,
    workflows: Workflows,
    body: ScheduleCreate,
    actor: str,
    entry: AuditEntry,
) -> SchedulePublic:
    change = await create_schedule(session, workflows.client, body, actor)
    entry.on("schedule", change.schedule.id)
    entry.detail["name"] = change.schedule.name
    return await _committed(session, workflows, change)


async def edit_schedule(
    session: AsyncSession,
    workflows: Workflows,
    schedule_id: uuid.UUID,
    body: ScheduleUpdate,
    actor: str,
) -> SchedulePublic:
    change = await update_schedule(session, workflows.client, schedule_id, body, actor)
    return await _committed(session, workflows, change)


async def pause_schedule(
    session: AsyncSession, workflows: Workflows, schedule_id: uuid.UUID, paused: bool, note: str
) -> SchedulePublic:
    """Pauses (or, with `paused` false, resumes) the schedule; the note is replaced."""
    change = await set_paused(session, workflows.client, schedule_id, paused, note)
    return await _committed(session, workflows, change)


async def remove_schedule(
    session: AsyncSession, workflows: Workflows, schedule_id: uuid.UUID, entry: AuditEntry
) -> None:
    undo = await delete_schedule(session, workflows.client, schedule_id)
    entry.on("schedule", schedule_id)
    await commit_or_undo(session, undo)


async def delete_job(session: AsyncSession, workflows: Workflows, job_id: uuid.UUID) -> None:
    """Deletes the job, and its schedules with it (they could only fire failures)."""
    await jobs.delete_job(session, job_id)
    undo = await delete_job_schedules(session, workflows.client, job_id)
    await commit_or_undo(session, undo)


async def _committed(session: AsyncSession, workflows: Workflows, change: Change) -> SchedulePublic:
    # Committed before answering, so a failed commit can undo the Temporal side before the
    # error is answered.
    await commit_or_undo(session, change.undo)
    (answer,) = await present(session, workflows.client, [change.schedule])
    return answer


async def trigger(
    session: AsyncSession, workflows: Workflows, schedule_id: uuid.UUID, overlap: OverlapPolicy
) -> Schedule:
    schedule = await get_schedule(session, schedule_id)
    await temporal_schedules.trigger(workflows.client, schedule.id, overlap)
    return schedule


def preview_fires(query: FirePreviewQuery) -> FirePreview:
    """What a cron expression means and when it would fire next, before anything is saved."""
    cron = parse(query.cron)
    fires = next_fires(cron, ZoneInfo(query.timezone), utcnow(), NEXT_RUNS)
    return FirePreview(
        cron=query.cron, timezone=query.timezone, description=in_words(cron), next_runs=fires
    )


async def _backfill_times(
    session: AsyncSession,
    workflows: Workflows,
    schedule_id: uuid.UUID,
    span: BackfillRange,
    at: str,
) -> tuple[datetime, datetime, list[datetime]]:
    """The fires in [start, end) as Temporal computes them, and the whole-second ends Temporal
    is given; problems are reported at `at` ("body" or "query")."""
    await get_schedule(session, schedule_id)
    start, end = _aware(span.start), _aware(span.end)
    problems = []
    if end <= start:
        problems.append(FieldProblem(f"{at}.end", "must be after start", "range"))
    if end > datetime.now(UTC):
        problems.append(FieldProblem(f"{at}.end", "must not be in the future", "range"))
    if problems:
        raise InputInvalid("the backfill range is invalid", problems)
    # Fires fall on whole seconds: [start, end) holds the same fires as [first, last].
    first = _whole_second_at_or_after(start)
    last = _whole_second_at_or_after(end) - timedelta(seconds=1)
    times = await temporal_schedules.matching_times(workflows.client, schedule_id, first, last)
    if len(times) > MAX_BACKFILL_RUNS:
        raise InputInvalid(
            "the backfill range is too long",
            [
                FieldProblem(
                    f"{at}.end",
                    f"the range holds more than {MAX_BACKFILL_RUNS} fires; backfill it in parts",
                    "too_many",
                )
            ],
        )
    return first, last, times


async def backfill_times(
    session: AsyncSession, workflows: Workflows, schedule_id: uuid.UUID, span: BackfillRange
) -> BackfillAccepted:
    """The runs a backfill of the range would start, starting none."""
    *_, times = await _backfill_times(session, workflows, schedule_id, span, "query")
    return BackfillAccepted(runs=len(times), times=times)


async def backfill(
    session: AsyncSession, workflows: Workflows, schedule_id: uuid.UUID, body: BackfillRequest
) -> BackfillAccepted:
    first, last, times = await _backfill_times(session, workflows, schedule_id, body, "body")
    if times:
        await temporal_schedules.backfill(workflows.client, schedule_id, first, last, body.overlap)
    return BackfillAccepted(runs=len(times), times=times)


def _whole_second_at_or_after(moment: datetime) -> datetime:
    whole = moment.replace(microsecond=0)
    return whole if whole == moment else whole + timedelta(seconds=1)


def _aware(moment: datetime) -> datetime:
    # A time without an offset is taken as UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
