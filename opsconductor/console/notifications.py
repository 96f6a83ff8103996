"""The notification delivery log across every channel and run (`GET /api/v1/notifications`),
filtered by status, event, channel and run, with each delivery's attempts."""

import uuid

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from opsconductor.console.manage import CHOICES
from opsconductor.console.pages import PAGE, page
from opsconductor.console.session import ConsoleDep
from opsconductor.contracts.notifications import DeliveryEvent, DeliveryStatus

router = APIRouter(include_in_schema=False)

STATUSES = [status.value for status in DeliveryStatus]
EVENTS = [event.value for event in DeliveryEvent]


@router.get("/notifications")
async def deliveries_page(
    console: ConsoleDep,
    status: str = "",
    event: str = "",
    channel_id: str = "",
    run_id: str = "",
    offset: int = 0,
) -> HTMLResponse:
    filters = {"status": status, "event": event, "channel_id": channel_id, "run_id": run_id}
    # Typed by hand, so checked here and said at the field; the other filters are choices.
    problem = "" if not run_id or _is_uuid(run_id) else "not a run id (the UUID in its address)"
    answer = None
    if not problem:
        answer = await console.get(
            "/notifications",
            status=status if status in STATUSES else None,
            event=event if event in EVENTS else None,
            channel_id=channel_id,
            run_id=run_id,
            limit=PAGE,
            offset=max(offset, 0),
        )
    channels = (await console.get("/notification-channels", limit=CHOICES))["items"]
    return page(
        console,
        "notifications.html",
        answer=answer,
        filters=filters,
        problem=problem,
        channels=channels,
        statuses=STATUSES,
        events=EVENTS,
    )


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
