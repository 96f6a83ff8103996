"""`create-scheduled-run`: a schedule's fire stores its run through the same service as the API.

A Temporal schedule can only start a workflow; this activity is how that workflow gets a run
row: the parameters are checked against the job's current version and the targets resolved
to a snapshot, exactly as for `POST /jobs/{id}/runs`.
"""

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from opsconductor.config import Settings
from opsconductor.contracts import implements
from opsconductor.contracts.runs import RunStatus, run_display
from opsconductor.contracts.schedules import (
    ScheduledRunPrepared,
    ScheduledRunStart,
    create_scheduled_run,
)
from opsconductor.db import unit_of_work
from opsconductor.errors import InputInvalid, NotFound
from opsconductor.models.run import Run, RunCreate
from opsconductor.models.schedule import Schedule
from opsconductor.services import jobs, runs
from opsconductor.services.credential_grants import requester_named


class ScheduledRuns:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings):
        self._sessionmaker = sessionmaker
        self._settings = settings

    @implements(create_scheduled_run)
    async def create(self, start: ScheduledRunStart) -> ScheduledRunPrepared:
        async with unit_of_work(self._sessionmaker) as session:
            schedule = await session.get(Schedule, start.schedule_id)
            if schedule is None:
                return ScheduledRunPrepared(reason="the schedule no longer exists")
            stored = await session.get(Run, start.run_id)
            if stored is not None and stored.status is RunStatus.failed:
                # A retry after the refusal below was committed.
                return ScheduledRunPrepared(reason=stored.reason)
            origin = runs.RunOrigin(
                triggered_by=f"schedule:{schedule.name}",
                batch_size=self._settings.run_batch_size,
                # A schedule runs with the grants of who created or last changed it.
                requester=await requester_named(session, schedule.run_as),
            )
            body = RunCreate(parameters=schedule.parameters, targets=schedule.targets)
            try:
                job = await jobs.get_job(session, schedule.job_id)
                # Idempotent: a retry after our commit answers the run already stored.
                prepared = await runs.prepare_run(session, job, body, origin, run_id=start.run_id)
            except NotFound as error:
                return ScheduledRunPrepared(reason=error.detail)
            except InputInvalid as error:
                reason = _refusal(schedule, error)
                await runs.record_refused(session, job, body, origin, start.run_id, reason)
                activity.logger.warning(
                    "a scheduled run was refused",
                    extra={"schedule_id": str(schedule.id), "run_id": str(start.run_id)},
                )
                return ScheduledRunPrepared(reason=reason)
        return ScheduledRunPrepared(
            request=prepared.request,
            display=run_display(prepared.request, self._settings.public_url),
        )


def _refusal(schedule: Schedule, error: InputInvalid) -> str:
    # The service names request paths (`body.parameters.x`); here the schedule holds them.
    problems = "; ".join(
        f"{problem.path.removeprefix('body.')}: {problem.message}" for problem in error.problems
    )
    return f"schedule {schedule.name!r} could not start a run: {error.detail} ({problems})"
