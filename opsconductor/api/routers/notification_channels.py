"""Notification channels: admins manage them; every role reads them, without their URL."""

import uuid

from fastapi import APIRouter, status

from opsconductor.api.auth import AuditDep
from opsconductor.api.deps import KeyRingDep, PageDep, SessionDep, WorkflowsDep
from opsconductor.api.permissions import ChannelManager, ChannelReader
from opsconductor.models.notification import (
    ChannelCreate,
    ChannelPublic,
    ChannelTestResult,
    ChannelUpdate,
)
from opsconductor.models.page import Page
from opsconductor.services import channels

router = APIRouter(prefix="/notification-channels", tags=["notifications"])


@router.get("", name="channel.list")
async def list_channels(
    _: ChannelReader, session: SessionDep, page: PageDep
) -> Page[ChannelPublic]:
    return await channels.list_channels(session, page)


@router.post("", name="channel.create", status_code=status.HTTP_201_CREATED)
async def create_channel(
    body: ChannelCreate,
    _: ChannelManager,
    session: SessionDep,
    keyring: KeyRingDep,
    entry: AuditDep,
) -> ChannelPublic:
    channel = await channels.create_channel(session, keyring, body)
    entry.on("channel", channel.id)
    entry.detail.update(name=channel.name, scheme=channel.scheme)
    return channels.public(channel)


@router.get("/{id}", name="channel.read")
async def get_channel(id: uuid.UUID, _: ChannelReader, session: SessionDep) -> ChannelPublic:
    return channels.public(await channels.get_channel(session, id))


@router.patch("/{id}", name="channel.update")
async def update_channel(
    id: uuid.UUID,
    body: ChannelUpdate,
    _: ChannelManager,
    session: SessionDep,
    keyring: KeyRingDep,
    entry: AuditDep,
) -> ChannelPublic:
    # The names of the fields that changed, never their values (the URL is a secret).
    entry.detail["fields"] = sorted(body.model_fields_set)
    return channels.public(await channels.update_channel(session, keyring, id, body))


@router.delete("/{id}", name="channel.delete", status_code=status.HTTP_204_NO_CONTENT)
async def delete_channel(id: uuid.UUID, _: ChannelManager, session: SessionDep) -> None:
    await channels.delete_channel(session, id)


@router.post("/{id}/test", name="channel.test")
async def send_test(
    id: uuid.UUID, _: ChannelManager, session: SessionDep, workflows: WorkflowsDep, entry: AuditDep
) -> ChannelTestResult:
    """Sends a test message now (one attempt) and answers whether the service took it."""
    result = await channels.test_channel(session, workflows, id)
    entry.detail.update(ok=result.ok, delivery_id=str(result.delivery_id))
    return result
