"""Discovery: start, follow and cancel nmap scans; import the hosts they found as targets."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from opsconductor.api.auth import AuditDep
from opsconductor.api.deps import PageDep, SessionDep, WorkflowsDep
from opsconductor.api.permissions import DiscoveryReader, Scanner, TargetManager
from opsconductor.contracts.discovery import ScanStatus
from opsconductor.models.discovery import (
    ScanCheck,
    ScanCheckQuery,
    ScanCreate,
    ScanDetail,
    ScanImport,
    ScanImportResult,
    ScanListItem,
)
from opsconductor.models.page import Page
from opsconductor.services import discovery
from opsconductor.services.credential_grants import Requester

router = APIRouter(prefix="/discovery", tags=["discovery"])


@router.post("/scans", name="discovery.scan", status_code=status.HTTP_202_ACCEPTED)
async def start_scan(
    body: ScanCreate,
    principal: Scanner,
    session: SessionDep,
    workflows: WorkflowsDep,
    entry: AuditDep,
) -> ScanDetail:
    return await discovery.start_scan(session, workflows, body, principal.user.username, entry)


@router.get("/scans", name="discovery.list")
async def list_scans(
    principal: DiscoveryReader, session: SessionDep, page: PageDep, status: ScanStatus | None = None
) -> Page[ScanListItem]:
    return await discovery.list_scans(session, status, page)


@router.get("/scans/check", name="discovery.check")
async def check_scan(query: Annotated[ScanCheckQuery, Query()], principal: Scanner) -> ScanCheck:
    """Hosts and ports checked as a scan would check them, starting nothing: the canonical
    entries and the number of addresses, or a 422 naming `query.hosts` or `query.ports`."""
    return discovery.check_options(query)


@router.get("/scans/{id}", name="discovery.get")
async def get_scan(id: uuid.UUID, principal: DiscoveryReader, session: SessionDep) -> ScanDetail:
    return await discovery.read_scan(session, id)


@router.post("/scans/{id}/cancel", name="discovery.cancel", status_code=status.HTTP_202_ACCEPTED)
async def cancel_scan(
    id: uuid.UUID, principal: Scanner, session: SessionDep, workflows: WorkflowsDep, entry: AuditDep
) -> dict[str, str]:
    entry.on("discovery_scan", id)
    await discovery.cancel_scan(session, workflows, id)
    return {"status": "cancelling"}


@router.post("/scans/{id}/import", name="discovery.import")
async def import_hosts(
    id: uuid.UUID,
    body: ScanImport,
    # Importing writes the inventory, so it takes the inventory's permission (every route
    # declares exactly one; operators hold both this and discovery:run).
    principal: TargetManager,
    session: SessionDep,
    entry: AuditDep,
) -> ScanImportResult:
    """Creates targets from chosen hosts: 22 (or a port nmap identified as ssh) makes an ssh
    target, else 5985/5986 a WinRM one. Addresses already in the inventory are reported under
    `existing` and not duplicated; hosts without a login port, or whose protocol the credential
    does not suit, under `skipped`."""
    entry.on("discovery_scan", id)
    result = await discovery.import_hosts(session, id, body, Requester.of(principal))
    entry.detail.update(
        created=[target.name for target in result.created],
        existing=len(result.existing),
        skipped=len(result.skipped),
    )
    return result
