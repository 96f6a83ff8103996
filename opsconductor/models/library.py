"""Step libraries and their immutable versions (documents in jobspec/library.py)."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from opsconductor.models.base import id_field, timestamp_field

# -- tables ---------------------------------------------------------------------------------------


class Library(SQLModel, table=True):
    __tablename__ = "libraries"

    id: uuid.UUID = id_field()
    name: str = Field(max_length=64, unique=True, index=True)
    description: str = ""
    # A disabled library is refused by new job saves; saved job versions keep what they
    # expanded.
    enabled: bool = True
    created_by: str = Field(max_length=64)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()


class LibraryVersion(SQLModel, table=True):
    __tablename__ = "library_versions"
    __table_args__ = (UniqueConstraint("library_id", "version"),)

    id: uuid.UUID = id_field()
    library_id: uuid.UUID = Field(foreign_key="libraries.id", index=True)
    version: str = Field(max_length=64)
    document: dict[str, Any] = Field(sa_type=JSONB)
    enabled: bool = True
    created_by: str = Field(max_length=64)
    created_at: datetime = timestamp_field()


# -- API schemas ----------------------------------------------------------------------------------


class LibraryVersionSummary(SQLModel):
    version: str
    enabled: bool
    created_by: str
    created_at: datetime


class LibraryPublic(SQLModel):
    id: uuid.UUID
    name: str
    description: str
    enabled: bool
    # The version `library/step` (without @version) expands to now; None when none is enabled.
    latest_version: str | None
    versions: list[LibraryVersionSummary]
    # The newest version's document.
    document: dict[str, Any]
    created_by: str
    created_at: datetime
    updated_at: datetime


class LibraryVersionPublic(SQLModel):
    name: str
    version: str
    enabled: bool
    document: dict[str, Any]
    created_by: str
    created_at: datetime


class LibraryUpdate(SQLModel):
    enabled: bool


class LibraryInstalled(SQLModel):
    name: str
    version: str
    # False when that version was installed already.
    installed: bool
