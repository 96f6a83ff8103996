"""nmap on the `discovery` queue: `nmap-scan` for the discovery-scan workflow, and
`discovery-step` for the `nmap.scan` job action.

nmap runs as a child process with an argv list built from validated fields only
(jobspec/scan.py); its XML report comes on stdout and is parsed with python-nmap. While it runs,
the activity heartbeats and stores nmap's progress on the scan row; when the activity is
cancelled (a cancelled scan or run, or a step timeout) it kills nmap and waits for it to exit.
"""

import asyncio
import ipaddress
import os
import re
import shutil
import signal
import uuid
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import Any

import nmap
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from opsconductor.activities.steps import SecretMask, attempt, bounded, render_inputs
from opsconductor.contracts import discovery as contract
from opsconductor.contracts import implements
from opsconductor.contracts.discovery import ScanRequest, ScanStatus, ScanStatusRecord, ScanSummary
from opsconductor.contracts.steps import StepRequest, StepResult
from opsconductor.db import unit_of_work
from opsconductor.jobspec.scan import ScanOptions, nmap_arguments
from opsconductor.models.discovery import DiscoveredHost, OpenPort
from opsconductor.processes import end_with_parent
from opsconductor.services import discovery
from opsconductor.text import storable, storable_or_none

HEARTBEAT_SECONDS = 2
# nmap's XML for the largest scan allowed stays far below this; past it, something is wrong.
MAX_XML_BYTES = 64 * 1024 * 1024
# A step's outputs live in workflow history and on the run record: keep them bounded.
MAX_STEP_HOSTS = 256
MAX_WARNINGS = 20
SCAN_FAILED = "ScanFailed"
OS_DETECTION_SKIPPED = (
    "OS detection was skipped: it needs raw sockets, and this discovery worker does not run as root"
)
_PROGRESS = re.compile(r'<taskprogress task="([^"]*)"[^>]*?percent="([0-9.]+)"')
_TASK_BEGIN = re.compile(r'<taskbegin task="([^"]*)"')

ProgressCallback = Callable[[str, float | None], Awaitable[None]]


class NmapFailed(Exception):
    """nmap is missing, refused the scan, or wrote no report. Retrying would not help."""


@dataclass(frozen=True, slots=True)
class ScanReport:
    hosts: list[DiscoveredHost]
    notes: list[str]


async def run_nmap(options: ScanOptions, on_progress: ProgressCallback) -> ScanReport:
    executable = shutil.which("nmap")
    if executable is None:
        raise NmapFailed(
            "nmap is not installed on this discovery worker (Debian: apt install nmap)"
        )
    privileged = os.geteuid() == 0
    notes = [OS_DETECTION_SKIPPED] if options.os_detection and not privileged else []
    process = await asyncio.create_subprocess_exec(
        executable,
        *nmap_arguments(options, privileged=privileged),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=MAX_XML_BYTES,
        # A worker killed outright (SIGKILL, the OOM killer) cannot kill nmap below: the kernel
        # does, so no scan of a /16 goes on for hours with nobody to read it.
        preexec_fn=partial(end_with_parent, signal.SIGKILL),
    )
    assert process.stdout is not None
    assert process.stderr is not None
    heartbeat = asyncio.create_task(_heartbeat())
    errors = asyncio.create_task(process.stderr.read())
    try:
        xml = await _read_report(process.stdout, on_progress)
        stderr = (await errors).decode(errors="replace")
        code = await process.wait()
    except BaseException:
        # Cancelled (or failed while reading): nmap must not outlive the activity.
        with suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        errors.cancel()
        raise
    finally:
        heartbeat.cancel()
    if code != 0:
        raise NmapFailed(f"nmap exited with {code}: {stderr.strip()[:2000]}")
    hosts = await asyncio.to_thread(_parse_report, executable, xml, stderr)
    # nmap's warnings ("Failed to resolve …") tell why a host is missing from the results.
    warnings = list(dict.fromkeys(line.strip() for line in stderr.splitlines() if line.strip()))
    return ScanReport(hosts=hosts, notes=notes + warnings[:MAX_WARNINGS])


async def _read_report(stream: asyncio.StreamReader, on_progress: ProgressCallback) -> str:
    lines: list[str] = []
    size = 0
    async for raw in stream:
        size += len(raw)
        if size > MAX_XML_BYTES:
            raise NmapFailed(f"nmap's report exceeded {MAX_XML_BYTES} bytes")
        line = raw.decode(errors="replace")
        if (match := _PROGRESS.search(line)) is not None:
            await on_progress(match.group(1), float(match.group(2)))
        elif (match := _TASK_BEGIN.search(line)) is not None:
            await on_progress(match.group(1), None)
        lines.append(line)
    return "".join(lines)


def _parse_report(executable: str, xml: str, stderr: str) -> list[DiscoveredHost]:
    try:
        report = nmap.PortScanner(nmap_search_path=(executable,)).analyse_nmap_xml_scan(
            xml, nmap_err=stderr
        )
    except nmap.PortScannerError as error:
        raise NmapFailed(f"nmap wrote no readable report: {str(error)[:2000]}") from None
    hosts = [
        _host(address, details)
        for address, details in report["scan"].items()
        if details.get("status", {}).get("state") == "up"
    ]
    return sorted(hosts, key=lambda host: ipaddress.ip_address(host.address))


def _host(address: str, details: dict[str, Any]) -> DiscoveredHost:
    names = [item["name"] for item in details.get("hostnames", []) if item.get("name")]
    matches = details.get("osmatch") or []
    best = matches[0] if matches else {}
    classes = best.get("osclass") or []
    ports = [
        OpenPort(
            port=int(port),
            protocol=protocol,
            service=info.get("name") or None,
            product=info.get("product") or None,
            version=info.get("version") or None,
        )
        for protocol in ("tcp", "udp")
        for port, info in sorted(details.get(protocol, {}).items())
        if info.get("state") == "open"
    ]
    return DiscoveredHost(
        address=address,
        hostname=names[0] if names else None,
        os_guess=best.get("name") or None,
        os_family=(classes[0].get("osfamily") or None) if classes else None,
        open_ports=ports,
    )


async def _heartbeat() -> None:
    while True:
        activity.heartbeat()
        await asyncio.sleep(HEARTBEAT_SECONDS)


def _failure(message: str) -> ApplicationError:
    return ApplicationError(message, type=SCAN_FAILED, non_retryable=True)


class DiscoveryActions:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]):
        self._sessionmaker = sessionmaker

    async def _scan(self, scan_id: uuid.UUID, options: ScanOptions) -> ScanReport:
        async def progress(task: str, percent: float | None) -> None:
            async with unit_of_work(self._sessionmaker) as session:
                await discovery.record_progress(session, scan_id, task, percent)

        report = await run_nmap(options, progress)
        async with unit_of_work(self._sessionmaker) as session:
            await discovery.record_hosts(session, scan_id, report.hosts)
        return report

    @implements(contract.record_scan_status)
    async def record_status(self, record: ScanStatusRecord) -> None:
        """Run by the discovery-scan workflow as a local activity on the orchestration worker."""
        async with unit_of_work(self._sessionmaker) as session:
            await discovery.record_outcome(
                session,
                record.scan_id,
                record.status,
                storable_or_none(record.reason),
                [storable(note) for note in record.notes],
            )

    @implements(contract.nmap_scan)
    async def scan(self, request: ScanRequest) -> ScanSummary:
        async with unit_of_work(self._sessionmaker) as session:
            await discovery.mark_running(session, request.scan_id)
        try:
            report = await self._scan(request.scan_id, request.options)
        except NmapFailed as error:
            raise _failure(str(error)) from None
        return ScanSummary(hosts_found=len(report.hosts), notes=report.notes)

    @activity.defn(name="discovery-step")
    async def run_step(self, request: StepRequest) -> StepResult:
        """`nmap.scan`: the scan is also stored as a discovery scan (so its hosts can be
        imported), with an id derived from the run and step, so a retry replaces it."""
        options = render_inputs(request, ScanOptions, SecretMask())
        scan_id = discovery.step_scan_id(request.run_id, request.step_id, request.target)
        async with unit_of_work(self._sessionmaker) as session:
            await discovery.begin_step_scan(session, scan_id, request, options)
        try:
            report = await self._scan(scan_id, options)
        except (NmapFailed, asyncio.CancelledError) as error:
            cancelled = isinstance(error, asyncio.CancelledError)
            async with unit_of_work(self._sessionmaker) as session:
                await discovery.record_outcome(
                    session,
                    scan_id,
                    ScanStatus.cancelled if cancelled else ScanStatus.failed,
                    "the run was cancelled" if cancelled else str(error),
                )
            if cancelled:
                raise
            raise ApplicationError(
                str(error), StepResult(attempt=attempt(), error=str(error)), type=SCAN_FAILED
            ) from None
        async with unit_of_work(self._sessionmaker) as session:
            await discovery.record_outcome(
                session, scan_id, ScanStatus.succeeded, None, report.notes
            )
        return _step_result(scan_id, report)


def _summary_line(host: DiscoveredHost) -> str:
    name = f" ({host.hostname})" if host.hostname else ""
    ports = ", ".join(
        f"{port.port}/{port.protocol} {port.service or '?'}"
        + (f" {port.product}" if port.product else "")
        + (f" {port.version}" if port.version else "")
        for port in host.open_ports
    )
    return f"{host.address}{name}: {ports or 'no open ports'}"


def _step_result(scan_id: uuid.UUID, report: ScanReport) -> StepResult:
    shown = report.hosts[:MAX_STEP_HOSTS]
    lines = [_summary_line(host) for host in report.hosts] + report.notes
    if len(report.hosts) > len(shown):
        lines.append(
            f"outputs.hosts holds the first {MAX_STEP_HOSTS} of {len(report.hosts)} hosts; "
            f"GET /discovery/scans/{scan_id} has them all"
        )
    return StepResult(
        attempt=attempt(),
        stdout=bounded("\n".join(lines)),
        outputs={
            "scan_id": str(scan_id),
            "hosts": [host.model_dump(mode="json") for host in shown],
            "addresses": [host.address for host in report.hosts],
        },
    )
