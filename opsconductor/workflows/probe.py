"""The fleet probe: asks every task queue to run one activity and reports which answered."""

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, TimeoutType
from temporalio.exceptions import TimeoutError as ActivityTimeoutError

with workflow.unsafe.imports_passed_through():
    from opsconductor.contracts.probe import (
        FLEET_PROBE_WORKFLOW,
        PingRequest,
        ProbeReport,
        ProbeRequest,
        QueueAnswer,
        ping,
    )


@workflow.defn(name=FLEET_PROBE_WORKFLOW)
class FleetProbeWorkflow:
    @workflow.run
    async def run(self, request: ProbeRequest) -> ProbeReport:
        answers = await asyncio.gather(
            *(self._ask(queue, request.wait_seconds) for queue in request.queues)
        )
        return ProbeReport(answers=list(answers))

    async def _ask(self, queue: str, wait_seconds: float) -> QueueAnswer:
        try:
            reply = await workflow.execute_activity(
                ping,
                PingRequest(queue=queue),
                task_queue=queue,
                schedule_to_start_timeout=timedelta(seconds=wait_seconds),
                start_to_close_timeout=timedelta(seconds=10),
                # A queue without a worker must be reported, not waited on forever.
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        except ActivityError as error:
            cause = error.cause
            if (
                isinstance(cause, ActivityTimeoutError)
                and cause.type is TimeoutType.SCHEDULE_TO_START
            ):
                message = f"no worker took the task within {wait_seconds:g}s"
            else:
                message = str(cause or error)
            return QueueAnswer(queue=queue, ok=False, error=message)
        return QueueAnswer(queue=queue, ok=True, reply=reply)
