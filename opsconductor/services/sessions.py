"""Sign-in sessions: starting one, rotating its refresh token, listing and revoking."""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.config import Settings
from opsconductor.errors import NotFound
from opsconductor.models.base import public_view
from opsconductor.models.page import Page
from opsconductor.models.session import AuthSession, RefreshToken, SessionPublic, TokenPair
from opsconductor.models.user import User
from opsconductor.security.tokens import (
    REFRESH_TOKEN_PREFIX,
    issue_access_token,
    new_opaque_token,
)
from opsconductor.services.paging import PageRequest, paginate, with_items


@dataclass(frozen=True, slots=True)
class ClientInfo:
    address: str | None
    user_agent: str | None


def is_active(auth_session: AuthSession, now: datetime) -> bool:
    return auth_session.revoked_at is None and auth_session.expires_at > now


async def start_session(
    session: AsyncSession,
    settings: Settings,
    signing_key: bytes,
    user: User,
    client: ClientInfo,
    now: datetime,
) -> tuple[AuthSession, TokenPair]:
    auth_session = AuthSession(
        user_id=user.id,
        created_at=now,
        expires_at=now,
        client_address=client.address,
        user_agent=client.user_agent[:256] if client.user_agent else None,
    )
    session.add(auth_session)
    await session.flush()
    return auth_session, await issue_tokens(session, settings, signing_key, user, auth_session, now)


async def issue_tokens(
    session: AsyncSession,
    settings: Settings,
    signing_key: bytes,
    user: User,
    auth_session: AuthSession,
    now: datetime,
) -> TokenPair:
    """A fresh access token and the session's next refresh token (the only one that works)."""
    refresh = new_opaque_token(REFRESH_TOKEN_PREFIX)
    session.add(
        RefreshToken(
            session_id=auth_session.id,
            lookup=refresh.lookup,
            token_hash=refresh.token_hash,
            created_at=now,
        )
    )
    auth_session.last_used_at = now
    auth_session.expires_at = now + timedelta(days=settings.refresh_token_days)
    lifetime = timedelta(minutes=settings.access_token_minutes)
    access = issue_access_token(
        signing_key,
        user_id=user.id,
        session_id=auth_session.id,
        role=user.role,
        now=now,
        lifetime=lifetime,
    )
    await session.flush()
    return TokenPair(
        access_token=access,
        refresh_token=refresh.value,
        expires_in=int(lifetime.total_seconds()),
    )


async def revoke_sessions(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    reason: str,
    now: datetime,
    only: uuid.UUID | None = None,
    keep: uuid.UUID | None = None,
) -> None:
    """Revoke the user's live sessions: one (`only`), or all but `keep`, or all."""
    statement = update(AuthSession).where(
        col(AuthSession.user_id) == user_id, col(AuthSession.revoked_at).is_(None)
    )
    if only is not None:
        statement = statement.where(col(AuthSession.id) == only)
    if keep is not None:
        statement = statement.where(col(AuthSession.id) != keep)
    await session.exec(statement.values(revoked_at=now, revoked_reason=reason))


async def list_active(
    session: AsyncSession,
    user_id: uuid.UUID,
    current: uuid.UUID | None,
    now: datetime,
    page: PageRequest,
) -> Page[SessionPublic]:
    statement = (
        select(AuthSession)
        .where(
            col(AuthSession.user_id) == user_id,
            col(AuthSession.revoked_at).is_(None),
            col(AuthSession.expires_at) > now,
        )
        .order_by(col(AuthSession.last_used_at).desc())
    )
    rows = await paginate(session, statement, page)
    return with_items(
        rows, [public_view(SessionPublic, row, current=row.id == current) for row in rows.items]
    )


async def get_own_active(
    session: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID, now: datetime
) -> AuthSession:
    auth_session = await session.get(AuthSession, session_id)
    if auth_session is None or auth_session.user_id != user_id or not is_active(auth_session, now):
        raise NotFound(f"no active session {session_id} of yours")
    return auth_session
