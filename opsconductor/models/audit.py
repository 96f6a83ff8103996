"""The audit log: append-only (the database refuses UPDATE and DELETE on it)."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import DateTime, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from opsconductor.models.base import id_field, utcnow


class Outcome(StrEnum):
    success = "success"
    failure = "failure"
    denied = "denied"


# -- tables ---------------------------------------------------------------------------------------


class AuditEventBase(SQLModel):
    occurred_at: datetime = Field(
        default_factory=utcnow,
        sa_type=DateTime(timezone=True),
        nullable=False,
        index=True,
    )
    # No foreign key: the row must outlive the user, and names what the actor was called then.
    actor_id: uuid.UUID | None = None
    actor_username: str | None = Field(default=None, max_length=64, index=True)
    action: str = Field(max_length=64, index=True)
    resource_type: str = Field(max_length=64)
    resource_id: str | None = Field(default=None, max_length=64, index=True)
    outcome: Outcome = Field(sa_type=String(16))
    request_id: str | None = Field(default=None, max_length=128)
    client_address: str | None = Field(default=None, max_length=64)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)


class AuditEvent(AuditEventBase, table=True):
    __tablename__ = "audit_log"

    id: uuid.UUID = id_field()


# -- API schemas ----------------------------------------------------------------------------------


class AuditEventPublic(AuditEventBase):
    id: uuid.UUID


class AuditFilter(SQLModel):
    actor: str | None = None
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    outcome: Outcome | None = None
    since: datetime | None = None
    until: datetime | None = None
