"""The delivery log: every message sent to a channel, its status, attempts and last error."""

import uuid

from fastapi import APIRouter

from opsconductor.api.deps import PageDep, SessionDep
from opsconductor.api.permissions import NotificationReader
from opsconductor.contracts.notifications import DeliveryEvent, DeliveryStatus
from opsconductor.models.notification import DeliveryPublic, NotificationDelivery
from opsconductor.models.page import Page
from opsconductor.services import channels

router = APIRouter(prefix="/notifications", tags=["notifications"])


@router.get("", name="notification.list", response_model=Page[DeliveryPublic])
async def list_deliveries(
    _: NotificationReader,
    session: SessionDep,
    page: PageDep,
    run_id: uuid.UUID | None = None,
    channel_id: uuid.UUID | None = None,
    status: DeliveryStatus | None = None,
    event: DeliveryEvent | None = None,
) -> Page[NotificationDelivery]:
    return await channels.list_deliveries(
        session,
        run_id=run_id,
        channel_id=channel_id,
        status=status,
        event=event,
        page=page,
    )
