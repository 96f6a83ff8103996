"""The `scheduled-run` workflow: what a Temporal schedule starts at each fire.

It stores the run (an activity, through the same service as the API) and then runs the job as
its child workflow `run-<id>`, waiting for it, so the schedule's overlap policy sees a fire as
busy for as long as its run lasts. Cancelling or terminating this workflow (overlap policies
`cancel_other`, `terminate_other`) asks the run to cancel, so it stops its remote commands and
records itself cancelled.
"""

import uuid
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from opsconductor.activities.scheduled_runs import (
        ScheduledFire,
        ScheduledRunPrepared,
        ScheduledRunStart,
    )
    from opsconductor.jobspec.runtime import RunSummary
    from opsconductor.services.runs import workflow_id_for
    from opsconductor.temporal.queues import TaskQueue
    from opsconductor.temporal.search_attributes import run_search_attributes
    from opsconductor.workflows.job_run import JobRunWorkflow

# Fixed, so the API can name a fire's run from the schedule's recent actions alone.
_RUN_IDS = uuid.UUID("0b5e7a52-8f0c-4f57-9d0e-2f5b8b7f3c11")
# A database away for longer than this loses the fire (Temporal records the failure).
PREPARE_TIMEOUT = timedelta(minutes=10)


def scheduled_run_id(workflow_id: str, first_execution_run_id: str) -> uuid.UUID:
    """The run a fire creates. The execution's run id is part of it: a backfill may start a
    workflow with the same id again, and that must be a new run."""
    return uuid.uuid5(_RUN_IDS, f"{workflow_id}/{first_execution_run_id}")


@workflow.defn(name="scheduled-run")
class ScheduledRunWorkflow:
    @workflow.run
    async def run(self, fire: ScheduledFire) -> RunSummary | None:
        info = workflow.info()
        run_id = scheduled_run_id(info.workflow_id, info.first_execution_run_id)
        prepared = await workflow.execute_activity(
            "create-scheduled-run",
            ScheduledRunStart(schedule_id=fire.schedule_id, run_id=run_id),
            result_type=ScheduledRunPrepared,
            start_to_close_timeout=timedelta(seconds=30),
            schedule_to_close_timeout=PREPARE_TIMEOUT,
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
        )
        if prepared.request is None:
            workflow.logger.info("no run started: %s", prepared.reason)
            return None
        return await workflow.execute_child_workflow(
            JobRunWorkflow.run,
            prepared.request,
            id=workflow_id_for(run_id),
            task_queue=TaskQueue.orchestration.value,
            search_attributes=run_search_attributes(
                prepared.request.job_id, prepared.request.job_name, prepared.request.triggered_by
            ),
            parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
        )
