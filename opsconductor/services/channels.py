"""Notification channels: an apprise URL sealed like a credential's secret, and the delivery log.

The API seals a channel's URL and never opens it; the notify worker reveals it (`reveal_channel`)
for the moment of a delivery. The URL can hold a password or a token anywhere (user info, path,
query), so nothing derived from it is answered or logged except its scheme and the name of the
apprise service it names.
"""

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import apprise
from sqlalchemy import or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.service import RPCError

from opsconductor.contracts.notifications import (
    DeliveryEvent,
    DeliveryOutcome,
    DeliveryRequest,
    DeliveryStatus,
    channel_test_workflow_id,
)
from opsconductor.contracts.queues import TaskQueue
from opsconductor.errors import (
    Conflict,
    DependencyUnavailable,
    InputInvalid,
)
from opsconductor.models.base import utcnow
from opsconductor.models.notification import (
    ChannelCreate,
    ChannelPublic,
    ChannelTestResult,
    ChannelUpdate,
    NotificationChannel,
    NotificationDelivery,
)
from opsconductor.models.page import Page
from opsconductor.security.envelope import DecryptionFailed, KeyRing
from opsconductor.services.jobs import DOCUMENT, live_jobs_where
from opsconductor.services.lookup import get_or_404
from opsconductor.services.paging import PageRequest, paginate, paginate_as
from opsconductor.services.sealing import open_row, sealed_columns
from opsconductor.services.workflows import Workflows
from opsconductor.workflows.notifications import ChannelTestWorkflow

TEST_TIMEOUT = timedelta(seconds=60)


def quiet_apprise() -> None:
    """Keeps apprise's own log records out of ours: some services log parts of their URL.

    What a delivery needs from them is read from its result instead (activities/notify.py).
    """
    apprise_logger = logging.getLogger("apprise")
    if apprise_logger.propagate:
        apprise_logger.propagate = False
        apprise_logger.addHandler(logging.NullHandler())


@dataclass(frozen=True, slots=True)
class UrlFacts:
    scheme: str
    service: str


def describe_url(url: str) -> UrlFacts:
    """The scheme and service of an apprise URL, or a 422 at `body.url` that never quotes it."""
    quiet_apprise()
    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None:
        raise InputInvalid.at(
            "body.url",
            "is not an apprise URL: the scheme is unknown or a part the service needs is "
            "missing (see https://github.com/caronc/apprise/wiki)",
        )
    return UrlFacts(url.partition("://")[0].lower()[:32], str(plugin.service_name)[:64])


def associated_data(channel_id: uuid.UUID) -> bytes:
    return f"notification-channel:{channel_id}".encode()


def _sealed_url(keyring: KeyRing, channel_id: uuid.UUID, url: str) -> dict[str, Any]:
    """The URL sealed, with the scheme and service it names (all a channel answers of it)."""
    facts = describe_url(url)
    return {
        "scheme": facts.scheme,
        "service": facts.service,
        **sealed_columns(keyring, url.encode(), associated_data(channel_id)),
    }


def public(channel: NotificationChannel) -> ChannelPublic:
    return ChannelPublic(
        id=channel.id,
        name=channel.name,
        description=channel.description,
        scheme=channel.scheme,
        service=channel.service,
        url_redacted=f"{channel.scheme}://…",
        created_at=channel.created_at,
        updated_at=channel.updated_at,
    )


# -- API side: managing channels (never decrypts) ---------------------------------------------


async def _by_name(session: AsyncSession, name: str) -> NotificationChannel | None:
    statement = select(NotificationChannel).where(NotificationChannel.name == name)
    return (await session.exec(statement)).first()


async def get_channel(session: AsyncSession, channel_id: uuid.UUID) -> NotificationChannel:
    return await get_or_404(session, NotificationChannel, channel_id, "notification channel")


async def list_channels(session: AsyncSession, page: PageRequest) -> Page[ChannelPublic]:
    statement = select(NotificationChannel).order_by(col(NotificationChannel.name))
    return await paginate_as(session, statement, page, _publics)


async def _publics(
    session: AsyncSession, rows: Sequence[NotificationChannel]
) -> list[ChannelPublic]:
    return [public(row) for row in rows]


async def create_channel(
    session: AsyncSession, keyring: KeyRing, data: ChannelCreate
) -> NotificationChannel:
    if await _by_name(session, data.name) is not None:
        raise Conflict(f"a notification channel named {data.name!r} already exists")
    channel_id = uuid.uuid4()
    channel = NotificationChannel(
        id=channel_id,
        name=data.name,
        description=data.description,
        **_sealed_url(keyring, channel_id, data.url),
    )
    session.add(channel)
    await session.flush()
    return channel


async def jobs_using(session: AsyncSession, name: str) -> list[str]:
    """Live jobs whose current version sends to the channel: by a rule or a `notify.send` step
    that names it literally."""
    step = {"action": "notify.send", "with": {"channel": name}}
    return await live_jobs_where(
        session,
        or_(
            DOCUMENT.contains({"notify": [{"channel": name}]}),
            DOCUMENT.contains({"steps": [step]}),
        ),
    )


async def _refuse_if_used(session: AsyncSession, channel: NotificationChannel, doing: str) -> None:
    # Jobs name channels: renaming or deleting one under them would make their messages fail.
    jobs = await jobs_using(session, channel.name)
    if jobs:
        raise Conflict(
            f"notification channel {channel.name!r} is used by job(s) {', '.join(jobs)}; "
            f"change them before {doing} it",
            jobs=jobs,
        )


async def update_channel(
    session: AsyncSession, keyring: KeyRing, channel_id: uuid.UUID, data: ChannelUpdate
) -> NotificationChannel:
    channel = await get_channel(session, channel_id)
    changes = data.model_dump(exclude_unset=True)
    for name in ("name", "url", "description"):
        if name in changes and changes[name] is None:
            raise InputInvalid.at(f"body.{name}", "may not be null")
    if "name" in changes and changes["name"] != channel.name:
        if await _by_name(session, changes["name"]) is not None:
            raise Conflict(f"a notification channel named {changes['name']!r} already exists")
        await _refuse_if_used(session, channel, "renaming")
        channel.name = changes["name"]
    if "description" in changes:
        channel.description = changes["description"]
    if "url" in changes:
        channel.sqlmodel_update(_sealed_url(keyring, channel.id, changes["url"]))
    channel.updated_at = utcnow()
    session.add(channel)
    await session.flush()
    return channel


async def delete_channel(session: AsyncSession, channel_id: uuid.UUID) -> None:
    channel = await get_channel(session, channel_id)
    await _refuse_if_used(session, channel, "deleting")
    await session.delete(channel)
    await session.flush()


async def test_channel(
    session: AsyncSession, workflows: Workflows, channel_id: uuid.UUID
) -> ChannelTestResult:
    """Sends a test message through the notify worker (the only place the URL is opened), once,
    and answers how it went; the attempt is in the delivery log like any other."""
    channel = await get_channel(session, channel_id)
    request = DeliveryRequest(
        delivery_id=uuid.uuid4(),
        channel=channel.name,
        event=DeliveryEvent.test,
        title="OpsConductor test message",
        body=f"A test message for the notification channel {channel.name!r}.",
    )
    try:
        outcome: DeliveryOutcome = await workflows.client.execute_workflow(
            ChannelTestWorkflow.run,
            request,
            id=channel_test_workflow_id(request.delivery_id),
            task_queue=TaskQueue.orchestration.value,
            execution_timeout=TEST_TIMEOUT,
        )
    except RPCError as error:
        raise DependencyUnavailable(f"Temporal did not run the test: {error.message}") from None
    return ChannelTestResult(
        ok=outcome.status is DeliveryStatus.delivered,
        delivery_id=outcome.delivery_id,
        status=outcome.status,
        detail=outcome.detail,
    )


# -- the delivery log -------------------------------------------------------------------------


async def list_deliveries(
    session: AsyncSession,
    *,
    run_id: uuid.UUID | None,
    channel_id: uuid.UUID | None,
    status: DeliveryStatus | None,
    event: DeliveryEvent | None,
    page: PageRequest,
) -> Page[NotificationDelivery]:
    statement = select(NotificationDelivery).order_by(
        col(NotificationDelivery.created_at).desc(), col(NotificationDelivery.id)
    )
    filters = {
        col(NotificationDelivery.run_id): run_id,
        col(NotificationDelivery.channel_id): channel_id,
        col(NotificationDelivery.status): status,
        col(NotificationDelivery.event): event,
    }
    for column, value in filters.items():
        if value is not None:
            statement = statement.where(column == value)
    return await paginate(session, statement, page)


# -- worker side: the one way a channel's URL is decrypted ------------------------------------


class ChannelUnavailable(Exception):
    """The channel does not exist or cannot be decrypted with the keys here."""


@dataclass(frozen=True, slots=True)
class RevealedChannel:
    """A channel with its URL. repr=False keeps the URL out of tracebacks and logs."""

    id: uuid.UUID
    name: str
    service: str
    url: str = field(repr=False)


async def reveal_channel(session: AsyncSession, keyring: KeyRing, name: str) -> RevealedChannel:
    channel = await _by_name(session, name)
    if channel is None:
        raise ChannelUnavailable(f"no notification channel named {name!r}")
    try:
        url = open_row(channel, keyring, associated_data(channel.id)).decode()
    except DecryptionFailed as error:
        raise ChannelUnavailable(
            f"notification channel {name!r} cannot be decrypted: {error}"
        ) from None
    return RevealedChannel(channel.id, channel.name, channel.service, url)
