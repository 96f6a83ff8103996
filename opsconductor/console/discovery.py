"""Discovery pages: start a scan with its hosts and ports checked as you type, follow it live,
and import the hosts it found as targets with a credential and groups. Every change is the
browser's call to /api/v1/discovery."""

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from opsconductor.console.forms import Choice, Field, Form, Kind, credential_field
from opsconductor.console.live import checked
from opsconductor.console.manage import CHOICES
from opsconductor.console.pages import page, when
from opsconductor.console.session import Console, ConsoleDep
from opsconductor.contracts.discovery import TERMINAL_SCAN_STATUSES
from opsconductor.jobspec.scan import DEFAULT_SCAN_PORTS, Timing

router = APIRouter(include_in_schema=False)
API = "/api/v1/discovery/scans"
CHECK = "/partials/scan-check"

HOSTS = Field(
    "hosts",
    "Hosts",
    hint="IP addresses, networks (10.0.0.0/24), ranges (10.0.0.1-20) or host names, "
    "separated by commas",
    required=True,
)
PORTS = Field("ports", "Ports", hint="ports and ranges, e.g. 22,80,8000-8100", required=True)
# What the API would take for fields left as they are.
SCAN_DEFAULTS = {
    "ports": DEFAULT_SCAN_PORTS,
    "timing": Timing.T3.value,
    "service_detection": True,
    "os_detection": False,
}


def scan_form() -> Form:
    fields = [
        Field("name", "Name", hint="default: the hosts scanned"),
        HOSTS,
        PORTS,
        Field(
            "timing",
            "Timing",
            Kind.select,
            "nmap's timing template: T0 slowest … T5 fastest",
            tuple(Choice(timing.value, timing.value) for timing in Timing),
        ),
        Field("service_detection", "Detect services and versions (nmap -sV)", Kind.checkbox),
        Field("os_detection", "Detect the OS (nmap -O; needs a root worker)", Kind.checkbox),
    ]
    return Form(
        "scan-form",
        API,
        "Start scan",
        fields,
        next="/discovery/{id}",
        item=SCAN_DEFAULTS,
        live=CHECK,
    )


def _host_label(host: Mapping[str, Any]) -> str:
    ports = ", ".join(
        f"{port['port']}/{port['service']}" if port.get("service") else str(port["port"])
        for port in host["open_ports"]
    )
    name = f" ({host['hostname']})" if host.get("hostname") else ""
    return f"{host['address']}{name}: {ports or 'no open port'}"


def import_form(
    scan: Mapping[str, Any],
    credentials: Sequence[Mapping[str, Any]],
    groups: Sequence[Mapping[str, Any]],
) -> Form:
    hosts = tuple(Choice(host["address"], _host_label(host)) for host in scan["hosts"])
    fields = [
        Field("addresses", "Hosts to import", Kind.choices, choices=hosts, required=True),
        credential_field(credentials),
        Field(
            "groups",
            "Groups",
            Kind.choices,
            choices=tuple(Choice(g["name"], g["name"]) for g in groups),
        ),
        Field("tags", "Tags", Kind.tags, "key=value, separated by commas"),
    ]
    return Form(
        "import-form",
        f"{API}/{scan['id']}/import",
        "Import as targets",
        fields,
        legend="Import hosts as targets",
        notes=(
            "An ssh target for port 22 or a port nmap names ssh, else WinRM for 5985/5986; "
            "addresses already in the inventory are not added again.",
        ),
        show="import-result",
    )


@router.get("/discovery/new")
async def new_scan(console: ConsoleDep) -> HTMLResponse:
    back = ("Discovery scans", "/lists/discovery")
    return page(
        console,
        "manage.html",
        title="New discovery scan",
        manager="discovery:run",
        forms=[scan_form()],
        back=back,
    )


@router.get(CHECK)
async def check(console: ConsoleDep, hosts: str = "", ports: str = "") -> HTMLResponse:
    query = {"hosts": hosts, "ports": ports}
    return await checked(
        console, "/discovery/scans/check", query, [HOSTS, PORTS], "_scan_check.html"
    )


async def _import_forms(console: Console, scan: Mapping[str, Any]) -> list[Form]:
    if not (scan["hosts"] and console.can("targets:manage")):
        return []
    credentials = (
        (await console.get("/credentials", limit=CHOICES))["items"]
        if console.can("credentials:read")
        else []
    )
    groups = (await console.get("/target-groups", limit=CHOICES))["items"]
    return [import_form(scan, credentials, groups)]


@router.get("/discovery/{scan_id}")
async def scan_page(scan_id: uuid.UUID, console: ConsoleDep) -> HTMLResponse:
    scan = await console.get(f"/discovery/scans/{scan_id}")
    options = scan["options"]
    hosts = options["hosts"]
    facts = {
        "status": scan["status"],
        "hosts": ", ".join(hosts) if isinstance(hosts, list) else hosts,
        "ports": options.get("ports"),
        "requested by": scan["requested_by"],
        "started": when(scan["started_at"]),
        "finished": when(scan["finished_at"]),
        "hosts found": str(scan["hosts_found"]),
        "notes": "; ".join(scan["notes"]),
        "reason": scan["reason"],
    }
    return page(
        console,
        "scan.html",
        title=f"Scan {scan['name']}",
        manager="targets:manage",
        item=scan,
        facts=facts,
        running=scan["status"] not in TERMINAL_SCAN_STATUSES,
        forms=await _import_forms(console, scan),
        back=("Discovery scans", "/lists/discovery"),
    )


@router.get("/partials/discovery/{scan_id}")
async def scan_progress(scan_id: uuid.UUID, console: ConsoleDep) -> Response:
    scan = await console.get(f"/discovery/scans/{scan_id}")
    if scan["status"] in TERMINAL_SCAN_STATUSES:
        # The whole page again: its facts, the hosts found and the import form.
        return Response(status_code=204, headers={"HX-Refresh": "true"})
    return page(console, "_scan_progress.html", item=scan)
