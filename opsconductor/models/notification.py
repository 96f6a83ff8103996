"""Notification channels (an apprise URL, sealed like a credential's secret) and the delivery log.

The URL is write-only: it is accepted on create and on update and never answered; answers show
its scheme and the apprise service it names. Deliveries are written by the worker's delivery
activity on every attempt and read by `GET /notifications`.
"""

import uuid
from datetime import datetime

from sqlalchemy import DateTime, Index, String, Text
from sqlmodel import Field, SQLModel

from opsconductor.contracts.notifications import DeliveryEvent, DeliveryStatus
from opsconductor.models.base import SealedColumns, id_field, timestamp_field

CHANNEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
MAX_URL_CHARACTERS = 8192


# -- tables ---------------------------------------------------------------------------------------


class NotificationChannel(SealedColumns, table=True):
    """The URL is sealed in the `SealedColumns`."""

    __tablename__ = "notification_channels"

    id: uuid.UUID = id_field()
    name: str = Field(max_length=128, unique=True, index=True)
    description: str = Field(default="", max_length=2000)
    # Not secret, and what an operator needs to recognise the channel: e.g. "mailto", "E-Mail".
    scheme: str = Field(max_length=32)
    service: str = Field(max_length=64)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()


class NotificationDelivery(SQLModel, table=True):
    """One message to one channel, however many attempts it took. No foreign key to the
    channel: the log outlives a deleted channel, and keeps the name it had."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        Index("ix_notification_deliveries_created_at", "created_at"),
        Index("ix_notification_deliveries_channel_id_created_at", "channel_id", "created_at"),
    )

    id: uuid.UUID = id_field()
    channel_id: uuid.UUID | None = None
    channel_name: str = Field(max_length=128)
    run_id: uuid.UUID | None = Field(default=None, foreign_key="runs.id", index=True)
    step_id: str | None = Field(default=None, max_length=64)
    event: DeliveryEvent = Field(sa_type=String(16))
    status: DeliveryStatus = Field(sa_type=String(16), index=True)
    attempts: int = 0
    # What went wrong last, written without the channel's URL or any part of it.
    last_error: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()
    delivered_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


# -- API schemas ----------------------------------------------------------------------------------


class ChannelCreate(SQLModel):
    name: str = Field(max_length=128, schema_extra={"pattern": CHANNEL_NAME_PATTERN})
    url: str = Field(
        min_length=1,
        max_length=MAX_URL_CHARACTERS,
        description="An apprise URL (mailto://…, json://…, slack://…); write-only",
    )
    description: str = Field(default="", max_length=2000)


class ChannelUpdate(SQLModel):
    """A new `url` replaces the sealed one; the other fields change in place."""

    name: str | None = Field(
        default=None, max_length=128, schema_extra={"pattern": CHANNEL_NAME_PATTERN}
    )
    url: str | None = Field(default=None, min_length=1, max_length=MAX_URL_CHARACTERS)
    description: str | None = Field(default=None, max_length=2000)


class ChannelPublic(SQLModel):
    id: uuid.UUID
    name: str
    description: str
    scheme: str
    service: str
    # e.g. "mailto://…": enough to tell channels apart, nothing that reaches the service.
    url_redacted: str
    created_at: datetime
    updated_at: datetime


class ChannelTestResult(SQLModel):
    ok: bool
    delivery_id: uuid.UUID
    status: DeliveryStatus
    detail: str


class DeliveryPublic(SQLModel):
    id: uuid.UUID
    channel_id: uuid.UUID | None
    channel_name: str
    run_id: uuid.UUID | None
    step_id: str | None
    event: DeliveryEvent
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None
