"""The connection-test workflow: runs `test-connection` once on the `ssh` queue, or
`test-winrm-connection` on the `winrm` queue for a WinRM target.

A workflow (rather than the API calling an activity) because only workers hold decrypted
credentials: the API starts this and waits for the answer.
"""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, TimeoutError, TimeoutType

with workflow.unsafe.imports_passed_through():
    from opsconductor.contracts.connection_tests import (
        CONNECTION_TEST_WORKFLOW,
        ConnectionTestRequest,
        ConnectionTestResult,
        test_connection,
        test_winrm_connection,
    )
    from opsconductor.contracts.queues import TaskQueue

# How long the test may wait for an ssh worker to pick it up, and then run.
WORKER_WAIT = timedelta(seconds=15)
TEST_TIMEOUT = timedelta(seconds=60)


@workflow.defn(name=CONNECTION_TEST_WORKFLOW)
class ConnectionTestWorkflow:
    @workflow.run
    async def run(self, request: ConnectionTestRequest) -> ConnectionTestResult:
        winrm = request.protocol == TaskQueue.winrm.value
        queue = TaskQueue.winrm if winrm else TaskQueue.ssh
        try:
            result: ConnectionTestResult = await workflow.execute_activity(
                test_winrm_connection if winrm else test_connection,
                request,
                task_queue=queue.value,
                schedule_to_start_timeout=WORKER_WAIT,
                start_to_close_timeout=TEST_TIMEOUT,
                # One attempt: the operator is waiting for this answer, not for retries.
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        except ActivityError as error:
            cause = error.cause
            if isinstance(cause, TimeoutError) and cause.type is TimeoutType.SCHEDULE_TO_START:
                detail = f"no {queue.value} worker took the test within {WORKER_WAIT.seconds}s"
            else:
                detail = f"the test failed on the worker: {cause or error}"
            return ConnectionTestResult(ok=False, detail=detail)
        return result
