"""Pages that create, edit, test and delete notification channels, with each channel's
delivery log. The URL (it holds the service's secrets) is write-only: the API never returns
it, so the edit form leaves it empty and an empty field keeps the stored one."""

import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from opsconductor.console.forms import Field, Form, Kind
from opsconductor.console.manage import creating
from opsconductor.console.pages import page
from opsconductor.console.session import ConsoleDep

router = APIRouter(include_in_schema=False)

MANAGER = "channels:manage"
# The newest deliveries shown on a channel's page; the rest through GET /notifications.
DELIVERIES = 20


def channel_form(item: Mapping[str, Any] | None = None) -> Form:
    url_hint = "an apprise URL, e.g. mailto://user:pass@smtp.example.com or json://host/path"
    if item is not None:
        url_hint = "write-only; leave empty to keep the stored one"
    fields = [
        Field("name", "Name", required=True),
        Field("url", "URL", Kind.password, url_hint, required=item is None),
        Field("description", "Description", Kind.textarea, cleared='""'),
    ]
    if item is None:
        return Form(
            "channel-form",
            "/api/v1/notification-channels",
            "Create channel",
            fields,
            next="/channels/{id}",
            notes=("The URL is write-only: nobody can read it back, here or through the API.",),
        )
    api = f"/api/v1/notification-channels/{item['id']}"
    return Form("channel-form", api, "Save", fields, "PATCH", "", "Edit", item)


@router.get("/channels/new")
async def new_channel(console: ConsoleDep) -> HTMLResponse:
    return creating(console, "channel", MANAGER, channel_form())


@router.get("/channels/{channel_id}")
async def channel_page(channel_id: uuid.UUID, console: ConsoleDep) -> HTMLResponse:
    item = await console.get(f"/notification-channels/{channel_id}")
    deliveries = None
    if console.can("notifications:read"):
        found = await console.get("/notifications", channel_id=str(channel_id), limit=DELIVERIES)
        deliveries = found["items"]
    return page(
        console,
        "channel.html",
        title=f"Channel {item['name']}",
        manager=MANAGER,
        item=item,
        facts={
            "service": f"{item['service']} ({item['scheme']})",
            "URL": item["url_redacted"],
            "description": item["description"],
        },
        forms=[channel_form(item)],
        test_send=f"/api/v1/notification-channels/{channel_id}/test",
        deliveries=deliveries,
        delete=f"/api/v1/notification-channels/{channel_id}",
        back=("Channels", "/lists/channels"),
    )
