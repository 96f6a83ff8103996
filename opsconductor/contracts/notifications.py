"""The notifications contract: one message to one channel through `notify-deliver`, and the
channel test-send workflow."""

import uuid
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from opsconductor.contracts import activity_contract

CHANNEL_TEST_WORKFLOW = "notification-channel-test"
# The failure type of a delivery no retry can fix: an unknown channel, a template that does not
# render.
UNDELIVERABLE = "Undeliverable"


def channel_test_workflow_id(delivery_id: uuid.UUID) -> str:
    return f"channel-test-{delivery_id}"


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
