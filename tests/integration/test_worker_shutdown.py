"""A step activity cut off by its worker's shutdown fails as WorkerShutdown and says which
attempt it was (so the workflow re-runs it with the right count); a non-step activity and a
run's own cancel are left alone. Real Temporal dev server, real workers with our interceptor;
the whole path through real processes and sshd is tests/e2e/test_faults.py."""

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.worker import Worker
from temporalio.workflow import ActivityCancellationType

from opsconductor.contracts.steps import WORKER_SHUTDOWN, StepRequest, StepResult
from opsconductor.worker.shutdown import StepShutdownInterceptor

pytestmark = pytest.mark.integration

GRACE = timedelta(milliseconds=300)
STARTED = 2  # PendingActivityState.PENDING_ACTIVITY_STATE_STARTED


@activity.defn(name="shutdown-test-step")
async def step_that_fails_once_then_hangs(request: StepRequest) -> StepResult:
    if activity.info().attempt == 1:
        raise ApplicationError("exited with 1", type="StepFailed")
    while True:  # a remote command that outlasts the grace, heartbeating like ours
        activity.heartbeat()
        await asyncio.sleep(0.05)


@activity.defn(name="shutdown-test-other")
async def other_hanging_activity(name: str) -> str:
    await asyncio.sleep(30)
    return name


@workflow.defn(name="shutdown-test", sandboxed=False)
class ShutdownTestWorkflow:
    @workflow.run
    async def run(self, step: bool) -> str:
        """How the activity ended, as the workflow sees it: the failure's type, message and
        the attempt its details carry."""
        argument: object = (
            StepRequest(
                run_id=workflow.uuid4(), step_id="a", action="ssh.command", with_={}, context={}
            )
            if step
            else "x"
        )
        try:
            await workflow.execute_activity(
                "shutdown-test-step" if step else "shutdown-test-other",
                argument,
                start_to_close_timeout=timedelta(seconds=30),
                heartbeat_timeout=timedelta(seconds=5),
                # The workflow sees how the activity really ended, even when it is cancelled.
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                retry_policy=RetryPolicy(
                    maximum_attempts=2,
                    initial_interval=timedelta(milliseconds=10),
                    non_retryable_error_types=[WORKER_SHUTDOWN],
                ),
            )
        except ActivityError as error:
            cause = error.cause
            if isinstance(cause, CancelledError):
                raise
            assert isinstance(cause, ApplicationError)
            details = cause.details[0] if cause.details else {}
            return f"{cause.type}|{cause.message}|{details}"
        return "completed"


async def started(
    client: Client, queue: str, grace: timedelta = GRACE
) -> tuple[Worker, asyncio.Task[None]]:
    worker = Worker(
        client,
        task_queue=queue,
        workflows=[ShutdownTestWorkflow],
        activities=[step_that_fails_once_then_hangs, other_hanging_activity],
        graceful_shutdown_timeout=grace,
        interceptors=[StepShutdownInterceptor()],
    )
    return worker, asyncio.create_task(worker.run())


async def hanging_attempt(handle: WorkflowHandle[Any, str], attempt: int) -> None:
    """Until the activity's `attempt` runs on a worker."""
    for _ in range(200):
        pending = (await handle.describe()).raw_description.pending_activities
        if pending and pending[0].attempt == attempt and pending[0].state == STARTED:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"attempt {attempt} never started")


async def ended_by_shutdown(temporal_address: str, step: bool) -> str:
    client = await Client.connect(temporal_address)
    queue = f"shutdown-{uuid.uuid4().hex}"
    worker, running = await started(client, queue)
    handle = await client.start_workflow(ShutdownTestWorkflow.run, step, id=queue, task_queue=queue)
    # The attempt that will hang: the step's second, the other activity's first.
    await hanging_attempt(handle, 2 if step else 1)
    await worker.shutdown()
    await running
    # The workflow's next task runs on a fresh worker (the old one is gone).
    replacement, again = await started(client, queue)
    try:
        return await handle.result()
    finally:
        await replacement.shutdown()
        await again


async def test_a_step_cut_off_by_shutdown_fails_as_worker_shutdown_naming_its_attempt(
    temporal_address: str,
) -> None:
    ended = await ended_by_shutdown(temporal_address, step=True)

    kind, message, details = ended.split("|")
    assert kind == WORKER_SHUTDOWN
    assert message == "attempt 2 was stopped: its worker shut down before the step ended"
    assert "'attempt': 2" in details


async def test_other_activities_keep_the_sdks_shutdown_failure(temporal_address: str) -> None:
    ended = await ended_by_shutdown(temporal_address, step=False)

    kind, message, details = ended.split("|")
    assert (kind, details) == (WORKER_SHUTDOWN, "{}")
    assert "attempt" not in message


async def test_a_run_cancelled_while_its_worker_drains_is_cancelled_not_re_run(
    temporal_address: str,
) -> None:
    client = await Client.connect(temporal_address)
    queue = f"shutdown-{uuid.uuid4().hex}"
    draining, running = await started(client, queue, grace=timedelta(seconds=20))
    handle = await client.start_workflow(ShutdownTestWorkflow.run, True, id=queue, task_queue=queue)
    await hanging_attempt(handle, 2)
    stopping = asyncio.create_task(draining.shutdown())
    # The deploy's new worker (a process of its own: a client of its own) takes the
    # workflow's next tasks; the draining one keeps running the step.
    replacement, again = await started(await Client.connect(temporal_address), queue)
    try:
        await handle.cancel()  # reaches the draining worker's activity by its heartbeat
        with pytest.raises(WorkflowFailureError) as ended:
            await handle.result()
        # The activity reported a cancel (not WorkerShutdown), and the worker stopped
        # as soon as it had, long before its grace.
        assert isinstance(ended.value.cause, CancelledError), ended.value.cause
        await asyncio.wait_for(stopping, 10)
    finally:
        await draining.shutdown()
        await running
        await replacement.shutdown()
        await again
