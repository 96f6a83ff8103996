"""Install-wide settings an admin changes through the API (`/settings/...`), one row each."""

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Column, ForeignKey, SmallInteger, Uuid
from sqlmodel import Field, SQLModel

from opsconductor.models.base import timestamp_field

# -- tables ---------------------------------------------------------------------------------------


class PasswordResetSettings(SQLModel, table=True):
    """Where "forgot password" sends its links: an email channel, or none (then nothing is
    sent and only an admin issues reset links)."""

    __tablename__ = "password_reset_settings"
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)

    id: int = Field(default=1, sa_type=SmallInteger, primary_key=True)
    # Deleting the channel turns the e-mailed resets off rather than leaving a dangling id.
    channel_id: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(
            Uuid, ForeignKey("notification_channels.id", ondelete="SET NULL"), nullable=True
        ),
    )
    updated_at: datetime = timestamp_field()


# -- API schemas ----------------------------------------------------------------------------------


class PasswordResetSettingsUpdate(SQLModel):
    channel_id: uuid.UUID | None = None


class PasswordResetSettingsPublic(SQLModel):
    channel_id: uuid.UUID | None
    channel_name: str | None
    updated_at: datetime | None


class ForgotPassword(SQLModel):
    # A username or an email address, as the person remembers it.
    login: str = Field(min_length=1, max_length=254)


class ForgotPasswordAccepted(SQLModel):
    detail: str
