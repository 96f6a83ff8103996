"""The `scheduled-run` workflow: what a Temporal schedule starts at each fire.

It stores the run (an activity, through the same service as the API) and then runs the job as
its child workflow `run-<id>`, waiting for it, so the schedule's overlap policy sees a fire as
busy for as long as its run lasts. Cancelling or terminating this workflow (overlap policies
`cancel_other`, `terminate_other`) asks the run to cancel, so it stops its remote commands and
records itself cancelled.
"""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from opsconductor.contracts.queues import TaskQueue
    from opsconductor.contracts.runs import RunSummary, run_search_attributes, run_workflow_id
    from opsconductor.contracts.schedules import (
        SCHEDULED_RUN_WORKFLOW,
        ScheduledFire,
        ScheduledRunStart,
        create_scheduled_run,
        scheduled_run_id,
    )
    from opsconductor.workflows.job_run import JobRunWorkflow

# A database away for longer than this loses the fire (Temporal records the failure).
PREPARE_TIMEOUT = timedelta(minutes=10)


@workflow.defn(name=SCHEDULED_RUN_WORKFLOW)
class ScheduledRunWorkflow:
    @workflow.run
    async def run(self, fire: ScheduledFire) -> RunSummary | None:
        info = workflow.info()
        run_id = scheduled_run_id(info.workflow_id, info.first_execution_run_id)
        prepared = await workflow.execute_activity(
            create_scheduled_run,
            ScheduledRunStart(schedule_id=fire.schedule_id, run_id=run_id),
            start_to_close_timeout=timedelta(seconds=30),
            schedule_to_close_timeout=PREPARE_TIMEOUT,
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
        )
        if prepared.request is None:
            workflow.logger.info("no run started: %s", prepared.reason)
            return None
        display = prepared.display
        return await workflow.execute_child_workflow(
            JobRunWorkflow.run,
            prepared.request,
            id=run_workflow_id(run_id),
            task_queue=TaskQueue.orchestration.value,
            search_attributes=run_search_attributes(prepared.request),
            parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
            static_summary=display.summary if display else None,
            static_details=display.details if display else None,
        )
