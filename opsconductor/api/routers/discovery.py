"""Discovery: start, follow and cancel nmap scans; import the hosts they found as targets."""

import uuid
from typing import Annotated

from fastapi import APIRouter, status

from opsconductor.api.auth import AuditDep, authorized
from opsconductor.api.deps import PageDep, SessionDep, TemporalDep
from opsconductor.contracts.discovery import ScanStatus
from opsconductor.errors import DependencyUnavailable
from opsconductor.models.discovery import (
    ScanCreate,
    ScanDetail,
    ScanImport,
    ScanImportResult,
    ScanListItem,
)
from opsconductor.models.page import Page
from opsconductor.security.rbac import Permission, Principal
from opsconductor.services import discovery

router = APIRouter(prefix="/discovery", tags=["discovery"])

Reader = Annotated[Principal, authorized(Permission.discovery_read)]
Scanner = Annotated[Principal, authorized(Permission.discovery_run)]
# Importing writes the inventory, so it takes the inventory's permission (every route declares
# exactly one; operators hold both this and discovery:run).
InventoryManager = Annotated[Principal, authorized(Permission.targets_manage)]


@router.post(
    "/scans",
    name="discovery.scan",
    response_model=ScanDetail,
    status_code=status.HTTP_202_ACCEPTED,
)
async def start_scan(
    body: ScanCreate,
    principal: Scanner,
    session: SessionDep,
    temporal: TemporalDep,
    entry: AuditDep,
) -> ScanDetail:
    scan = await discovery.create_scan(session, body, principal.user.username)
    entry.on("discovery_scan", scan.id)
    entry.detail.update(hosts=scan.options["hosts"], ports=scan.options["ports"])
    # The workflow writes to the scan row: commit it first, then launch.
    await session.commit()
    try:
        await discovery.launch(temporal, scan)
    except DependencyUnavailable as error:
        # Recorded for good (the request's own transaction is about to roll back).
        await discovery.record_outcome(session, scan.id, ScanStatus.failed, error.detail)
        await session.commit()
        raise
    return await discovery.scan_detail(session, scan)


@router.get("/scans", name="discovery.list", response_model=Page[ScanListItem])
async def list_scans(
    principal: Reader, session: SessionDep, page: PageDep, status: ScanStatus | None = None
) -> Page[ScanListItem]:
    return await discovery.list_scans(session, status, page.limit, page.offset)


@router.get("/scans/{id}", name="discovery.get", response_model=ScanDetail)
async def get_scan(id: uuid.UUID, principal: Reader, session: SessionDep) -> ScanDetail:
    return await discovery.scan_detail(session, await discovery.get_scan(session, id))


@router.post("/scans/{id}/cancel", name="discovery.cancel", status_code=status.HTTP_202_ACCEPTED)
async def cancel_scan(
    id: uuid.UUID, principal: Scanner, session: SessionDep, temporal: TemporalDep, entry: AuditDep
) -> dict[str, str]:
    entry.on("discovery_scan", id)
    await discovery.cancel_scan(session, temporal, id)
    return {"status": "cancelling"}


@router.post("/scans/{id}/import", name="discovery.import", response_model=ScanImportResult)
async def import_hosts(
    id: uuid.UUID,
    body: ScanImport,
    principal: InventoryManager,
    session: SessionDep,
    entry: AuditDep,
) -> ScanImportResult:
    """Creates targets from chosen hosts: 22 (or a port nmap identified as ssh) makes an ssh
    target, else 5985/5986 a WinRM one. Addresses already in the inventory are reported under
    `existing` and not duplicated; hosts without a login port, or whose protocol the credential
    does not suit, under `skipped`."""
    entry.on("discovery_scan", id)
    result = await discovery.import_hosts(session, id, body)
    entry.detail.update(
        created=[target.name for target in result.created],
        existing=len(result.existing),
        skipped=len(result.skipped),
    )
    return result
