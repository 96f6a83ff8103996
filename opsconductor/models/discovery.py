"""Discovery scans, the hosts they found, and importing those hosts as targets."""

import uuid
from datetime import datetime
from typing import Any

import pydantic
from sqlalchemy import Column, DateTime, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from opsconductor.contracts.discovery import ScanStatus
from opsconductor.jobspec.scan import DEFAULT_SCAN_PORTS, ScanOptions
from opsconductor.models.base import id_field, timestamp_field
from opsconductor.models.target import Tags, TargetPublic

# -- tables ---------------------------------------------------------------------------------------


class DiscoveryScan(SQLModel, table=True):
    __tablename__ = "discovery_scans"
    __table_args__ = (Index("ix_discovery_scans_created_at", "created_at"),)

    id: uuid.UUID = id_field()
    name: str = Field(max_length=128)
    status: ScanStatus = Field(sa_type=String(16), index=True)
    # The validated ScanOptions, as nmap was (or will be) asked.
    options: dict[str, Any] = Field(sa_type=JSONB)
    requested_by: str = Field(max_length=128)
    # The scan's own workflow; NULL for a scan made by a job's nmap.scan step (see run_id).
    workflow_id: str | None = Field(default=None, max_length=128)
    run_id: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(ForeignKey("runs.id", ondelete="SET NULL"), index=True, nullable=True),
    )
    progress_task: str | None = Field(default=None, max_length=64)
    progress_percent: float | None = None
    hosts_found: int = 0
    notes: list[str] = Field(default_factory=list, sa_type=JSONB)
    reason: str | None = None
    created_at: datetime = timestamp_field()
    started_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    finished_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class DiscoveryHost(SQLModel, table=True):
    __tablename__ = "discovery_hosts"
    __table_args__ = (UniqueConstraint("scan_id", "address"),)

    id: uuid.UUID = id_field()
    scan_id: uuid.UUID = Field(
        sa_column=Column(
            ForeignKey("discovery_scans.id", ondelete="CASCADE"), index=True, nullable=False
        )
    )
    address: str = Field(max_length=64)
    hostname: str | None = Field(default=None, max_length=255)
    os_guess: str | None = Field(default=None, max_length=255)
    os_family: str | None = Field(default=None, max_length=64)
    open_ports: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONB)


# -- API schemas ----------------------------------------------------------------------------------


class OpenPort(SQLModel):
    port: int
    protocol: str = "tcp"
    service: str | None = None
    product: str | None = None
    version: str | None = None


class DiscoveredHost(SQLModel):
    address: str
    hostname: str | None = None
    os_guess: str | None = None
    # nmap's OS class family ("Linux", "Windows"), which an import uses for the target's os.
    os_family: str | None = None
    open_ports: list[OpenPort] = pydantic.Field(default_factory=list)


class ScanCreate(ScanOptions):
    name: str | None = pydantic.Field(
        default=None, min_length=1, max_length=128, description="Default: the hosts scanned"
    )


class ScanCheckQuery(SQLModel):
    hosts: str = pydantic.Field(description="As a scan's `hosts`, separated by commas")
    ports: str = DEFAULT_SCAN_PORTS


class ScanCheck(SQLModel):
    hosts: list[str] = pydantic.Field(description="The entries as the scan would store them")
    addresses: int = pydantic.Field(description="How many addresses they cover")
    ports: str


class ScanProgress(SQLModel):
    task: str | None
    percent: float | None


class ScanListItem(SQLModel):
    id: uuid.UUID
    name: str
    status: ScanStatus
    # As stored, not re-validated: a scan accepted under older limits must stay readable.
    options: dict[str, Any] = pydantic.Field(description="hosts, ports, timing, os_detection…")
    requested_by: str
    run_id: uuid.UUID | None
    progress: ScanProgress
    hosts_found: int
    notes: list[str]
    reason: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ScanDetail(ScanListItem):
    hosts: list[DiscoveredHost]


class ScanImport(SQLModel):
    addresses: list[str] = pydantic.Field(
        min_length=1, max_length=4096, description="Addresses the scan found up"
    )
    credential_id: uuid.UUID | None = None
    groups: list[str] = pydantic.Field(default_factory=list, description="Group names; must exist")
    tags: Tags = pydantic.Field(default_factory=dict)


class ExistingAddress(SQLModel):
    address: str
    target: str


class SkippedAddress(SQLModel):
    address: str
    reason: str


class ScanImportResult(SQLModel):
    created: list[TargetPublic]
    existing: list[ExistingAddress]
    skipped: list[SkippedAddress]
