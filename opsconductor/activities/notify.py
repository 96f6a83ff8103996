"""Notifications through apprise, on the `notify` queue: `notify-deliver` (a job rule's message
or a channel test-send) and `notify-step` (the `notify.send` action).

The channel's URL is decrypted here, for the moment of the send, and goes nowhere else. apprise
answers a failed send with False rather than an exception; its log records say why, and some
services log parts of their URL, so those records are kept out of our logs (`quiet_apprise`) and
read from the call's result, with every secret part of the URL masked, to make the error.
Each attempt writes the delivery log row (by the delivery's id, so a retried write is the same
row): `pending` while it runs or will be retried, then `delivered` or `failed`.
"""

import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import apprise
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from opsconductor.activities.steps import SecretMask, failed, rejected, render_inputs
from opsconductor.config import Settings
from opsconductor.contracts import implements
from opsconductor.contracts.notifications import (
    UNDELIVERABLE,
    DeliveryEvent,
    DeliveryOutcome,
    DeliveryRecord,
    DeliveryRequest,
    DeliveryStatus,
    PasswordResetMail,
    notify_deliver,
    notify_password_reset,
    record_delivery,
)
from opsconductor.contracts.steps import StepRequest, StepResult
from opsconductor.db import unit_of_work
from opsconductor.jobspec.actions import NotifySend
from opsconductor.jobspec.messages import DEFAULT_BODY, DEFAULT_TITLE, run_facts, run_link
from opsconductor.jobspec.templates import TemplateProblem, render
from opsconductor.models.base import utcnow
from opsconductor.models.notification import NotificationDelivery
from opsconductor.security.envelope import KeyRing
from opsconductor.services import users
from opsconductor.services.channels import (
    ChannelUnavailable,
    RevealedChannel,
    quiet_apprise,
    reveal_channel,
)
from opsconductor.text import storable

# apprise's bound on one send; below the activities' timeouts (and the steps' heartbeat timeout,
# since a send does not heartbeat).
SEND_TIMEOUT_SECONDS = 20.0
MAX_ERROR_CHARACTERS = 2000
_PROBLEM_LEVELS = frozenset({"WARNING", "ERROR", "CRITICAL"})
MIN_HIDDEN_PART = 8
_URL_DELIMITERS = re.compile(r"[/:@?&=#,;+]+")

_sending: ContextVar[bool] = ContextVar("sending_notification", default=False)


class _NotWhileSending(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _sending.get()


def _quiet_http_client() -> None:
    # apprise's HTTP services go through requests/urllib3, which logs request lines (a token can
    # be in the path) at debug level; those records are dropped while a notification is sent.
    for name in ("urllib3.connectionpool", "urllib3.util.retry"):
        target = logging.getLogger(name)
        if not any(isinstance(item, _NotWhileSending) for item in target.filters):
            target.addFilter(_NotWhileSending())


def url_secrets(url: str, private_url: str) -> list[str]:
    """What must never appear in an error: the URL whole, its password, and the parts of it
    that apprise itself hides when it prints the URL (tokens, keys), when long enough to be
    secrets rather than words (a short one would mask every word that contains it)."""
    shown = set(_URL_DELIMITERS.split(unquote(private_url)))
    hidden = {
        part
        for part in _URL_DELIMITERS.split(unquote(url))
        if len(part) >= MIN_HIDDEN_PART and part not in shown
    }
    password = urlsplit(url).password
    if password:
        hidden |= {password, unquote(password)}
    return [url, *hidden]


def addressed_to(url: str, email: str) -> str:
    """An email channel's apprise URL sending to `email` instead of its own recipients."""
    parts = urlsplit(url)
    query = [(key, value) for key, value in parse_qsl(parts.query) if key.lower() != "to"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("to", email)])))


class Undeliverable(Exception):
    """No retry can fix it: the channel is unknown or unreadable, or the message does not
    render. The message is safe to show."""


class DeliveryFailed(Exception):
    """The service did not take the message; a retry may. The message is safe to show."""


async def send(channel: RevealedChannel, title: str, body: str) -> None:
    """One send through apprise; raises DeliveryFailed with a message free of the URL."""
    quiet_apprise()
    _quiet_http_client()
    plugin = apprise.Apprise.instantiate(channel.url, suppress_exceptions=True)
    if plugin is None:
        raise DeliveryFailed(f"{channel.service}: apprise no longer accepts the channel's URL")
    mask = SecretMask()
    private_url = plugin.url(privacy=True)  # type: ignore[no-untyped-call]
    for value in url_secrets(channel.url, private_url):
        mask.remember(value)
    notifier = apprise.Apprise()
    notifier.add(plugin)
    token = _sending.set(True)
    try:
        result = await notifier.async_notify(
            body=body, title=title, timeout=SEND_TIMEOUT_SECONDS, log_level=logging.WARNING
        )
    finally:
        _sending.reset(token)
    if result:
        return
    if result.status is apprise.AppriseResultStatus.TIMEOUT:
        detail = f"no answer within {SEND_TIMEOUT_SECONDS:g}s"
    else:
        problems = [entry.message for entry in result.logs() if entry.level in _PROBLEM_LEVELS]
        detail = "; ".join(dict.fromkeys(problems)) or "the service refused the message"
    raise DeliveryFailed(mask.apply(f"{channel.service}: {detail}")[:MAX_ERROR_CHARACTERS])


def _final_attempt() -> bool:
    info = activity.info()
    policy = info.retry_policy
    if policy is None:
        return True
    return 0 < policy.maximum_attempts <= info.attempt


@dataclass(frozen=True, slots=True)
class _Delivery:
    id: uuid.UUID
    channel: str
    event: DeliveryEvent
    run_id: uuid.UUID | None
    step_id: str | None = None


class NotifyActions:
    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        keyring: KeyRing,
    ):
        self._settings = settings
        self._sessionmaker = sessionmaker
        self._keyring = keyring

    @implements(notify_deliver)
    async def deliver(self, request: DeliveryRequest) -> DeliveryOutcome:
        delivery = _Delivery(request.delivery_id, request.channel, request.event, request.run_id)

        def message() -> tuple[str, str]:
            context = self._with_link(request.context)
            return (
                render(request.title or DEFAULT_TITLE, context),
                render(request.body or DEFAULT_BODY, context),
            )

        try:
            channel = await self._deliver(delivery, message)
        except Undeliverable as error:
            raise ApplicationError(str(error), type=UNDELIVERABLE, non_retryable=True) from None
        except DeliveryFailed as error:
            raise ApplicationError(str(error), type="DeliveryFailed") from None
        return DeliveryOutcome(
            delivery_id=delivery.id,
            status=DeliveryStatus.delivered,
            attempts=activity.info().attempt,
            detail=f"delivered through {channel.service}",
        )

    @activity.defn(name="notify-step")
    async def run_step(self, request: StepRequest) -> StepResult:
        mask = SecretMask()
        context = self._with_link(run_facts(request.context, utcnow(), "running"))
        inputs = render_inputs(request.model_copy(update={"context": context}), NotifySend, mask)
        target = request.target.name if request.target else ""
        delivery = _Delivery(
            uuid.uuid5(request.run_id, f"step:{request.step_id}:{target}"),
            inputs.channel,
            DeliveryEvent.step,
            request.run_id,
            request.step_id,
        )

        def message() -> tuple[str, str]:
            return (
                inputs.title or render(DEFAULT_TITLE, context),
                inputs.body or render(DEFAULT_BODY, context),
            )

        try:
            channel = await self._deliver(delivery, message)
        except Undeliverable as error:
            raise rejected(str(error)) from None
        except DeliveryFailed as error:
            raise failed(str(error), StepResult(attempt=activity.info().attempt)) from None
        return StepResult(
            attempt=activity.info().attempt,
            stdout=f"delivered to {channel.name} through {channel.service}",
            outputs={"delivered": True},
        )

    @implements(notify_password_reset)
    async def send_password_reset(self, request: PasswordResetMail) -> None:
        """The token is issued and kept (committed) before the mail goes: a link that arrives
        must work. When nobody matches, nothing happens; the asker was answered the same."""
        lifetime = timedelta(hours=self._settings.password_reset_hours)
        try:
            async with unit_of_work(self._sessionmaker) as session:
                user = await users.find_for_reset(session, request.login)
                if user is None:
                    return
                channel = await reveal_channel(session, self._keyring, request.channel)
                issued = await users.issue_password_reset(
                    session, user, lifetime, utcnow(), end_sessions=False
                )
                email = user.email
        except ChannelUnavailable as error:
            raise ApplicationError(str(error), type=UNDELIVERABLE, non_retryable=True) from None
        link = f"{self._settings.public_url.rstrip('/')}/reset-password#token={issued.token}"
        body = (
            "Someone asked to reset the OpsConductor password of this account.\n\n"
            "Open this link to choose a new one (it works once, until"
            f" {issued.expires_at:%Y-%m-%d %H:%M} UTC):\n"
            f"{link}\n\nIf it was not you, ignore this message: the password stays as it is."
        )
        addressed = RevealedChannel(
            channel.id, channel.name, channel.service, addressed_to(channel.url, email)
        )
        try:
            await send(addressed, "OpsConductor password reset", body)
        except DeliveryFailed as error:
            raise ApplicationError(str(error), type="DeliveryFailed") from None

    def _with_link(self, context: dict[str, Any]) -> dict[str, Any]:
        if "run" not in context:
            return context
        run = {**context["run"], "url": run_link(self._settings.public_url, context["run"]["id"])}
        return {**context, "run": run}

    async def _deliver(
        self, delivery: _Delivery, message: Callable[[], tuple[str, str]]
    ) -> RevealedChannel:
        """One attempt, written to the delivery log as it starts and as it ends."""
        attempt = activity.info().attempt
        try:
            async with unit_of_work(self._sessionmaker) as session:
                channel = await reveal_channel(session, self._keyring, delivery.channel)
        except ChannelUnavailable as error:
            await self._record(delivery, None, attempt, DeliveryStatus.failed, str(error))
            raise Undeliverable(str(error)) from None
        try:
            title, body = message()
        except TemplateProblem as error:
            await self._record(delivery, channel, attempt, DeliveryStatus.failed, str(error))
            raise Undeliverable(str(error)) from None
        await self._record(delivery, channel, attempt, DeliveryStatus.pending, None)
        try:
            await send(channel, title, body)
        except DeliveryFailed as error:
            status = DeliveryStatus.failed if _final_attempt() else DeliveryStatus.pending
            await self._record(delivery, channel, attempt, status, str(error))
            raise
        await self._record(delivery, channel, attempt, DeliveryStatus.delivered, None)
        return channel

    async def _record(
        self,
        delivery: _Delivery,
        channel: RevealedChannel | None,
        attempt: int,
        status: DeliveryStatus,
        error: str | None,
    ) -> None:
        now = utcnow()
        values: dict[str, Any] = {
            "channel_id": channel.id if channel else None,
            "channel_name": channel.name if channel else delivery.channel[:128],
            "status": status.value,
            "attempts": attempt,
            "updated_at": now,
        }
        # The last error stays on the row after a later attempt delivers: it says why it took
        # more than one.
        if error is not None:
            values["last_error"] = error
        if status is DeliveryStatus.delivered:
            values["delivered_at"] = now
        statement = insert(NotificationDelivery).values(
            id=delivery.id,
            run_id=delivery.run_id,
            step_id=delivery.step_id,
            event=delivery.event.value,
            created_at=now,
            **values,
        )
        statement = statement.on_conflict_do_update(index_elements=["id"], set_=values)
        async with unit_of_work(self._sessionmaker) as session:
            await session.exec(statement)


class DeliveryLog:
    """The delivery workflow's own writes to the delivery log, on the orchestration worker: the
    row exists (`pending`) before any notify worker is asked, and a delivery no attempt ended
    (no worker took it in time) is `failed` with why. A notify worker's rows win: a pending
    write never replaces a row, and nothing replaces `delivered`."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]):
        self._sessionmaker = sessionmaker

    @implements(record_delivery)
    async def record(self, record: DeliveryRecord) -> None:
        now = utcnow()
        failed = record.status is DeliveryStatus.failed
        statement = insert(NotificationDelivery).values(
            id=record.delivery_id,
            channel_name=record.channel[:128],
            run_id=record.run_id,
            event=record.event.value,
            status=record.status.value,
            attempts=0,
            last_error=storable(record.detail) if failed else None,
            created_at=now,
            updated_at=now,
        )
        if failed:
            statement = statement.on_conflict_do_update(
                index_elements=["id"],
                set_={
                    "status": record.status.value,
                    "last_error": storable(record.detail),
                    "updated_at": now,
                },
                where=NotificationDelivery.status != DeliveryStatus.delivered.value,  # type: ignore[arg-type]
            )
        else:
            statement = statement.on_conflict_do_nothing(index_elements=["id"])
        async with unit_of_work(self._sessionmaker) as session:
            await session.exec(statement)
