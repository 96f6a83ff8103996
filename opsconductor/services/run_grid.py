"""A run's grid of targets by steps, read in pieces a 10,000-target run can afford: the run's
answer carries counts (SQL aggregates) and the grid comes a page at a time (LIMIT/OFFSET).

A target's status is derived from its step rows in SQL only (`_target_statuses`), so counts,
filters and the grid's rows cannot disagree about it. The target list is the run's snapshot
(`runs.targets`), read inside PostgreSQL: its JSON is never decoded here."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Subquery, and_, case, func, not_
from sqlalchemy.orm import defer
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.contracts.runs import StepStatus
from opsconductor.errors import InputInvalid, NotFound
from opsconductor.models.base import public_view
from opsconductor.models.page import Page
from opsconductor.models.run import (
    RUN_ONCE_TARGET,
    Run,
    RunDetail,
    RunListItem,
    RunStep,
    RunStepPublic,
    RunTargetPublic,
    RunTargetsSummary,
    StepTargetCounts,
)
from opsconductor.services.paging import PageRequest, paginate_as


class RunInclude(StrEnum):
    """What `GET /runs/{id}` adds to its constant-size answer when asked."""

    targets = "targets"


async def get_run(
    session: AsyncSession, run_id: uuid.UUID, include: RunInclude | None = None
) -> RunDetail:
    """The run, its run-once steps and its grid's counts; the whole grid only when asked."""
    run = await _run_without_snapshots(session, run_id)
    run_once = await session.exec(
        select(RunStep)
        .where(RunStep.run_id == run_id, RunStep.target == RUN_ONCE_TARGET)
        .order_by(col(RunStep.started_at), col(RunStep.step_id))
    )
    summary = await _summary(session, run_id)
    targets = None
    if include is RunInclude.targets:
        targets = await _targets(session, run_id, None)
    return RunDetail(
        **RunListItem.model_validate(run, from_attributes=True).model_dump(),
        parameters=run.parameters,
        summary=summary,
        targets=targets,
        steps=[_public_step(row) for row in run_once.all()],
        workflow_id=run.workflow_id,
    )


async def list_targets(
    session: AsyncSession,
    run_id: uuid.UUID,
    *,
    status: StepStatus | None,
    step: str | None,
    page: PageRequest,
) -> Page[RunTargetPublic]:
    """A page of the grid by target name. `status` filters by the target's status, or with
    `step` by that step's status on the target (pending where the step has not begun)."""
    if step is not None and status is None:
        raise InputInvalid.at("query.step", "filters by a step's status: give status too")
    await _run_without_snapshots(session, run_id)
    if step is None:
        statuses = _target_statuses(run_id)
        statement = select(statuses.c.name).order_by(statuses.c.name)
        if status is not None:
            statement = statement.where(statuses.c.status == status.value)
    else:
        names = _target_names(run_id)
        step_status = func.coalesce(col(RunStep.status), StepStatus.pending.value)
        statement = (
            select(names.c.name)
            .outerjoin(
                RunStep,
                and_(
                    col(RunStep.run_id) == run_id,
                    col(RunStep.target) == names.c.name,
                    col(RunStep.step_id) == step,
                ),
            )
            .where(step_status == status)
            .order_by(names.c.name)
        )

    async def present(session: AsyncSession, names: Sequence[str]) -> list[RunTargetPublic]:
        return await _targets(session, run_id, names)

    return await paginate_as(session, statement, page, present)


async def _run_without_snapshots(session: AsyncSession, run_id: uuid.UUID) -> Run:
    # The target snapshots are megabytes of JSON on a huge run; nothing here decodes them.
    found = await session.exec(
        select(Run)
        .options(defer(Run.targets, raiseload=True))  # type: ignore[arg-type]
        .where(Run.id == run_id)
    )
    run = found.first()
    if run is None:
        raise NotFound(f"no run {run_id}")
    return run


def _target_names(run_id: uuid.UUID) -> Subquery:
    name = func.jsonb_array_elements(col(Run.targets)).op("->>")("name")
    return select(name.label("name")).where(Run.id == run_id).subquery("names")


def _target_statuses(run_id: uuid.UUID) -> Subquery:
    """(name, status) of each target: pending before any step row, running while one runs,
    then failed (a failure not tolerated), cancelled, skipped (all skipped), else succeeded."""
    names = _target_names(run_id)
    status = col(RunStep.status)
    derived = case(
        (func.count(col(RunStep.id)) == 0, StepStatus.pending.value),
        (func.bool_or(status == StepStatus.running.value), StepStatus.running.value),
        (
            func.bool_or(and_(status == StepStatus.failed.value, not_(col(RunStep.tolerated)))),
            StepStatus.failed.value,
        ),
        (func.bool_or(status == StepStatus.cancelled.value), StepStatus.cancelled.value),
        (func.bool_and(status == StepStatus.skipped.value), StepStatus.skipped.value),
        else_=StepStatus.succeeded.value,
    )
    return (
        select(names.c.name, derived.label("status"))
        .select_from(names)
        .outerjoin(
            RunStep, and_(col(RunStep.run_id) == run_id, col(RunStep.target) == names.c.name)
        )
        .group_by(names.c.name)
        .subquery("target_statuses")
    )


async def _summary(session: AsyncSession, run_id: uuid.UUID) -> RunTargetsSummary:
    """Two aggregate statements, whatever the number of targets."""
    statuses = _target_statuses(run_id)
    by_target = await session.exec(
        select(statuses.c.status, func.count()).group_by(statuses.c.status)
    )
    targets = _in_status_order({StepStatus(status): count for status, count in by_target.all()})
    total = sum(targets.values())
    by_step = await session.exec(
        select(
            col(RunStep.step_id), col(RunStep.status), func.count(), func.min(RunStep.started_at)
        )
        .where(RunStep.run_id == run_id, RunStep.target != RUN_ONCE_TARGET)
        .group_by(col(RunStep.step_id), col(RunStep.status))
    )
    counts: dict[str, dict[StepStatus, int]] = {}
    began: dict[str, list[datetime]] = {}
    for step_id, step_status, count, started in by_step.all():
        counts.setdefault(step_id, {})[StepStatus(step_status)] = count
        began.setdefault(step_id, []).extend([started] if started else [])
    steps = []
    # In the order the steps began (those not begun last), by id among equals.
    for step_id in sorted(
        counts, key=lambda step_id: (not began[step_id], min(began[step_id], default=0), step_id)
    ):
        by_status = counts[step_id]
        # A target the step has not reached yet has no row: it is pending for that step.
        unreached = total - sum(by_status.values())
        if unreached > 0:
            by_status[StepStatus.pending] = by_status.get(StepStatus.pending, 0) + unreached
        steps.append(StepTargetCounts(id=step_id, by_status=_in_status_order(by_status)))
    return RunTargetsSummary(total=total, by_status=targets, steps=steps)


def _in_status_order(counts: dict[StepStatus, int]) -> dict[StepStatus, int]:
    # Counts read the same on every answer: statuses in the order StepStatus declares them.
    return {status: counts[status] for status in StepStatus if status in counts}


async def _targets(
    session: AsyncSession, run_id: uuid.UUID, names: Sequence[str] | None
) -> list[RunTargetPublic]:
    """The grid rows of `names` (every target when None) by name: two statements."""
    if names is not None and not names:
        return []
    statuses = _target_statuses(run_id)
    listed = select(statuses.c.name, statuses.c.status).order_by(statuses.c.name)
    rows = select(RunStep).where(RunStep.run_id == run_id, RunStep.target != RUN_ONCE_TARGET)
    if names is not None:
        listed = listed.where(statuses.c.name.in_(names))
        rows = rows.where(col(RunStep.target).in_(names))
    steps: dict[str, list[RunStepPublic]] = {}
    ordered = rows.order_by(col(RunStep.started_at), col(RunStep.step_id))
    for row in (await session.exec(ordered)).all():
        steps.setdefault(row.target, []).append(_public_step(row))
    return [
        RunTargetPublic(name=name, status=StepStatus(status), steps=steps.get(name, []))
        for name, status in (await session.exec(listed)).all()
    ]


def _public_step(row: RunStep) -> RunStepPublic:
    # The public id is the step's id in the job document, not the row's key.
    return public_view(RunStepPublic, row, id=row.step_id)
