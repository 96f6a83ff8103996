"""API tokens for automation."""

import uuid
from datetime import datetime, timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.errors import FieldProblem, InputInvalid, NotAuthenticated, NotFound
from opsconductor.models.api_token import ApiToken, ApiTokenCreate, ApiTokenCreated
from opsconductor.models.base import public_view
from opsconductor.models.page import Page
from opsconductor.models.user import User
from opsconductor.security.rbac import Permission, Principal, allows, lower_role, role_exceeds
from opsconductor.security.tokens import (
    API_TOKEN_PREFIX,
    INVALID_CREDENTIALS,
    new_opaque_token,
    secret_matches,
    split_opaque_token,
)
from opsconductor.services.paging import PageRequest, paginate

# Busy automation would otherwise write the same row on every call.
LAST_USED_RESOLUTION = timedelta(minutes=1)


async def create_token(
    session: AsyncSession, principal: Principal, data: ApiTokenCreate, now: datetime
) -> ApiTokenCreated:
    role = data.role or principal.role
    if role_exceeds(role, principal.role):
        raise InputInvalid(
            f"a token's role may not exceed your own ({principal.role})",
            [FieldProblem("body.role", f"may not exceed {principal.role}", "role_too_high")],
        )
    secret = new_opaque_token(API_TOKEN_PREFIX)
    token = ApiToken(
        name=data.name,
        user_id=principal.user.id,
        role=role,
        lookup=secret.lookup,
        token_hash=secret.token_hash,
        created_at=now,
        expires_at=None if data.expires_in_days is None else now + timedelta(data.expires_in_days),
    )
    session.add(token)
    await session.flush()
    return public_view(ApiTokenCreated, token, token=secret.value)


async def list_own(session: AsyncSession, user_id: uuid.UUID, page: PageRequest) -> Page[ApiToken]:
    statement = (
        select(ApiToken)
        .where(col(ApiToken.user_id) == user_id, col(ApiToken.revoked_at).is_(None))
        .order_by(col(ApiToken.created_at).desc())
    )
    return await paginate(session, statement, page)


async def revoke(
    session: AsyncSession, principal: Principal, token_id: uuid.UUID, now: datetime
) -> ApiToken:
    """Owners revoke their own tokens; user managers may revoke anyone's."""
    token = await session.get(ApiToken, token_id)
    if token is None or (
        token.user_id != principal.user.id and not allows(principal.role, Permission.users_manage)
    ):
        raise NotFound(f"no API token {token_id}")
    if token.revoked_at is None:
        token.revoked_at = now
    await session.flush()
    return token


async def authenticate(session: AsyncSession, presented: str, now: datetime) -> Principal:
    parts = split_opaque_token(presented, API_TOKEN_PREFIX)
    if parts is None:
        raise NotAuthenticated(INVALID_CREDENTIALS)
    lookup, secret = parts
    found = await session.exec(
        select(ApiToken, User)
        .join(User, col(User.id) == col(ApiToken.user_id))
        .where(ApiToken.lookup == lookup)
    )
    row = found.first()
    if row is None or not secret_matches(secret, row[0].token_hash):
        raise NotAuthenticated(INVALID_CREDENTIALS)
    token, user = row
    expired = token.expires_at is not None and token.expires_at <= now
    if token.revoked_at is not None or expired or user.disabled:
        raise NotAuthenticated(INVALID_CREDENTIALS)
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        token.last_used_at = now
    # The owner may have been demoted since the token was made: the lower role applies.
    return Principal(
        user=user,
        role=lower_role(token.role, user.role),
        api_token_id=token.id,
        expires_at=token.expires_at,
    )
