"""Jobs and their immutable versions: every save is a new version; runs name the one they ran."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Index, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from opsconductor.jobspec.expansion import LibraryPin
from opsconductor.models.base import id_field, timestamp_field

# -- tables ---------------------------------------------------------------------------------------


class Job(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = (
        Index(
            "uq_jobs_name_live", "name", unique=True, postgresql_where=text("deleted_at IS NULL")
        ),
    )

    id: uuid.UUID = id_field()
    name: str = Field(max_length=64)
    description: str = ""
    current_version: int = 1
    created_by: str = Field(max_length=64)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()
    deleted_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class JobVersion(SQLModel, table=True):
    __tablename__ = "job_versions"
    __table_args__ = (UniqueConstraint("job_id", "version"),)

    id: uuid.UUID = id_field()
    job_id: uuid.UUID = Field(foreign_key="jobs.id", index=True)
    version: int
    # The document that runs: library steps expanded into core steps.
    document: dict[str, Any] = Field(sa_type=JSONB)
    # The document as written, when it used library steps (None when it is `document`).
    source: dict[str, Any] | None = Field(default=None, sa_type=JSONB)
    # The library versions it was expanded from: [{library, version, steps}].
    libraries: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONB)
    created_by: str = Field(max_length=64)
    created_at: datetime = timestamp_field()


# -- API schemas ----------------------------------------------------------------------------------


class JobPublic(SQLModel):
    id: uuid.UUID
    name: str
    description: str
    version: int
    document: dict[str, Any]
    source: dict[str, Any] | None = None
    libraries: list[LibraryPin] = []
    created_by: str
    created_at: datetime
    updated_at: datetime


class JobVersionPublic(SQLModel):
    version: int
    document: dict[str, Any]
    source: dict[str, Any] | None = None
    libraries: list[LibraryPin] = []
    created_by: str
    created_at: datetime


class ValidationAnswer(SQLModel):
    valid: bool
    errors: list[dict[str, str]]
    # The document as a save would store it (defaults written out, library steps expanded):
    # `apply --dry-run` compares it with the saved version.
    document: dict[str, Any] | None = None
