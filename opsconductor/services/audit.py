"""The one way an audit row is written, and the admin's query over them."""

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.db import side_transaction
from opsconductor.models.audit import AuditEvent, AuditFilter, Outcome
from opsconductor.models.page import Page
from opsconductor.models.user import User
from opsconductor.services.paging import PageRequest, paginate


@dataclass(slots=True)
class AuditEntry:
    """What is known about an action while it runs; becomes one row when it ends.

    Never put secret material in `detail`: name the fields that changed, not their values.
    """

    action: str
    resource_type: str
    resource_id: str | None = None
    actor_id: uuid.UUID | None = None
    actor_username: str | None = None
    request_id: str | None = None
    client_address: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_action(cls, action: str, **known: Any) -> "AuditEntry":
        # "user.create" concerns a "user"; a route may still name another resource type.
        return cls(action=action, resource_type=action.partition(".")[0], **known)

    def by(self, user: User) -> None:
        self.actor_id = user.id
        self.actor_username = user.username

    def on(self, resource_type: str, resource_id: object) -> None:
        self.resource_type = resource_type
        self.resource_id = str(resource_id)


def record(session: AsyncSession, entry: AuditEntry, outcome: Outcome) -> None:
    """Add the row to the caller's unit of work: it commits, or vanishes, with the change."""
    session.add(AuditEvent(outcome=outcome, **asdict(entry)))


async def record_separately(
    sessionmaker: async_sessionmaker[AsyncSession], entry: AuditEntry, outcome: Outcome
) -> None:
    """Write the row in its own transaction, for actions whose own work is rolled back."""
    async with side_transaction(sessionmaker) as session:
        record(session, entry, outcome)


async def list_events(
    session: AsyncSession, filters: AuditFilter, page: PageRequest
) -> Page[AuditEvent]:
    statement = select(AuditEvent)
    equalities = {
        col(AuditEvent.actor_username): filters.actor,
        col(AuditEvent.action): filters.action,
        col(AuditEvent.resource_type): filters.resource_type,
        col(AuditEvent.resource_id): filters.resource_id,
        col(AuditEvent.outcome): filters.outcome,
    }
    for column, value in equalities.items():
        if value is not None:
            statement = statement.where(column == value)
    if filters.since is not None:
        statement = statement.where(col(AuditEvent.occurred_at) >= filters.since)
    if filters.until is not None:
        statement = statement.where(col(AuditEvent.occurred_at) < filters.until)
    statement = statement.order_by(col(AuditEvent.occurred_at).desc(), col(AuditEvent.id))
    return await paginate(session, statement, page)
