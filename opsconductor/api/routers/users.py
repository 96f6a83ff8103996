"""User administration."""

import uuid
from datetime import timedelta

from fastapi import APIRouter, status

from opsconductor.api.auth import AuditDep
from opsconductor.api.deps import PageDep, SessionDep, SettingsDep
from opsconductor.api.permissions import UserManager, UserReader
from opsconductor.models.base import utcnow
from opsconductor.models.page import Page
from opsconductor.models.user import (
    PasswordResetIssued,
    User,
    UserCreate,
    UserPublic,
    UserUpdate,
)
from opsconductor.services import users

router = APIRouter(prefix="/users", tags=["users"])


@router.get("", name="user.list", response_model=Page[UserPublic])
async def list_users(_: UserReader, session: SessionDep, page: PageDep) -> Page[User]:
    return await users.list_users(session, page)


@router.post("", name="user.create", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
async def create_user(
    body: UserCreate, _: UserManager, session: SessionDep, entry: AuditDep
) -> User:
    user = await users.create_user(session, body)
    entry.on("user", user.id)
    entry.detail["role"] = user.role
    return user


@router.get("/{id}", name="user.read", response_model=UserPublic)
async def get_user(id: uuid.UUID, _: UserReader, session: SessionDep) -> User:
    return await users.get_user(session, id)


@router.patch("/{id}", name="user.update", response_model=UserPublic)
async def update_user(
    id: uuid.UUID, body: UserUpdate, _: UserManager, session: SessionDep, entry: AuditDep
) -> User:
    # Which fields changed, never their values: one of them may be a password.
    entry.detail["fields"] = sorted(body.model_fields_set)
    return await users.update_user(session, id, body, utcnow())


@router.delete("/{id}", name="user.disable", status_code=status.HTTP_204_NO_CONTENT)
async def disable_user(id: uuid.UUID, _: UserManager, session: SessionDep) -> None:
    await users.disable_user(session, await users.get_user(session, id), utcnow())


@router.post(
    "/{id}/password-reset", name="user.password_reset", status_code=status.HTTP_201_CREATED
)
async def issue_password_reset(
    id: uuid.UUID, _: UserManager, session: SessionDep, settings: SettingsDep
) -> PasswordResetIssued:
    user = await users.get_user(session, id)
    lifetime = timedelta(hours=settings.password_reset_hours)
    return await users.issue_password_reset(session, user, lifetime, utcnow())
