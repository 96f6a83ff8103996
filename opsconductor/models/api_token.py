"""Named API tokens for automation: shown once, hashed at rest, never above the owner's role."""

import uuid
from datetime import datetime

from sqlalchemy import DateTime, String
from sqlmodel import Field, SQLModel

from opsconductor.models.base import id_field, timestamp_field
from opsconductor.models.user import Role

# -- tables ---------------------------------------------------------------------------------------


class ApiTokenBase(SQLModel):
    name: str = Field(min_length=1, max_length=100)


class ApiToken(ApiTokenBase, table=True):
    __tablename__ = "api_tokens"

    id: uuid.UUID = id_field()
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    role: Role = Field(sa_type=String(16))
    lookup: str = Field(max_length=32, unique=True, index=True)
    token_hash: str = Field(max_length=64)
    created_at: datetime = timestamp_field()
    expires_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    last_used_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


# -- API schemas ----------------------------------------------------------------------------------


class ApiTokenCreate(ApiTokenBase):
    # None means the owner's own role.
    role: Role | None = None
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class ApiTokenPublic(ApiTokenBase):
    id: uuid.UUID
    user_id: uuid.UUID
    role: Role
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiTokenCreated(ApiTokenPublic):
    """The creation answer: the only time the token itself is shown."""

    token: str
