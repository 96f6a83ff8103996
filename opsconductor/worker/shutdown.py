"""A step attempt cut off by its worker's shutdown fails as `WorkerShutdown`, not as a cancel.

A worker told to stop polls no more at once and lets its running activities go on for the
grace (`Settings.worker_shutdown_grace`); then Temporal cancels them with the reason "worker
shutdown". Left alone, that cancellation reaches the workflow like any failure: the step fails,
or spends one of its retries. Here, for step activities (every one takes a `StepRequest`), it
becomes an `ApplicationError` of type `WORKER_SHUTDOWN`, which the workflow answers by running
the step again on a live worker without counting it against the step's retries
(workflows/step_execution.py). A user's cancel and a step's own timeout stay what they are:
their cancellation details say so, and they pass through untouched.
"""

import asyncio
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from opsconductor.contracts.steps import WORKER_SHUTDOWN, StepRequest, StepResult


class StepShutdownInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _StepShutdownInbound(next)


class _StepShutdownInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await self.next.execute_activity(input)
        except asyncio.CancelledError:
            request = input.args[0] if input.args else None
            if not isinstance(request, StepRequest) or not cut_by_shutdown():
                raise
            # The activity's own cancellation handling (killing the remote command) has run.
            activity_attempt = activity.info().attempt
            message = (
                f"attempt {request.attempt(activity_attempt)} was stopped: its worker shut "
                "down before the step ended"
            )
            raise ApplicationError(
                message, StepResult(attempt=activity_attempt, error=message), type=WORKER_SHUTDOWN
            ) from None


def cut_by_shutdown() -> bool:
    """Whether the running activity was cancelled because its worker is stopping (and for no
    other reason: a cancel the run asked for wins)."""
    details = activity.cancellation_details()
    return details is not None and details.worker_shutdown and not details.cancel_requested
