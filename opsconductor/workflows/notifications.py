"""Notifications from workflows: a run's `notify` rules, and the channel test-send.

A job's rules send one message per matching rule at run events (start, approval, success,
failure) through the `notify-deliver` activity on the `notify` queue, with the rule's retry
policy. The run does not wait for a message before going on; it waits for the ones still being
retried only when it has ended (its status is already recorded then), so their retries happen.
A delivery that fails for good is in the delivery log and never fails the run.
"""

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from opsconductor.contracts.notifications import (
        CHANNEL_TEST_WORKFLOW,
        UNDELIVERABLE,
        DeliveryEvent,
        DeliveryOutcome,
        DeliveryRequest,
        DeliveryStatus,
        notify_deliver,
    )
    from opsconductor.contracts.queues import TaskQueue
    from opsconductor.contracts.runs import RunRequest, RunStatus
    from opsconductor.jobspec.document import NotifyRule, RunEvent
    from opsconductor.jobspec.messages import run_facts

# One attempt: apprise's own call is bounded well within it (activities/notify.py).
ATTEMPT_TIMEOUT = timedelta(seconds=60)
# How long a test-send may wait for a notify worker to pick it up.
WORKER_WAIT = timedelta(seconds=15)

_EVENT_OF_STATUS = {
    RunStatus.succeeded: RunEvent.success,
    RunStatus.failed: RunEvent.failure,
    # A cancelled run did not succeed: rules on failure hear about it.
    RunStatus.cancelled: RunEvent.failure,
}


def _retry_policy(rule: NotifyRule) -> RetryPolicy:
    return RetryPolicy(
        maximum_attempts=rule.retry.attempts,
        initial_interval=rule.retry.interval,
        backoff_coefficient=rule.retry.backoff,
        maximum_interval=rule.retry.max_interval,
        non_retryable_error_types=[UNDELIVERABLE],
    )


class Announcer:
    """Sends a run's rule notifications; one per job-run workflow."""

    def __init__(self) -> None:
        self._sending: list[asyncio.Task[Any]] = []

    def started(self, request: RunRequest, context: dict[str, Any]) -> None:
        self._announce(request, RunEvent.start, run_facts(context, workflow.now(), "running"))

    def waiting_approval(
        self, request: RunRequest, context: dict[str, Any], step_id: str, message: str
    ) -> None:
        facts = run_facts(
            context,
            workflow.now(),
            RunStatus.waiting_approval.value,
            approval={"step": step_id, "message": message},
        )
        self._announce(request, RunEvent.approval, facts)

    async def finished(
        self,
        request: RunRequest,
        context: dict[str, Any],
        status: RunStatus,
        reason: str | None,
    ) -> None:
        """Announces the end, then waits for every message of the run to be settled."""
        facts = run_facts(context, workflow.now(), status.value, reason)
        self._announce(request, _EVENT_OF_STATUS[status], facts)
        await asyncio.gather(*self._sending, return_exceptions=True)

    def _announce(self, request: RunRequest, event: RunEvent, context: dict[str, Any]) -> None:
        for rule in request.plan.document.notify:
            if event not in rule.on:
                continue
            delivery = DeliveryRequest(
                delivery_id=workflow.uuid4(),
                channel=rule.channel,
                event=DeliveryEvent(event.value),
                run_id=request.run_id,
                title=rule.title,
                body=rule.body,
                context=context,
            )
            self._sending.append(
                workflow.start_activity(
                    notify_deliver,
                    delivery,
                    task_queue=TaskQueue.notify.value,
                    start_to_close_timeout=ATTEMPT_TIMEOUT,
                    retry_policy=_retry_policy(rule),
                )
            )


@workflow.defn(name=CHANNEL_TEST_WORKFLOW)
class ChannelTestWorkflow:
    """Runs one delivery attempt of a test message and answers how it went. A workflow
    (rather than the API sending it) because only notify workers open a channel's URL."""

    @workflow.run
    async def run(self, request: DeliveryRequest) -> DeliveryOutcome:
        try:
            outcome: DeliveryOutcome = await workflow.execute_activity(
                notify_deliver,
                request,
                task_queue=TaskQueue.notify.value,
                schedule_to_start_timeout=WORKER_WAIT,
                start_to_close_timeout=ATTEMPT_TIMEOUT,
                # One attempt: the operator is waiting for this answer, not for retries.
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        except ActivityError as error:
            cause = error.cause
            detail = cause.message if isinstance(cause, ApplicationError) else str(cause or error)
            return DeliveryOutcome(
                delivery_id=request.delivery_id,
                status=DeliveryStatus.failed,
                attempts=1,
                detail=detail,
            )
        return outcome
