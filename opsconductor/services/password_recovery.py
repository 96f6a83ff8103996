""" "Forgot password": the email channel an admin chose for reset links, and the request anyone
may make without signing in.

The request is answered the same way whoever it names (no enumeration): the API looks nobody
up. It starts a `password-reset-mail` workflow with what was typed, and the notify worker (the
only place a channel's URL is opened) finds the user, issues the one-time token and mails the
link; the token is in no workflow history, answer or log. Requests are throttled per name and
per client address like failed sign-ins, each one counted.
"""

import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError

from opsconductor.config import Settings
from opsconductor.contracts.notifications import (
    PasswordResetMail,
    password_reset_mail_workflow_id,
)
from opsconductor.contracts.queues import TaskQueue
from opsconductor.errors import DependencyUnavailable, InputInvalid
from opsconductor.models.notification import NotificationChannel
from opsconductor.models.settings import (
    PasswordResetSettings,
    PasswordResetSettingsPublic,
    PasswordResetSettingsUpdate,
)
from opsconductor.services import throttle
from opsconductor.services.channels import get_channel
from opsconductor.services.workflows import Workflows
from opsconductor.workflows.notifications import PasswordResetMailWorkflow

# apprise's email services: a reset link goes to the user's own address, so only these fit.
EMAIL_SCHEMES = frozenset({"mailto", "mailtos"})


async def read_settings(session: AsyncSession) -> PasswordResetSettingsPublic:
    row = await session.get(PasswordResetSettings, 1)
    channel = None
    if row is not None and row.channel_id is not None:
        channel = await session.get(NotificationChannel, row.channel_id)
    return PasswordResetSettingsPublic(
        channel_id=channel.id if channel else None,
        channel_name=channel.name if channel else None,
        updated_at=row.updated_at if row else None,
    )


async def update_settings(
    session: AsyncSession, body: PasswordResetSettingsUpdate, now: datetime
) -> PasswordResetSettingsPublic:
    """Chooses the email channel (or none: no e-mailed resets)."""
    if body.channel_id is not None:
        channel = await get_channel(session, body.channel_id)
        if channel.scheme not in EMAIL_SCHEMES:
            raise InputInvalid.at(
                "body.channel_id",
                f"is a {channel.service} channel; reset links need an email one (mailto://)",
            )
    row = await session.get(PasswordResetSettings, 1) or PasswordResetSettings(id=1)
    row.channel_id = body.channel_id
    row.updated_at = now
    session.add(row)
    await session.flush()
    return await read_settings(session)


def _counters(settings: Settings, login: str, address: str | None) -> list[throttle.Counter]:
    # Keys of their own, so asking for links never locks anyone out of signing in.
    return [
        throttle.Counter(f"reset:{counter.key}", counter.limit)
        for counter in throttle.counters_for(settings, login, address)
    ]


async def request_reset(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    workflows: Workflows,
    login: str,
    address: str | None,
    now: datetime,
) -> None:
    counters = _counters(settings, login.strip(), address)
    window = timedelta(seconds=settings.login_window_seconds)
    await throttle.ensure_allowed(
        session, counters, window, now, "too many reset links asked for; try again later"
    )
    await throttle.count_failure(sessionmaker, counters, window, now)
    chosen = await read_settings(session)
    if chosen.channel_name is None:
        return
    request = PasswordResetMail(login=login.strip(), channel=chosen.channel_name)
    try:
        await workflows.client.start_workflow(
            PasswordResetMailWorkflow.run,
            request,
            id=password_reset_mail_workflow_id(uuid.uuid4()),
            task_queue=TaskQueue.orchestration.value,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except RPCError as error:
        raise DependencyUnavailable(f"Temporal did not take the request: {error.message}") from None
