"""Discovery scans: accepting one and launching its workflow after the commit, cancelling it,
reading results back, recording what the discovery worker found, and importing found hosts as
targets.

Services never commit (db.py); starting a scan is the documented exception, through
`db.commit_then_launch`. What acts on Temporal takes a `Workflows` (services/workflows.py),
which the router hands on untouched."""

import ipaddress
import re
import uuid
from collections.abc import Sequence

from sqlalchemy import delete, func, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError

from opsconductor.contracts.discovery import (
    TERMINAL_SCAN_STATUSES,
    ScanRequest,
    ScanStatus,
    scan_workflow_id,
)
from opsconductor.contracts.queues import TaskQueue
from opsconductor.contracts.steps import StepRequest, TargetSnapshot
from opsconductor.db import commit_then_launch
from opsconductor.errors import Conflict, DependencyUnavailable, FieldProblem, InputInvalid
from opsconductor.jobspec.scan import ScanOptions, normalize_ports, parse_hosts
from opsconductor.models.base import public_view, utcnow
from opsconductor.models.credential import Credential
from opsconductor.models.discovery import (
    DiscoveredHost,
    DiscoveryHost,
    DiscoveryScan,
    ExistingAddress,
    ScanCheck,
    ScanCheckQuery,
    ScanCreate,
    ScanDetail,
    ScanImport,
    ScanImportResult,
    ScanListItem,
    ScanProgress,
    SkippedAddress,
)
from opsconductor.models.page import Page
from opsconductor.models.run import Run
from opsconductor.models.target import TARGET_NAME_PATTERN, Protocol, Target, TargetCreate
from opsconductor.services.audit import AuditEntry
from opsconductor.services.credential_grants import Requester, check_target_credential
from opsconductor.services.lookup import get_or_404
from opsconductor.services.paging import PageRequest, paginate_as
from opsconductor.services.targets import groups, inventory
from opsconductor.services.targets.inventory import CREDENTIAL_KINDS_FOR
from opsconductor.services.workflows import Workflows
from opsconductor.workflows.discovery_scan import DiscoveryScanWorkflow

# Step scans get ids derived from run and step, so a retried step replaces its own scan.
_STEP_SCANS = uuid.UUID("0f6b1a52-6a43-4a8e-9a51-2f3d1f0f8e21")
SSH_PORT = 22
WINRM_PORTS = (5985, 5986)
_TARGET_NAME = re.compile(TARGET_NAME_PATTERN)
NO_LOGIN_PORT = "no SSH (22, or a port nmap identified as ssh) or WinRM (5985/5986) port is open"


def step_scan_id(run_id: uuid.UUID, step_id: str, target: TargetSnapshot | None) -> uuid.UUID:
    return uuid.uuid5(_STEP_SCANS, f"{run_id}/{step_id}/{target.name if target else ''}")


# -- accepting, launching, cancelling ----------------------------------------------------------


async def create_scan(session: AsyncSession, body: ScanCreate, requested_by: str) -> DiscoveryScan:
    """Stores a queued scan (not yet launched)."""
    options = ScanOptions.model_validate(body.model_dump(exclude={"name"}))
    scan_id = uuid.uuid4()
    scan = DiscoveryScan(
        id=scan_id,
        name=body.name or ", ".join(options.hosts)[:128],
        status=ScanStatus.queued,
        options=options.model_dump(mode="json"),
        requested_by=requested_by,
        workflow_id=scan_workflow_id(scan_id),
    )
    session.add(scan)
    await session.flush()
    return scan


async def launch(temporal: Client, scan: DiscoveryScan) -> None:
    """Starts the scan's workflow, after the scan row is committed (the workflow writes to it).
    The workflow id is the scan id, so a repeated launch cannot start a second scan."""
    assert scan.workflow_id is not None
    try:
        await temporal.start_workflow(
            DiscoveryScanWorkflow.run,
            ScanRequest(scan_id=scan.id, options=ScanOptions.model_validate(scan.options)),
            id=scan.workflow_id,
            task_queue=TaskQueue.orchestration.value,
        )
    except RPCError as error:
        raise DependencyUnavailable(f"Temporal did not accept the scan: {error.message}") from None


async def start_scan(
    session: AsyncSession,
    workflows: Workflows,
    body: ScanCreate,
    requested_by: str,
    entry: AuditEntry,
) -> ScanDetail:
    """Accepts a scan and launches its workflow once the scan row is committed."""
    scan = await create_scan(session, body, requested_by)
    entry.on("discovery_scan", scan.id)
    entry.detail.update(hosts=scan.options["hosts"], ports=scan.options["ports"])

    async def not_launched(side: AsyncSession, reason: str) -> None:
        await record_outcome(side, scan.id, ScanStatus.failed, reason)

    await commit_then_launch(
        session, workflows.sessionmaker, lambda: launch(workflows.client, scan), not_launched
    )
    return await scan_detail(session, scan)


def check_options(query: ScanCheckQuery) -> ScanCheck:
    """A scan's hosts and ports as `start_scan` would take them, checked by the same rules
    (jobspec/scan.py) and answered with how many addresses they cover."""
    problems = []
    try:
        hosts = parse_hosts(query.hosts)
    except ValueError as error:
        problems.append(FieldProblem("query.hosts", str(error)))
    try:
        ports = normalize_ports(query.ports)
    except ValueError as error:
        problems.append(FieldProblem("query.ports", str(error)))
    if problems:
        raise InputInvalid("the scan's options are invalid", problems)
    return ScanCheck(hosts=hosts.canonical, addresses=hosts.addresses, ports=ports)


async def cancel_scan(session: AsyncSession, workflows: Workflows, scan_id: uuid.UUID) -> None:
    scan = await get_scan(session, scan_id)
    if scan.status in TERMINAL_SCAN_STATUSES:
        raise Conflict(f"scan {scan_id} already ended ({scan.status})")
    if scan.workflow_id is None:
        raise Conflict(
            f"scan {scan_id} belongs to run {scan.run_id}'s nmap.scan step; cancel the run"
        )
    await workflows.cancel(scan.workflow_id)


# -- reading --------------------------------------------------------------------------------


async def get_scan(session: AsyncSession, scan_id: uuid.UUID) -> DiscoveryScan:
    return await get_or_404(session, DiscoveryScan, scan_id, "discovery scan")


async def read_scan(session: AsyncSession, scan_id: uuid.UUID) -> ScanDetail:
    return await scan_detail(session, await get_scan(session, scan_id))


def _list_item(scan: DiscoveryScan) -> ScanListItem:
    progress = ScanProgress(task=scan.progress_task, percent=scan.progress_percent)
    return public_view(ScanListItem, scan, progress=progress)


async def _list_items(session: AsyncSession, rows: Sequence[DiscoveryScan]) -> list[ScanListItem]:
    return [_list_item(row) for row in rows]


async def list_scans(
    session: AsyncSession, status: ScanStatus | None, page: PageRequest
) -> Page[ScanListItem]:
    statement = select(DiscoveryScan).order_by(
        col(DiscoveryScan.created_at).desc(), col(DiscoveryScan.id)
    )
    if status is not None:
        statement = statement.where(DiscoveryScan.status == status)
    return await paginate_as(session, statement, page, _list_items)


async def found_hosts(session: AsyncSession, scan_id: uuid.UUID) -> list[DiscoveredHost]:
    rows = await session.exec(select(DiscoveryHost).where(DiscoveryHost.scan_id == scan_id))
    hosts = [DiscoveredHost.model_validate(row, from_attributes=True) for row in rows]
    return sorted(hosts, key=lambda host: ipaddress.ip_address(host.address))


async def scan_detail(session: AsyncSession, scan: DiscoveryScan) -> ScanDetail:
    return ScanDetail(**_list_item(scan).model_dump(), hosts=await found_hosts(session, scan.id))


# -- what the worker records ----------------------------------------------------------------


async def mark_running(session: AsyncSession, scan_id: uuid.UUID) -> None:
    await session.exec(
        update(DiscoveryScan)
        .where(
            col(DiscoveryScan.id) == scan_id,
            col(DiscoveryScan.status).in_([ScanStatus.queued, ScanStatus.running]),
        )
        .values(
            status=ScanStatus.running.value,
            started_at=func.coalesce(DiscoveryScan.started_at, utcnow()),
            progress_task=None,
            progress_percent=None,
        )
    )


async def begin_step_scan(
    session: AsyncSession, scan_id: uuid.UUID, request: StepRequest, options: ScanOptions
) -> None:
    """The scan row of an `nmap.scan` step, (re)started: a retry starts it afresh."""
    run = await session.get(Run, request.run_id)
    where = f" on {request.target.name}" if request.target else ""
    fresh: dict[str, object] = {
        "status": ScanStatus.running.value,
        "options": options.model_dump(mode="json"),
        "progress_task": None,
        "progress_percent": None,
        "hosts_found": 0,
        "notes": [],
        "reason": None,
        "started_at": utcnow(),
        "finished_at": None,
    }
    statement = insert(DiscoveryScan).values(
        id=scan_id,
        name=f"{run.job_name if run else 'job'}/{request.step_id}{where}"[:128],
        requested_by=run.triggered_by if run else "job",
        run_id=run.id if run else None,
        created_at=utcnow(),
        **fresh,
    )
    await session.exec(statement.on_conflict_do_update(index_elements=["id"], set_=fresh))


async def record_progress(
    session: AsyncSession, scan_id: uuid.UUID, task: str, percent: float | None
) -> None:
    await session.exec(
        update(DiscoveryScan)
        .where(col(DiscoveryScan.id) == scan_id, col(DiscoveryScan.status) == ScanStatus.running)
        .values(progress_task=task[:64], progress_percent=percent)
    )


async def record_hosts(
    session: AsyncSession, scan_id: uuid.UUID, hosts: Sequence[DiscoveredHost]
) -> None:
    """Replaces the scan's hosts (a retried attempt must not add to the last one's)."""
    await session.exec(delete(DiscoveryHost).where(col(DiscoveryHost.scan_id) == scan_id))
    session.add_all(
        DiscoveryHost(
            scan_id=scan_id,
            address=host.address,
            hostname=host.hostname,
            os_guess=host.os_guess[:255] if host.os_guess else None,
            os_family=host.os_family[:64] if host.os_family else None,
            open_ports=[port.model_dump(mode="json") for port in host.open_ports],
        )
        for host in hosts
    )
    await session.exec(
        update(DiscoveryScan).where(col(DiscoveryScan.id) == scan_id).values(hosts_found=len(hosts))
    )


async def record_outcome(
    session: AsyncSession,
    scan_id: uuid.UUID,
    status: ScanStatus,
    reason: str | None,
    notes: Sequence[str] = (),
) -> None:
    values: dict[str, object] = {
        "status": status.value,
        "reason": reason,
        "notes": list(notes),
        "finished_at": utcnow(),
    }
    if status is ScanStatus.succeeded:
        values["progress_percent"] = 100.0
    await session.exec(update(DiscoveryScan).where(col(DiscoveryScan.id) == scan_id).values(values))


# -- import ---------------------------------------------------------------------------------


def _endpoint(host: DiscoveredHost) -> tuple[Protocol, int] | None:
    """22 (or a port nmap identified as ssh) means ssh; else 5985, then 5986, means WinRM."""
    tcp = {port.port: port for port in host.open_ports if port.protocol == "tcp"}
    if SSH_PORT in tcp:
        return Protocol.ssh, SSH_PORT
    ssh = [number for number, port in sorted(tcp.items()) if port.service == "ssh"]
    if ssh:
        return Protocol.ssh, ssh[0]
    for number in WINRM_PORTS:
        if number in tcp:
            return Protocol.winrm, number
    return None


async def _existing(session: AsyncSession, hosts: Sequence[DiscoveredHost]) -> dict[str, str]:
    """Inventory targets whose address is a found host's address or host name, by that value."""
    values = {host.address for host in hosts} | {host.hostname for host in hosts if host.hostname}
    rows = await session.exec(
        select(Target.address, Target.name)
        .where(col(Target.address).in_(values))
        .order_by(col(Target.name))
    )
    found: dict[str, str] = {}
    for address, name in rows:
        found.setdefault(address, name)
    return found


async def _free_name(session: AsyncSession, host: DiscoveredHost) -> str:
    """The host name when it makes a valid, unused target name; else the address; `-2`, `-3`…
    when taken."""
    base = host.address.replace(":", "-")
    if host.hostname and _TARGET_NAME.match(host.hostname):
        base = host.hostname
    candidate, number = base, 1
    while (await session.exec(select(Target.id).where(Target.name == candidate))).first():
        number += 1
        candidate = f"{base[:120]}-{number}"
    return candidate


async def import_hosts(
    session: AsyncSession, scan_id: uuid.UUID, body: ScanImport, requester: Requester
) -> ScanImportResult:
    """Creates a target for each chosen host that has a login port and is not in the inventory
    yet (by address or host name); reports the others."""
    await get_scan(session, scan_id)
    found = {host.address: host for host in await found_hosts(session, scan_id)}
    problems = [
        FieldProblem(
            f"body.addresses.{index}", f"{address!r} is not a host this scan found", "unknown_host"
        )
        for index, address in enumerate(body.addresses)
        if address not in found
    ]
    if problems:
        raise InputInvalid("addresses the scan did not find", problems)
    credential = None
    if body.credential_id is not None:
        credential = await session.get(Credential, body.credential_id)
        if credential is None:
            raise InputInvalid(
                "unknown credential",
                [FieldProblem("body.credential_id", "names no credential", "unknown_credential")],
            )
        await check_target_credential(session, requester, credential)
    await groups.check_groups(session, body.groups, "body.groups")
    chosen = [found[address] for address in dict.fromkeys(body.addresses)]
    existing = await _existing(session, chosen)
    result = ScanImportResult(created=[], existing=[], skipped=[])
    for host in chosen:
        known = existing.get(host.address) or existing.get(host.hostname or "")
        if known is not None:
            result.existing.append(ExistingAddress(address=host.address, target=known))
            continue
        endpoint = _endpoint(host)
        if endpoint is None:
            result.skipped.append(SkippedAddress(address=host.address, reason=NO_LOGIN_PORT))
            continue
        protocol, port = endpoint
        if credential is not None and credential.kind not in CREDENTIAL_KINDS_FOR[protocol]:
            result.skipped.append(
                SkippedAddress(
                    address=host.address,
                    reason=f"{protocol} on port {port}, and credential {credential.name!r} "
                    f"is {credential.kind}",
                )
            )
            continue
        target = await inventory.create_target(
            session,
            TargetCreate(
                name=await _free_name(session, host),
                address=host.address,
                protocol=protocol,
                port=port,
                credential_id=credential.id if credential else None,
                os=host.os_family.lower()[:64] if host.os_family else None,
                description=f"found by discovery scan {scan_id}",
                tags=body.tags,
                groups=body.groups,
            ),
            requester,
        )
        result.created.append(await inventory.public(session, target))
    return result
