"""Failed sign-in counters, kept in PostgreSQL so every API replica sees the same count."""

from datetime import datetime

from sqlalchemy import DateTime
from sqlmodel import Field, SQLModel

# -- tables ---------------------------------------------------------------------------------------


class LoginThrottle(SQLModel, table=True):
    __tablename__ = "login_throttle"

    # "user:<name>" or "address:<ip>".
    key: str = Field(primary_key=True, max_length=320)
    failures: int = 0
    window_started_at: datetime = Field(sa_type=DateTime(timezone=True))
