"""Users: who may sign in, and with which role."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import EmailStr, StringConstraints
from sqlalchemy import DateTime, String
from sqlmodel import Field, SQLModel

from opsconductor.models.base import id_field, timestamp_field

USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{1,62}$"

# The one password policy, shared by creation, change, admin update and reset redemption.
Password = Annotated[str, StringConstraints(min_length=12, max_length=256)]


class Role(StrEnum):
    viewer = "viewer"
    operator = "operator"
    admin = "admin"


# -- tables ---------------------------------------------------------------------------------------


class UserBase(SQLModel):
    # `pattern` through schema_extra: SQLModel's own `regex` argument is not enforced.
    username: str = Field(
        max_length=64, unique=True, index=True, schema_extra={"pattern": USERNAME_PATTERN}
    )
    email: str = Field(max_length=254)
    # How the console greets the user; the username stays the name everything else uses.
    display_name: str = Field(default="", max_length=128)
    role: Role = Field(default=Role.viewer, max_length=16)
    disabled: bool = False


class User(UserBase, table=True):
    __tablename__ = "users"

    id: uuid.UUID = id_field()
    # A plain string column (checked by a constraint) instead of a native enum type, so adding a
    # role later is a one-line migration rather than an ALTER TYPE.
    role: Role = Field(default=Role.viewer, sa_type=String(16))
    password_hash: str = Field(max_length=255)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()
    last_login_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    # At most one outstanding admin-issued reset: the lookup part of the token finds the row,
    # the SHA-256 of its secret part is compared in constant time.
    reset_token_lookup: str | None = Field(default=None, max_length=32, unique=True, index=True)
    reset_token_hash: str | None = Field(default=None, max_length=64)
    reset_expires_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


# -- API schemas ----------------------------------------------------------------------------------


class UserCreate(UserBase):
    email: EmailStr = Field(max_length=254)
    password: Password


class UserUpdate(SQLModel):
    email: EmailStr | None = Field(default=None, max_length=254)
    display_name: str | None = Field(default=None, max_length=128)
    role: Role | None = None
    disabled: bool | None = None
    password: Password | None = None


class ProfileUpdate(SQLModel):
    """What a user may change about themselves (PATCH /auth/me); role and state are admins'."""

    email: EmailStr | None = Field(default=None, max_length=254)
    display_name: str | None = Field(default=None, max_length=128)


class UserPublic(UserBase):
    id: uuid.UUID
    created_at: datetime
    last_login_at: datetime | None


class PasswordResetIssued(SQLModel):
    """The one time an admin-issued reset token is shown; only its hash is kept."""

    token: str
    expires_at: datetime


class PasswordChange(SQLModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: Password


class PasswordResetRedeem(SQLModel):
    token: str = Field(min_length=1, max_length=512)
    new_password: Password
