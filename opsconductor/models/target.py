"""Targets (the hosts jobs act on) and the groups they belong to."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator
from sqlalchemy import Column, ForeignKey, Index, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from opsconductor.models.base import id_field, timestamp_field

TARGET_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
GROUP_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# What OpenSSH prints (`ssh-keygen -lf`): SHA256 and 43 unpadded base64 characters.
FINGERPRINT_PATTERN = r"^SHA256:[A-Za-z0-9+/]{43}$"


class Protocol(StrEnum):
    ssh = "ssh"
    winrm = "winrm"


DEFAULT_PORTS = {Protocol.ssh: 22, Protocol.winrm: 5985}


def _check_tags(tags: dict[str, str]) -> dict[str, str]:
    # `k=v;k2=v2` is how CSV imports and the tag filter spell tags, so they may not hold the
    # separators.
    for key, value in tags.items():
        if not key or any(mark in key for mark in "=;") or ";" in value:
            raise ValueError(
                f"tag {key!r}: keys are non-empty without '=' or ';', values without ';'"
            )
    return tags


Tags = Annotated[dict[str, str], AfterValidator(_check_tags)]


# -- tables ---------------------------------------------------------------------------------------


class TargetBase(SQLModel):
    name: str = Field(max_length=128, schema_extra={"pattern": TARGET_NAME_PATTERN})
    address: str = Field(min_length=1, max_length=255)
    protocol: Protocol = Field(default=Protocol.ssh, max_length=8)
    credential_id: uuid.UUID | None = None
    os: str | None = Field(default=None, max_length=64)
    description: str = Field(default="", max_length=2000)


class Target(TargetBase, table=True):
    __tablename__ = "targets"
    __table_args__ = (Index("ix_targets_tags", "tags", postgresql_using="gin"),)

    id: uuid.UUID = id_field()
    name: str = Field(max_length=128, unique=True, index=True)
    protocol: Protocol = Field(default=Protocol.ssh, sa_type=String(8))
    port: int
    # RESTRICT: a credential in use cannot vanish under its targets (the API answers 409).
    credential_id: uuid.UUID | None = Field(
        default=None, foreign_key="credentials.id", ondelete="RESTRICT", index=True
    )
    tags: dict[str, str] = Field(default_factory=dict, sa_type=JSONB)
    vars: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)
    # The pinned SSH host key; NULL until the first successful connection records it.
    host_key_fingerprint: str | None = Field(default=None, max_length=128)
    # The key a refused connection was offered, so an operator can accept exactly that one.
    presented_host_key_fingerprint: str | None = Field(default=None, max_length=128)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()


class TargetGroupBase(SQLModel):
    name: str = Field(max_length=64, schema_extra={"pattern": GROUP_NAME_PATTERN})
    description: str = Field(default="", max_length=2000)


class TargetGroup(TargetGroupBase, table=True):
    __tablename__ = "target_groups"

    id: uuid.UUID = id_field()
    name: str = Field(max_length=64, unique=True, index=True)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()


class TargetGroupMember(SQLModel, table=True):
    __tablename__ = "target_group_members"

    target_id: uuid.UUID = Field(
        sa_column=Column(
            ForeignKey("targets.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )
    group_id: uuid.UUID = Field(
        sa_column=Column(
            ForeignKey("target_groups.id", ondelete="CASCADE"),
            primary_key=True,
            nullable=False,
            index=True,
        )
    )


# -- API schemas ----------------------------------------------------------------------------------


class TargetCreate(TargetBase):
    port: int | None = Field(default=None, ge=1, le=65535, description="Default: 22 or 5985")
    tags: Tags = Field(default_factory=dict)
    vars: dict[str, Any] = Field(default_factory=dict)
    groups: list[str] = Field(default_factory=list, description="Group names; must exist")
    host_key_fingerprint: str | None = Field(
        default=None,
        schema_extra={"pattern": FINGERPRINT_PATTERN},
        description="Pin the SSH host key up front instead of trusting it on first use",
    )


class TargetUpdate(SQLModel):
    name: str | None = Field(
        default=None, max_length=128, schema_extra={"pattern": TARGET_NAME_PATTERN}
    )
    address: str | None = Field(default=None, min_length=1, max_length=255)
    protocol: Protocol | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    credential_id: uuid.UUID | None = None
    os: str | None = Field(default=None, max_length=64)
    description: str | None = Field(default=None, max_length=2000)
    tags: Tags | None = None
    vars: dict[str, Any] | None = None
    groups: list[str] | None = None


class TargetPublic(TargetBase):
    id: uuid.UUID
    port: int
    tags: dict[str, str]
    vars: dict[str, Any]
    groups: list[str]
    host_key_fingerprint: str | None
    presented_host_key_fingerprint: str | None
    created_at: datetime
    updated_at: datetime


class HostKeyAccept(SQLModel):
    """Either the fingerprint to pin, or accept_presented for the one a refused test saw."""

    fingerprint: str | None = Field(default=None, schema_extra={"pattern": FINGERPRINT_PATTERN})
    accept_presented: bool = False


class TargetGroupCreate(TargetGroupBase):
    pass


class TargetGroupUpdate(SQLModel):
    name: str | None = Field(
        default=None, max_length=64, schema_extra={"pattern": GROUP_NAME_PATTERN}
    )
    description: str | None = Field(default=None, max_length=2000)


class TargetGroupPublic(TargetGroupBase):
    id: uuid.UUID
    member_count: int
    created_at: datetime
    updated_at: datetime


class GroupMembers(SQLModel):
    """The group's members from now on: the targets listed by id or by name, and every target
    carrying all the tags given (none given: that part selects nothing)."""

    target_ids: list[uuid.UUID] = Field(default_factory=list)
    names: list[str] = Field(default_factory=list)
    tags: Tags = Field(default_factory=dict)


class TargetSelection(SQLModel):
    """The targets a selector matches now (GET /targets/selected)."""

    count: int
    names: list[str] = Field(description="The first 20 by name")


class ImportProblem(SQLModel):
    path: str
    message: str


class ImportRow(SQLModel):
    row: int
    name: str | None
    status: str = Field(description="created, updated or failed")
    errors: list[ImportProblem] = Field(default_factory=list)


class ImportReport(SQLModel):
    created: int
    updated: int
    failed: int
    rows: list[ImportRow]
