"""The discovery contract: the discovery-scan workflow, its nmap activity and the scan record
it keeps current."""

import uuid
from enum import StrEnum

import pydantic
from pydantic import BaseModel

from opsconductor.contracts import activity_contract
from opsconductor.jobspec.scan import ScanOptions

DISCOVERY_SCAN_WORKFLOW = "discovery-scan"


def scan_workflow_id(scan_id: uuid.UUID) -> str:
    return f"discovery-scan-{scan_id}"


class ScanStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


TERMINAL_SCAN_STATUSES = frozenset({ScanStatus.succeeded, ScanStatus.failed, ScanStatus.cancelled})


class ScanRequest(BaseModel):
    """The discovery-scan workflow's and its nmap activity's input."""

    scan_id: uuid.UUID
    options: ScanOptions


class ScanSummary(BaseModel):
    hosts_found: int
    notes: list[str] = pydantic.Field(default_factory=list)


class ScanStatusRecord(BaseModel):
    scan_id: uuid.UUID
    status: ScanStatus
    reason: str | None = None
    notes: list[str] = pydantic.Field(default_factory=list)


_CONTRACT = "a contract: discovery and orchestration workers register it (activities/discovery.py)"


@activity_contract
async def nmap_scan(request: ScanRequest) -> ScanSummary:
    """Runs nmap, storing progress and found hosts on the scan record as it goes."""
    raise NotImplementedError(_CONTRACT)


@activity_contract
async def record_scan_status(record: ScanStatusRecord) -> None:
    raise NotImplementedError(_CONTRACT)
