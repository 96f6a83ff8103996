"""What a network scan may ask for, and the nmap command line built from it.

Every nmap argument comes from a validated field: hosts are IP addresses, networks, ranges or
strict host names (never anything that starts with `-` or holds a space), ports are numbers,
timing is an enum. The command line is an argv list, and `--` ends nmap's options before the
hosts, so no value can become an option even if a check here were wrong.
"""

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from opsconductor.jobspec.templates import is_template

MAX_SCAN_ADDRESSES = 4096
MAX_HOST_ENTRIES = 256
MAX_PORT_ENTRIES = 100
DEFAULT_SCAN_PORTS = "22,80,443,5985-5986"
# How often nmap reports progress (as <taskprogress> lines in its XML on stdout).
STATS_EVERY = "2s"

# RFC 1123 labels: letters, digits and inner hyphens, 1..63 each, 253 in all.
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
HOSTNAME = re.compile(rf"^(?=.{{1,253}}\.?$){_LABEL}(?:\.{_LABEL})*\.?$")
_ENTRY_CHARACTERS = re.compile(r"^[A-Za-z0-9:][A-Za-z0-9.:/-]*$")
_PORT_RANGE = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Timing(StrEnum):
    """nmap's timing templates: T0 paranoid, T1 sneaky, T2 polite, T3 normal (nmap's default),
    T4 aggressive, T5 insane."""

    T0 = "T0"
    T1 = "T1"
    T2 = "T2"
    T3 = "T3"
    T4 = "T4"
    T5 = "T5"


@dataclass(frozen=True, slots=True)
class HostSet:
    """Hosts as the operator wrote them (canonical), and as nmap is given them."""

    canonical: list[str]
    nmap_targets: list[str]
    addresses: int
    ipv6: bool


def _maybe_address(text: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _range_end(start: IpAddress, text: str) -> IpAddress:
    """`10.0.0.1-10.0.0.20`, or the last octet only (`10.0.0.1-20`) as nmap writes it."""
    if isinstance(start, ipaddress.IPv4Address) and text.isdigit() and int(text) <= 255:
        return ipaddress.IPv4Address(".".join([*str(start).split(".")[:3], str(int(text))]))
    return ipaddress.ip_address(text)


def _parse_one(entry: str) -> tuple[str, list[str], int, int | None]:
    """One entry as (canonical text, nmap targets, address count, IP version or None)."""
    if not _ENTRY_CHARACTERS.match(entry):
        raise ValueError(
            f"{entry!r}: a host entry holds only letters, digits and . : / - "
            "(no spaces, no options)"
        )
    if "/" in entry:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"{entry!r} is not a valid network (CIDR)") from None
        return str(network), [str(network)], network.num_addresses, network.version
    first, dash, last = entry.partition("-")
    start = _maybe_address(first) if dash else None
    if start is not None:
        try:
            end = _range_end(start, last)
        except ValueError:
            raise ValueError(f"{entry!r} is not a valid address range (a-b)") from None
        if start.version != end.version or int(end) < int(start):
            raise ValueError(f"{entry!r}: a range runs from a lower to a higher address")
        networks = ipaddress.summarize_address_range(start, end)
        count = int(end) - int(start) + 1
        return f"{start}-{end}", [str(network) for network in networks], count, start.version
    address = _maybe_address(entry)
    if address is not None:
        return str(address), [str(address)], 1, address.version
    last_label = entry.rstrip(".").rsplit(".", 1)[-1]
    if not HOSTNAME.match(entry) or last_label.isdigit():
        raise ValueError(
            f"{entry!r} is not an IP address, a network (10.0.0.0/24), a range "
            "(10.0.0.1-20) or a host name"
        )
    name = entry.lower().rstrip(".")
    return name, [name], 1, None


def _entries(value: str | Sequence[str]) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items]


def parse_hosts(value: str | Sequence[str]) -> HostSet:
    """Hosts given as a comma-separated string or a list; raises ValueError naming the entry."""
    entries = _entries(value)
    if not entries or entries == [""]:
        raise ValueError("give at least one host, network or range")
    if len(entries) > MAX_HOST_ENTRIES:
        raise ValueError(f"at most {MAX_HOST_ENTRIES} entries per scan")
    canonical: dict[str, None] = {}
    targets: dict[str, None] = {}
    total = 0
    versions: set[int] = set()
    for entry in entries:
        if not entry:
            raise ValueError("an entry is empty")
        text, nmap_targets, count, version = _parse_one(entry)
        if text in canonical:
            continue
        canonical[text] = None
        targets.update(dict.fromkeys(nmap_targets))
        total += count
        if version is not None:
            versions.add(version)
    if len(versions) > 1:
        raise ValueError("IPv4 and IPv6 cannot be mixed in one scan")
    if total > MAX_SCAN_ADDRESSES:
        raise ValueError(f"covers {total} addresses; a scan may cover at most {MAX_SCAN_ADDRESSES}")
    return HostSet(list(canonical), list(targets), total, versions == {6})


def _port(text: str) -> int:
    port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is outside 1-65535")
    return port


def normalize_ports(value: str | int | Sequence[int | str]) -> str:
    """`22,80,8000-8100` (or a list of numbers and ranges) in nmap's canonical form."""
    if isinstance(value, int):
        entries = [str(value)]
    elif isinstance(value, str):
        entries = _entries(value)
    else:
        entries = [str(item).strip() for item in value]
    if not entries or entries == [""]:
        raise ValueError("give at least one port")
    if len(entries) > MAX_PORT_ENTRIES:
        raise ValueError(f"at most {MAX_PORT_ENTRIES} ports or ranges")
    canonical: dict[str, None] = {}
    for entry in entries:
        match = _PORT_RANGE.match(entry)
        if match is None:
            raise ValueError(f"{entry!r} is not a port (22) or a port range (8000-8100)")
        low = _port(match.group(1))
        high = _port(match.group(2)) if match.group(2) else low
        if high < low:
            raise ValueError(f"{entry!r}: a range runs from a lower to a higher port")
        canonical[str(low) if low == high else f"{low}-{high}"] = None
    return ",".join(canonical)


def _canonical_hosts(value: str | list[str]) -> list[str]:
    return parse_hosts(value).canonical


def _unless_templated(check: Callable[[Any], object]) -> Callable[[Any], Any]:
    """For job documents: a value holding a template is checked after it is rendered, on the
    worker (against the strict ScanOptions); a plain value is checked when the job is saved."""

    def validate(value: Any) -> Any:
        items = value if isinstance(value, list) else [value]
        if not any(is_template(item) for item in items):
            check(value)
        return value

    return validate


Hosts = Annotated[
    str | list[str],
    AfterValidator(_canonical_hosts),
    Field(
        description=f"IP addresses, networks, ranges or host names; at most "
        f"{MAX_SCAN_ADDRESSES} addresses",
        examples=["10.0.0.0/24", ["10.0.0.1-20", "db1"]],
    ),
]
Ports = Annotated[
    str | int | list[int | str],
    AfterValidator(normalize_ports),
    Field(description="Ports and ranges, e.g. 22,80,8000-8100", examples=[DEFAULT_SCAN_PORTS]),
]
# The same fields in a job's `with` block, where a value may also be a template.
TemplatedHosts = Annotated[str | list[str], AfterValidator(_unless_templated(parse_hosts))]
TemplatedPorts = Annotated[
    str | int | list[int | str], AfterValidator(_unless_templated(normalize_ports))
]


class ScanOptions(BaseModel):
    """What nmap is asked to do. Validated again on the worker before nmap starts."""

    model_config = ConfigDict(extra="forbid")

    hosts: Hosts
    ports: Ports = DEFAULT_SCAN_PORTS
    timing: Timing = Field(default=Timing.T3, description="nmap timing template, T0-T5")
    os_detection: bool = Field(
        default=False,
        description="nmap -O; needs a discovery worker running as root (skipped, with a note, "
        "otherwise)",
    )
    service_detection: bool = Field(
        default=True, description="nmap -sV: service names, products and versions"
    )


def nmap_arguments(options: ScanOptions, *, privileged: bool) -> list[str]:
    """nmap's argv after the executable: XML on stdout with progress every few seconds."""
    hosts = parse_hosts(options.hosts)
    # Not --noninteractive: it also silences --stats-every. nmap's stdin is /dev/null instead.
    arguments = ["-oX", "-", "--stats-every", STATS_EVERY]
    arguments += [f"-{options.timing.value}", "-p", normalize_ports(options.ports)]
    if options.service_detection:
        arguments.append("-sV")
    if options.os_detection and privileged:
        arguments.append("-O")
    if hosts.ipv6:
        arguments.append("-6")
    return [*arguments, "--", *hosts.nmap_targets]
