"""Users: who may sign in, and with which role."""

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import EmailStr
from sqlalchemy import DateTime, String
from sqlmodel import Field, SQLModel

from opsconductor.models.base import id_field, timestamp_field

USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{1,62}$"


class Role(StrEnum):
    viewer = "viewer"
    operator = "operator"
    admin = "admin"


class UserBase(SQLModel):
    username: str = Field(max_length=64, regex=USERNAME_PATTERN, unique=True, index=True)
    email: str = Field(max_length=254)
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


class UserCreate(UserBase):
    email: EmailStr = Field(max_length=254)
    password: str = Field(min_length=12, max_length=256)


class UserPublic(UserBase):
    id: uuid.UUID
    created_at: datetime
    last_login_at: datetime | None
