"""The notifications contract: one message to one channel through `notify-deliver`, the
delivery workflow that sends a run's rule messages apart from the run, and the channel
test-send workflow."""

import uuid
from datetime import timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from opsconductor.contracts import activity_contract

CHANNEL_TEST_WORKFLOW = "notification-channel-test"
DELIVERY_WORKFLOW = "notification-delivery"
# The failure type of a delivery no retry can fix: an unknown channel, a template that does not
# render.
UNDELIVERABLE = "Undeliverable"


def channel_test_workflow_id(delivery_id: uuid.UUID) -> str:
    return f"channel-test-{delivery_id}"


def delivery_workflow_id(delivery_id: uuid.UUID) -> str:
    return f"notification-{delivery_id}"


class DeliveryEvent(StrEnum):
    """Why a message was sent: a job rule's run event, a `notify.send` step, or a test-send."""

    start = "start"
    success = "success"
    failure = "failure"
    approval = "approval"
    step = "step"
    test = "test"


class DeliveryStatus(StrEnum):
    # Not delivered yet: the first attempt is running, or a failed one will be retried.
    pending = "pending"
    delivered = "delivered"
    failed = "failed"


class DeliveryRequest(BaseModel):
    """One message to one channel, as the `notify-deliver` activity receives it: the channel by
    name (only the worker reveals its URL) and the message as templates over `context`."""

    delivery_id: uuid.UUID
    channel: str
    event: DeliveryEvent
    run_id: uuid.UUID | None = None
    # None: the default title and body (jobspec/messages.py).
    title: str | None = None
    body: str | None = None
    context: dict[str, Any] = {}


class DeliveryOutcome(BaseModel):
    delivery_id: uuid.UUID
    status: DeliveryStatus
    attempts: int
    detail: str


@activity_contract
async def notify_deliver(request: DeliveryRequest) -> DeliveryOutcome:
    """One delivery attempt, written to the delivery log (activities/notify.py)."""
    raise NotImplementedError("a contract: notify workers register its implementation")


class DeliveryRetry(BaseModel):
    """A rule's retry policy (jobspec `retry`), as the delivery workflow applies it."""

    attempts: int
    interval: timedelta
    backoff: float
    max_interval: timedelta | None = None


class DeliveryOrder(BaseModel):
    """What the delivery workflow sends: the message, its retries, and how long it waits for a
    notify worker to pick an attempt up before the delivery is recorded failed."""

    request: DeliveryRequest
    retry: DeliveryRetry
    worker_wait: timedelta


class DeliveryRecord(BaseModel):
    """A delivery log row written by the delivery workflow itself: `pending` before the first
    attempt is handed to a notify worker, `failed` when no attempt could end it."""

    delivery_id: uuid.UUID
    channel: str
    event: DeliveryEvent
    run_id: uuid.UUID | None
    status: DeliveryStatus
    detail: str


@activity_contract
async def record_delivery(record: DeliveryRecord) -> None:
    """Writes the delivery log row from the orchestration worker (activities/notify.py); never
    replaces what a notify worker's attempt wrote."""
    raise NotImplementedError("a contract: orchestration workers register its implementation")


PASSWORD_RESET_MAIL_WORKFLOW = "password-reset-mail"  # noqa: S105 (a name, not a secret)


def password_reset_mail_workflow_id(request_id: uuid.UUID) -> str:
    return f"password-reset-mail-{request_id}"


class PasswordResetMail(BaseModel):
    """A "forgot password" request as the notify worker receives it: what the person typed
    (a username or an email address) and the email channel an admin chose. No token: the
    worker issues it, so it is in no workflow history."""

    login: str
    channel: str


@activity_contract
async def notify_password_reset(request: PasswordResetMail) -> None:
    """Issues a reset token for the enabled user with that username or email, if there is one
    with an email, and mails them the link (activities/notify.py)."""
    raise NotImplementedError("a contract: notify workers register its implementation")
