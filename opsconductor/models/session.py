"""Sign-in sessions and their rotating refresh tokens."""

import uuid
from datetime import datetime
from typing import Literal

from sqlalchemy import DateTime
from sqlmodel import Field, SQLModel

from opsconductor.models.base import id_field, timestamp_field

# -- tables ---------------------------------------------------------------------------------------


class AuthSession(SQLModel, table=True):
    """One sign-in. Access tokens name it (`sid`), so revoking it ends them all at once."""

    __tablename__ = "auth_sessions"

    id: uuid.UUID = id_field()
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    created_at: datetime = timestamp_field()
    last_used_at: datetime = timestamp_field()
    # Slides forward on every refresh, so an idle session ends on its own.
    expires_at: datetime = Field(sa_type=DateTime(timezone=True))
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    revoked_reason: str | None = Field(default=None, max_length=64)
    client_address: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=256)


class RefreshToken(SQLModel, table=True):
    """A refresh token works once; a spent one presented again betrays a copy."""

    __tablename__ = "refresh_tokens"

    id: uuid.UUID = id_field()
    session_id: uuid.UUID = Field(foreign_key="auth_sessions.id", ondelete="CASCADE", index=True)
    lookup: str = Field(max_length=32, unique=True, index=True)
    token_hash: str = Field(max_length=64)
    created_at: datetime = timestamp_field()
    used_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


# -- API schemas ----------------------------------------------------------------------------------


class SessionPublic(SQLModel):
    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    client_address: str | None
    user_agent: str | None
    current: bool = False


class LoginRequest(SQLModel):
    # Deliberately not the username pattern: a malformed name must answer like a wrong one.
    username: str = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=1024)


class RefreshRequest(SQLModel):
    refresh_token: str = Field(min_length=1, max_length=512)


class TokenPair(SQLModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int
