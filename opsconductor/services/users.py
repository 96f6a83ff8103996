"""Users: creation and the first-admin bootstrap."""

from sqlalchemy import func
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.config import Settings
from opsconductor.errors import Conflict
from opsconductor.models.user import Role, User, UserCreate
from opsconductor.security.passwords import generate_password, hash_password


async def count_users(session: AsyncSession) -> int:
    result = await session.exec(select(func.count()).select_from(User))
    return result.one()


async def get_by_username(session: AsyncSession, username: str) -> User | None:
    result = await session.exec(select(User).where(User.username == username))
    return result.first()


async def create_user(session: AsyncSession, data: UserCreate) -> User:
    if await get_by_username(session, data.username) is not None:
        raise Conflict(f"a user named {data.username!r} already exists")
    user = User(
        username=data.username,
        email=data.email,
        role=data.role,
        disabled=data.disabled,
        password_hash=hash_password(data.password),
    )
    session.add(user)
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
