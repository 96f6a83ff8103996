"""Notifications from workflows: a run's `notify` rules, and the channel test-send.

A job's rules send one message per matching rule at run events (start, approval, success,
failure). Each message is a `notification-delivery` workflow of its own, started by the run as a
child it abandons (ParentClosePolicy.ABANDON): the run never waits for a message, not even at its
end, so a channel that is down or a `notify` queue nobody serves cannot hold a run (or the
`job.run` step and the schedule waiting for it) open. The delivery workflow writes the delivery
log row `pending` at once, runs `notify-deliver` on the `notify` queue with the rule's retry
policy, each attempt bounded, and records `failed` with why when no notify worker picked an
attempt up within `WORKER_WAIT`, or when every attempt failed. A delivery never fails the run.

Runs started before this change sent their messages as activities of their own and waited for
them at the end; `workflow.patched(APART_PATCH)` keeps that path for their replay.
"""

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    TimeoutError,
    TimeoutType,
)

with workflow.unsafe.imports_passed_through():
    from opsconductor.contracts.notifications import (
        CHANNEL_TEST_WORKFLOW,
        DELIVERY_WORKFLOW,
        PASSWORD_RESET_MAIL_WORKFLOW,
        UNDELIVERABLE,
        DeliveryEvent,
        DeliveryOrder,
        DeliveryOutcome,
        DeliveryRecord,
        DeliveryRequest,
        DeliveryRetry,
        DeliveryStatus,
        PasswordResetMail,
        delivery_workflow_id,
        notify_deliver,
        notify_password_reset,
        record_delivery,
    )
    from opsconductor.contracts.queues import TaskQueue
    from opsconductor.contracts.runs import RunRequest, RunStatus
    from opsconductor.jobspec.document import NotifyRule, RunEvent
    from opsconductor.jobspec.durations import format_duration
    from opsconductor.jobspec.messages import run_facts
    from opsconductor.workflows.patches import APART_PATCH, patched

# One attempt: apprise's own call is bounded well within it (activities/notify.py).
ATTEMPT_TIMEOUT = timedelta(seconds=60)
# How long a test-send may wait for a notify worker to pick it up.
TEST_WORKER_WAIT = timedelta(seconds=15)
# How long each attempt of a rule's message waits for a notify worker before the delivery is
# recorded failed: long enough for a notify worker's restart, short enough to be told.
WORKER_WAIT = timedelta(minutes=10)

_EVENT_OF_STATUS = {
    RunStatus.succeeded: RunEvent.success,
    RunStatus.failed: RunEvent.failure,
    # A cancelled run did not succeed: rules on failure hear about it.
    RunStatus.cancelled: RunEvent.failure,
}


def _retry_policy(retry: DeliveryRetry) -> RetryPolicy:
    return RetryPolicy(
        maximum_attempts=retry.attempts,
        initial_interval=retry.interval,
        backoff_coefficient=retry.backoff,
        maximum_interval=retry.max_interval,
        non_retryable_error_types=[UNDELIVERABLE],
    )


def _retry_of(rule: NotifyRule) -> DeliveryRetry:
    return DeliveryRetry(
        attempts=rule.retry.attempts,
        interval=rule.retry.interval,
        backoff=rule.retry.backoff,
        max_interval=rule.retry.max_interval,
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
        """Announces the end, then waits until every message's delivery workflow has started
        (a run started before APART_PATCH waits for its messages themselves)."""
        facts = run_facts(context, workflow.now(), status.value, reason)
        self._announce(request, _EVENT_OF_STATUS[status], facts)
        await self.sent()

    async def sent(self) -> None:
        """Waits until every message announced so far has started its delivery workflow."""
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
            if patched(APART_PATCH):
                order = DeliveryOrder(
                    request=delivery, retry=_retry_of(rule), worker_wait=WORKER_WAIT
                )
                # The run waits at its end for the child's start (a moment), never its end.
                self._sending.append(asyncio.create_task(_start_delivery(order)))
                continue
            self._sending.append(
                workflow.start_activity(
                    notify_deliver,
                    delivery,
                    task_queue=TaskQueue.notify.value,
                    start_to_close_timeout=ATTEMPT_TIMEOUT,
                    retry_policy=_retry_policy(_retry_of(rule)),
                )
            )


async def _start_delivery(order: DeliveryOrder) -> None:
    await workflow.start_child_workflow(
        DeliveryWorkflow.run,
        order,
        id=delivery_workflow_id(order.request.delivery_id),
        task_queue=TaskQueue.orchestration.value,
        parent_close_policy=workflow.ParentClosePolicy.ABANDON,
    )


@workflow.defn(name=DELIVERY_WORKFLOW)
class DeliveryWorkflow:
    """One rule message, apart from its run: pending in the delivery log at once, then
    delivered, or failed with why (every attempt failed, or no notify worker took one)."""

    @workflow.run
    async def run(self, order: DeliveryOrder) -> DeliveryOutcome:
        request = order.request
        await self._record(order, DeliveryStatus.pending, "waiting for a notify worker")
        try:
            outcome: DeliveryOutcome = await workflow.execute_activity(
                notify_deliver,
                request,
                task_queue=TaskQueue.notify.value,
                schedule_to_start_timeout=order.worker_wait,
                start_to_close_timeout=ATTEMPT_TIMEOUT,
                retry_policy=_retry_policy(order.retry),
            )
        except ActivityError as error:
            detail = _why_undelivered(error, order)
            # The notify worker recorded a failure it saw itself; this records the rest.
            await self._record(order, DeliveryStatus.failed, detail)
            return DeliveryOutcome(
                delivery_id=request.delivery_id,
                status=DeliveryStatus.failed,
                attempts=order.retry.attempts,
                detail=detail,
            )
        return outcome

    async def _record(self, order: DeliveryOrder, status: DeliveryStatus, detail: str) -> None:
        record = DeliveryRecord(
            delivery_id=order.request.delivery_id,
            channel=order.request.channel,
            event=order.request.event,
            run_id=order.request.run_id,
            status=status,
            detail=detail,
        )
        # The log is best effort: a database that stays away must neither keep this open for
        # ever nor stop the message itself.
        try:
            await workflow.execute_local_activity(
                record_delivery,
                record,
                start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=timedelta(minutes=5),
            )
        except FailureError as error:
            # A local activity's failure comes as an ActivityError or as the failure itself.
            workflow.logger.warning(f"delivery log not written ({status.value}): {error}")


def _why_undelivered(error: ActivityError, order: DeliveryOrder) -> str:
    cause = error.cause
    if isinstance(cause, TimeoutError) and cause.type is TimeoutType.SCHEDULE_TO_START:
        return (
            f"no notify worker picked the delivery up within {format_duration(order.worker_wait)}: "
            "is a worker serving the notify queue?"
        )
    if isinstance(cause, ApplicationError):
        return cause.message
    return str(cause or error)


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
                schedule_to_start_timeout=TEST_WORKER_WAIT,
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


@workflow.defn(name=PASSWORD_RESET_MAIL_WORKFLOW)
class PasswordResetMailWorkflow:
    """Sends one "forgot password" link through the notify worker, which alone opens a channel's
    URL. Nobody waits for it: the API answers the request the same way before it ends."""

    @workflow.run
    async def run(self, request: PasswordResetMail) -> None:
        await workflow.execute_activity(
            notify_password_reset,
            request,
            task_queue=TaskQueue.notify.value,
            schedule_to_start_timeout=WORKER_WAIT,
            start_to_close_timeout=ATTEMPT_TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
