"""Users: creation, the first-admin bootstrap, changes, passwords and admin-issued resets."""

import asyncio
import functools
import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.config import Settings
from opsconductor.errors import Conflict, FieldProblem, InputInvalid, NotFound
from opsconductor.models.page import Page
from opsconductor.models.user import (
    PasswordResetIssued,
    ProfileUpdate,
    Role,
    User,
    UserCreate,
    UserUpdate,
)
from opsconductor.security.passwords import generate_password, hash_password, verify_password
from opsconductor.security.tokens import (
    RESET_TOKEN_PREFIX,
    new_opaque_token,
    secret_matches,
    split_opaque_token,
)
from opsconductor.services.lookup import get_or_404
from opsconductor.services.paging import PageRequest, paginate
from opsconductor.services.sessions import revoke_sessions


async def count_users(session: AsyncSession) -> int:
    result = await session.exec(select(func.count()).select_from(User))
    return result.one()


async def get_by_username(session: AsyncSession, username: str) -> User | None:
    result = await session.exec(select(User).where(User.username == username))
    return result.first()


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    return await get_or_404(session, User, user_id, "user")


async def require_user(session: AsyncSession, username: str) -> User:
    user = await get_by_username(session, username)
    if user is None:
        raise NotFound(f"no user named {username!r}")
    return user


async def list_users(session: AsyncSession, page: PageRequest) -> Page[User]:
    return await paginate(session, select(User).order_by(col(User.username)), page)


async def create_user(session: AsyncSession, data: UserCreate) -> User:
    if await get_by_username(session, data.username) is not None:
        raise Conflict(f"a user named {data.username!r} already exists")
    user = User(
        username=data.username,
        email=data.email,
        display_name=data.display_name,
        role=data.role,
        disabled=data.disabled,
        password_hash=hash_password(data.password),
    )
    session.add(user)
    await session.flush()
    return user


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


async def password_matches(user: User | None, password: str) -> bool:
    """Verify off the event loop; an unknown user costs one verification too, so timing
    does not tell a missing user from a wrong password."""
    stored = _dummy_hash() if user is None else user.password_hash
    matches = await asyncio.to_thread(verify_password, password, stored)
    return matches and user is not None


async def set_password(
    session: AsyncSession,
    user: User,
    password: str,
    now: datetime,
    *,
    keep_session: uuid.UUID | None = None,
) -> None:
    """Replace the password and end every other session, which may belong to whoever knew
    the old one. API tokens stay: they are separate, named grants, revoked on their own."""
    user.password_hash = await asyncio.to_thread(hash_password, password)
    user.updated_at = now
    await revoke_sessions(
        session, user_id=user.id, reason="password changed", now=now, keep=keep_session
    )


async def update_user(
    session: AsyncSession, user_id: uuid.UUID, data: UserUpdate, now: datetime
) -> User:
    user = await get_user(session, user_id)
    changes = data.model_dump(exclude_unset=True, exclude={"password"})
    if changes.get("role", Role.admin) != Role.admin or changes.get("disabled"):
        await _ensure_not_last_admin(session, user)
    _apply(user, changes, now)
    if data.password is not None:
        await set_password(session, user, data.password, now)
    if user.disabled:
        await revoke_sessions(session, user_id=user.id, reason="user disabled", now=now)
    await session.flush()
    return user


async def update_profile(
    session: AsyncSession, user: User, data: ProfileUpdate, now: datetime
) -> User:
    """The signed-in user's own email and display name."""
    _apply(user, data.model_dump(exclude_unset=True), now)
    await session.flush()
    return user


def _apply(user: User, changes: dict[str, object], now: datetime) -> None:
    for name, value in changes.items():
        if value is None:
            raise InputInvalid(
                f"{name} may not be null", [FieldProblem(f"body.{name}", "may not be null")]
            )
        setattr(user, name, value)
    user.updated_at = now


async def disable_user(session: AsyncSession, user: User, now: datetime) -> None:
    """Disabling (rather than deleting) keeps runs and audit rows pointing at a real user."""
    await _ensure_not_last_admin(session, user)
    user.disabled = True
    user.updated_at = now
    await revoke_sessions(session, user_id=user.id, reason="user disabled", now=now)
    await session.flush()


async def _ensure_not_last_admin(session: AsyncSession, user: User) -> None:
    # Compared by value: a role read from the database is a plain string.
    if user.role != Role.admin or user.disabled:
        return
    others = await session.exec(
        select(func.count())
        .select_from(User)
        .where(User.role == Role.admin, col(User.disabled).is_(False), User.id != user.id)
    )
    if others.one() == 0:
        raise Conflict(f"{user.username!r} is the last enabled admin")


async def issue_password_reset(
    session: AsyncSession,
    user: User,
    lifetime: timedelta,
    now: datetime,
    end_sessions: bool = True,
) -> PasswordResetIssued:
    """A one-time token replacing any earlier one; the user's sessions end now when an admin
    issued it. A "forgot password" request (anyone may make one) leaves them: its link ends
    them when it is used."""
    token = new_opaque_token(RESET_TOKEN_PREFIX)
    user.reset_token_lookup = token.lookup
    user.reset_token_hash = token.token_hash
    user.reset_expires_at = now + lifetime
    if end_sessions:
        await revoke_sessions(session, user_id=user.id, reason="password reset issued", now=now)
    await session.flush()
    return PasswordResetIssued(token=token.value, expires_at=user.reset_expires_at)


async def find_for_reset(session: AsyncSession, login: str) -> User | None:
    """The enabled user with that username or email (either ignoring case) who has an email,
    or None."""
    name = login.strip().lower()
    found = await session.exec(
        select(User).where(
            (func.lower(User.username) == name) | (func.lower(User.email) == name),
            col(User.disabled).is_(False),
            User.email != "",
        )
    )
    return found.first()


async def redeem_password_reset(
    session: AsyncSession, token: str, password: str, now: datetime
) -> User:
    parts = split_opaque_token(token, RESET_TOKEN_PREFIX)
    user = None
    if parts is not None:
        found = await session.exec(select(User).where(User.reset_token_lookup == parts[0]))
        user = found.first()
    if (
        parts is None
        or user is None
        or user.reset_token_hash is None
        or user.reset_expires_at is None
        or user.reset_expires_at <= now
        or not secret_matches(parts[1], user.reset_token_hash)
    ):
        raise InputInvalid(
            "the reset token is invalid, used or expired",
            [FieldProblem("body.token", "is invalid, used or expired")],
        )
    user.reset_token_lookup = user.reset_token_hash = user.reset_expires_at = None
    await set_password(session, user, password, now)
    await session.flush()
    return user


async def bootstrap_admin(session: AsyncSession, settings: Settings) -> str | None:
    """Create the first admin on an empty database.

    Returns the password when it was generated (so the caller can show it once), else None.
    """
    # The advisory lock makes concurrent first starts (API replicas, `up`) create one admin.
    await session.exec(select(func.pg_advisory_xact_lock(0x0C5_AD31)))
    if await count_users(session) > 0:
        return None
    generated = settings.admin_password is None
    password = (
        generate_password()
        if settings.admin_password is None
        else settings.admin_password.get_secret_value()
    )
    await create_user(
        session,
        UserCreate(
            username=settings.admin_username,
            email=settings.admin_email,
            role=Role.admin,
            password=password,
        ),
    )
    return password if generated else None
