"""The `job.run` action's activity, on the orchestration queue: it stores the child run exactly as
the API would (parameters checked, targets snapshotted, the job's current version) and hands the
workflow the request to start it with. The workflow then runs it as a child workflow, so a
cancelled parent cancels its children.
"""

import uuid

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from opsconductor.activities.steps import SecretMask, rejected, render_inputs
from opsconductor.config import Settings
from opsconductor.contracts.runs import run_display
from opsconductor.contracts.steps import StepRequest, StepResult
from opsconductor.db import unit_of_work
from opsconductor.errors import InputInvalid, NotFound
from opsconductor.jobspec.actions import JobRun
from opsconductor.models.run import Run, RunCreate
from opsconductor.services import jobs, runs
from opsconductor.services.credential_grants import requester_named


def child_run_id(request: StepRequest) -> uuid.UUID:
    """Derived from the parent run, step and target: a retried activity finds the run it
    already stored instead of storing another."""
    owner = request.target.name if request.target else ""
    return uuid.uuid5(request.run_id, f"{request.step_id}/{owner}")


class ChildRuns:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings):
        self._sessionmaker = sessionmaker
        self._settings = settings

    @activity.defn(name="orchestration-step")
    async def run_step(self, request: StepRequest) -> StepResult:
        # No secret resolver: a child run's parameters are stored on its record, so `secret()`
        # is refused here; the child job reads its secrets itself.
        inputs = render_inputs(request, JobRun, SecretMask())
        body = RunCreate(parameters=dict(inputs.parameters), targets=inputs.targets)
        try:
            async with unit_of_work(self._sessionmaker) as session:
                parent = await session.get(Run, request.run_id)
                origin = runs.RunOrigin(
                    triggered_by=f"run:{request.run_id}",
                    parent_run_id=request.run_id,
                    batch_size=self._settings.run_batch_size,
                    # A child run acts for its parent's requester, with their grants.
                    requester=await requester_named(session, parent.run_as if parent else None),
                )
                job = await jobs.get_job_by_name(session, inputs.job)
                prepared = await runs.prepare_run(
                    session, job, body, origin, run_id=child_run_id(request)
                )
        except NotFound as error:
            raise rejected(f"with.job: {error.detail}") from None
        except InputInvalid as error:
            where = "; ".join(
                f"{problem.path.replace('body.', 'with.', 1)}: {problem.message}"
                for problem in error.problems
            )
            raise rejected(f"the child run was refused: {where}") from None
        display = run_display(prepared.request, self._settings.public_url)
        return StepResult(
            outputs={
                "request": prepared.request.model_dump(mode="json"),
                "display": display.model_dump(mode="json"),
            }
        )
