"""Starting a run's workflow from its row: the request the row holds, the start itself, and the
run id an Idempotency-Key stands for.

Used by the API's start (services/runs.py) and by the run reconciler, which starts a run whose
workflow never started (services/run_reconciler.py). Every start is idempotent: the workflow id
is the run's, a second start while it runs answers the running one (`USE_EXISTING`), and one
after it closed is refused (`REJECT_DUPLICATE`), so no run executes twice.
"""

import uuid

from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from opsconductor.contracts.queues import TaskQueue
from opsconductor.contracts.runs import (
    RunRequest,
    RunSummary,
    run_display,
    run_search_attributes,
    run_workflow_id,
)
from opsconductor.contracts.steps import DEFAULT_CHUNK_SIZE
from opsconductor.errors import DependencyUnavailable, LaunchUncertain
from opsconductor.jobspec.document import JobDocument
from opsconductor.jobspec.plan import compile_plan
from opsconductor.models.run import Run
from opsconductor.services import jobs
from opsconductor.workflows.job_run import JobRunWorkflow

# The errors after which a start may or may not have happened: no answer came back in time.
AMBIGUOUS_START = frozenset({RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNAVAILABLE})
# Run ids derived from Idempotency-Keys live in a namespace of their own.
IDEMPOTENCY_NAMESPACE = uuid.UUID("5d0c7a57-5be2-4c1e-9c62-0ddc0a1d3e7e")


def idempotent_run_id(job_id: uuid.UUID, user_id: uuid.UUID, key: str) -> uuid.UUID:
    """The run a key stands for, per job and user: the same key always names the same run (and
    so the same workflow id), whichever API replica answers."""
    return uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{job_id}/{user_id}/{key}")


async def requester_of(session: AsyncSession, run: Run) -> str:
    """Who asked for the run: for a child run, whoever asked for the run at the top of its
    chain, so a job that starts another cannot be used to approve one's own work."""
    while run.parent_run_id is not None:
        parent = await session.get(Run, run.parent_run_id)
        if parent is None:
            break
        run = parent
    return run.triggered_by


def request_for(run: Run, document: JobDocument, requester: str) -> RunRequest:
    return RunRequest(
        run_id=run.id,
        job_id=run.job_id,
        job_name=run.job_name,
        job_version=run.job_version,
        plan=compile_plan(document),
        parameters=run.parameters,
        target_names=[snapshot["name"] for snapshot in run.targets],
        triggered_by=run.triggered_by,
        requester=requester,
        request_id=run.request_id,
        parent_run_id=run.parent_run_id,
        batch_size=run.batch_size,
        chunk_size=DEFAULT_CHUNK_SIZE,
    )


async def stored_request(session: AsyncSession, run: Run) -> RunRequest:
    """The request of a stored run, from the exact job version it was accepted for; NotFound
    when that version (or its job) is gone."""
    _, version = await jobs.get_job_version(session, run.job_id, run.job_version)
    document = JobDocument.model_validate(version.document)
    return request_for(run, document, await requester_of(session, run))


async def launch(
    temporal: Client, request: RunRequest, console_url: str
) -> WorkflowHandle[JobRunWorkflow, RunSummary]:
    """Starts the run's workflow; called once its row is committed. Raises `LaunchUncertain`
    when Temporal did not answer in time (the start may have happened) and
    `DependencyUnavailable` when it refused. `console_url` is the public URL its details
    link to."""
    workflow_id = run_workflow_id(request.run_id)
    display = run_display(request, console_url)
    try:
        return await temporal.start_workflow(
            JobRunWorkflow.run,
            request,
            id=workflow_id,
            task_queue=TaskQueue.orchestration.value,
            search_attributes=run_search_attributes(request),
            static_summary=display.summary,
            static_details=display.details,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        # It ran and closed: this start is the one that already happened.
        return temporal.get_workflow_handle_for(JobRunWorkflow.run, workflow_id)
    except RPCError as error:
        if error.status in AMBIGUOUS_START:
            raise LaunchUncertain(
                f"Temporal did not answer the start in time: {error.message}"
            ) from None
        raise DependencyUnavailable(f"Temporal did not accept the run: {error.message}") from None
