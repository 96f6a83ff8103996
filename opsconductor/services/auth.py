"""Signing in, refreshing, and finding out who a bearer token belongs to."""

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.config import Settings
from opsconductor.db import side_transaction
from opsconductor.errors import NotAuthenticated
from opsconductor.models.base import utcnow
from opsconductor.models.session import AuthSession, LoginRequest, RefreshToken, TokenPair
from opsconductor.models.user import User
from opsconductor.security.rbac import Principal
from opsconductor.security.tokens import (
    API_TOKEN_PREFIX,
    INVALID_CREDENTIALS,
    REFRESH_TOKEN_PREFIX,
    read_access_token,
    secret_matches,
    split_opaque_token,
)
from opsconductor.services import sessions, throttle, tokens, users
from opsconductor.services.audit import AuditEntry
from opsconductor.services.principal_cache import PRINCIPALS

REUSED = "refresh token reused"


async def login(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    signing_key: bytes,
    credentials: LoginRequest,
    client: sessions.ClientInfo,
    audit: AuditEntry,
) -> TokenPair:
    now = utcnow()
    window = timedelta(seconds=settings.login_window_seconds)
    counters = throttle.counters_for(settings, credentials.username, client.address)
    await throttle.ensure_allowed(session, counters, window, now)
    user = await users.get_by_username(session, credentials.username)
    if user is not None:
        audit.by(user)
    matches = await users.password_matches(user, credentials.password)
    # A disabled user gets the same answer as a wrong password: nothing to learn from it.
    if user is None or user.disabled or not matches:
        await throttle.count_failure(sessionmaker, counters, window, now)
        raise NotAuthenticated(INVALID_CREDENTIALS)
    await throttle.forget(session, counters[0])
    user.last_login_at = now
    auth_session, pair = await sessions.start_session(
        session, settings, signing_key, user, client, now
    )
    audit.on("session", auth_session.id)
    return pair


async def refresh(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    signing_key: bytes,
    presented: str,
    audit: AuditEntry,
) -> TokenPair:
    now = utcnow()
    parts = split_opaque_token(presented, REFRESH_TOKEN_PREFIX)
    if parts is None:
        raise NotAuthenticated(INVALID_CREDENTIALS)
    lookup, secret = parts
    found = await session.exec(
        select(RefreshToken, AuthSession, User)
        .join(AuthSession, col(AuthSession.id) == col(RefreshToken.session_id))
        .join(User, col(User.id) == col(AuthSession.user_id))
        .where(RefreshToken.lookup == lookup)
    )
    row = found.first()
    if row is None or not secret_matches(secret, row[0].token_hash):
        raise NotAuthenticated(INVALID_CREDENTIALS)
    token, auth_session, user = row
    audit.by(user)
    audit.on("session", auth_session.id)
    # A conditional update, so that of two concurrent uses of one token exactly one wins.
    spent = await session.exec(
        update(RefreshToken)
        .where(col(RefreshToken.id) == token.id, col(RefreshToken.used_at).is_(None))
        .values(used_at=now)
        .returning(col(RefreshToken.id))
    )
    if spent.first() is None:
        # Someone holds a copy of a spent token: end the session for everyone holding it.
        # Committed on its own, because this request's own transaction is rolled back.
        async with side_transaction(sessionmaker) as side:
            await sessions.revoke_sessions(
                side, user_id=user.id, only=auth_session.id, reason=REUSED, now=now
            )
        audit.detail["reason"] = REUSED
        raise NotAuthenticated(INVALID_CREDENTIALS)
    if user.disabled or not sessions.is_active(auth_session, now):
        raise NotAuthenticated(INVALID_CREDENTIALS)
    return await sessions.issue_tokens(session, settings, signing_key, user, auth_session, now)


async def authenticate(
    session: AsyncSession, signing_key: bytes, bearer: str, *, reading: bool = False
) -> Principal:
    """The principal behind an access token or API token, checked against the database.

    The session (or API token) row is read with the user rather than trusted from the token,
    so logging out, revoking a session or disabling a user takes effect on the next request;
    the role too comes from the user row, not from the token. A request that only reads
    (`reading`) may be answered from the last few seconds' lookups of the same token
    (services/principal_cache.py bounds how stale, and forgets on any change to these rows).
    """
    now = utcnow()
    if reading:
        remembered = PRINCIPALS.recall(bearer, now)
        if remembered is not None:
            return remembered
    generation = PRINCIPALS.generation
    principal = await _look_up(session, signing_key, bearer, now)
    if reading:
        # Kept past this request, so taken out of its session: that session's rollback (a
        # read that fails) or commit would otherwise expire the user's loaded fields, and a
        # later request could not read them back through a closed session.
        session.expunge(principal.user)
        PRINCIPALS.remember(bearer, principal, generation)
    return principal


async def _look_up(
    session: AsyncSession, signing_key: bytes, bearer: str, now: datetime
) -> Principal:
    if bearer.startswith(API_TOKEN_PREFIX):
        return await tokens.authenticate(session, bearer, now)
    claims = read_access_token(signing_key, bearer)
    found = await session.exec(
        select(AuthSession, User)
        .join(User, col(User.id) == col(AuthSession.user_id))
        .where(AuthSession.id == claims.session_id)
    )
    row = found.first()
    if row is None:
        raise NotAuthenticated(INVALID_CREDENTIALS)
    auth_session, user = row
    if user.id != claims.user_id or user.disabled or not sessions.is_active(auth_session, now):
        raise NotAuthenticated(INVALID_CREDENTIALS)
    return Principal(
        user=user,
        role=user.role,
        session_id=auth_session.id,
        expires_at=min(claims.expires_at, auth_session.expires_at),
    )
