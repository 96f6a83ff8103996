"""Where `http.request` may connect: each connection resolves its host once, checks every
address against the egress policy, and connects to a checked address (docs/security.md,
"Egress from http.request").

The check lives in httpcore's network backend, the one place a connection is opened: the URL
keeps its host name, so the Host header, TLS SNI and certificate verification are for the
name, while the socket goes to the address that was checked. A resolver that answered a
public address to the check and a link-local one to the connect (DNS rebinding) has no second
question to answer.
"""

import asyncio
import importlib.util
import ipaddress
import logging
import socket
import ssl
import sys
import typing
from collections.abc import Iterable, Sequence
from typing import Protocol

import anyio
import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver
import httpcore
import httpx
from httpcore._utils import is_socket_readable

from opsconductor.config import Settings, dns_server

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Names that reach a cloud metadata service without resolving to its address everywhere (GCP
# answers them from its own resolver); refused whenever 169.254.169.254 is denied.
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata"})
METADATA_ADDRESS = ipaddress.ip_address("169.254.169.254")
# IPv6 prefixes that carry an IPv4 address in their last 32 bits and reach it through a
# translator (RFC 6052 NAT64's well-known prefix).
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")
SETTING = "OPSCONDUCTOR_HTTP_DENIED_NETWORKS"


def _sniffio_missing_answered_at_once() -> None:
    """httpcore runs `import sniffio` each time it sets up a lock, an event or a cancellation
    shield (13 times per request), and dnspython on each query. Without sniffio installed
    (anyio no longer needs it) each of those is a failed import that searches every sys.path
    entry again: 22 % of the http worker's CPU in B3 (benchmarks/README.md, "fix 20"). A name
    that `sys.modules` holds as None fails to import at once (ModuleNotFoundError, which both
    take as "asyncio"); an installed sniffio is left to answer."""
    if importlib.util.find_spec("sniffio") is None:
        sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]


_sniffio_missing_answered_at_once()
# httpx logs every request at INFO with its whole URL, and a rendered URL may hold a secret
# (`?key={{ secret('api') }}`): its records and httpcore's below WARNING never reach our log
# pipeline (as asyncssh's, activities/ssh_connect.py). They were also a JSON line per request
# in the worker's log, 1.4 % of its CPU in B3 (benchmarks/README.md, "fix 20").
for _noisy in ("httpx", "httpcore"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)


class EgressRefused(Exception):
    """The host resolves to an address the egress policy denies; no retry changes that."""


class Resolver(Protocol):
    async def addresses(self, host: str) -> list[IPAddress]:
        """Every address of `host`, in the order to try them; empty when it has none."""
        ...


class SystemResolver:
    """The host's resolver (getaddrinfo: /etc/hosts, search domains, nsswitch)."""

    async def addresses(self, host: str) -> list[IPAddress]:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, None, type=socket.SOCK_STREAM
            )
        except socket.gaierror:
            return []
        return _unique(ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos)


class DnsServerResolver:
    """Named DNS servers, asked for A and AAAA records (OPSCONDUCTOR_HTTP_DNS_SERVERS)."""

    def __init__(self, servers: Sequence[str]):
        self._resolver = dns.asyncresolver.Resolver(configure=False)
        self._resolver.nameservers = [
            dns.nameserver.Do53Nameserver(address, port)
            for address, port in map(dns_server, servers)
        ]

    async def addresses(self, host: str) -> list[IPAddress]:
        answers = await asyncio.gather(
            self._records(host, dns.rdatatype.A), self._records(host, dns.rdatatype.AAAA)
        )
        return _unique(address for answer in answers for address in answer)

    async def _records(self, host: str, kind: dns.rdatatype.RdataType) -> list[IPAddress]:
        try:
            answer = await self._resolver.resolve(host, kind, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
            return []
        except dns.exception.Timeout:
            return []
        return [ipaddress.ip_address(record.address) for record in answer]


def _unique(addresses: Iterable[IPAddress]) -> list[IPAddress]:
    return list(dict.fromkeys(addresses))


def _literal(host: str) -> IPAddress | None:
    """An address written as the host, in any form the host's resolver reads as one
    (`2852039166`, `0xa9.254.169.254`, `[::ffff:a9fe:a9fe]`)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.ip_address(socket.inet_aton(host))
    except OSError:
        return None


def _reached(address: IPAddress) -> list[IPAddress]:
    """The address and the IPv4 address it reaches when it embeds one (IPv4-mapped, 6to4,
    NAT64): ::ffff:169.254.169.254 is not link-local as IPv6, yet connects to 169.254.169.254."""
    if isinstance(address, ipaddress.IPv4Address):
        return [address]
    embedded = [address.ipv4_mapped, address.sixtofour]
    if address in NAT64_PREFIX:
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return [address, *(inner for inner in embedded if inner is not None)]


class EgressPolicy:
    def __init__(self, denied: Sequence[IPNetwork]):
        self._denied = tuple(denied)

    def refusal(self, host: str, address: IPAddress) -> str | None:
        """Why `host` may not be reached at `address`, or None."""
        for reached in _reached(address):
            for network in self._denied:
                if reached in network:
                    shown = reached if reached == address else f"{address} ({reached})"
                    return (
                        f"with.url: {host} resolves to {shown}, in the denied network "
                        f"{network} ({SETTING})"
                    )
        return None

    def refuses_name(self, host: str) -> str | None:
        if host.lower().rstrip(".") in METADATA_HOSTS and self.refusal(host, METADATA_ADDRESS):
            return (
                f"with.url: {host} is a cloud metadata service "
                f"({SETTING} denies {METADATA_ADDRESS})"
            )
        return None


class CheckedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore's backend, connecting only to addresses the policy allows."""

    def __init__(self, policy: EgressPolicy, resolver: Resolver):
        self._policy = policy
        self._resolver = resolver
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if refusal := self._policy.refuses_name(host):
            raise EgressRefused(refusal)
        literal = _literal(host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                with anyio.fail_after(timeout):
                    addresses = await self._resolver.addresses(host)
            except TimeoutError:
                raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        if not addresses:
            raise httpcore.ConnectError(f"{host} does not resolve to any address")
        # Every address is checked before any is tried: a name with one denied address is
        # refused, whichever address a connection would have reached.
        for address in addresses:
            if refusal := self._policy.refusal(host, address):
                raise EgressRefused(refusal)
        error: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            try:
                stream = await self._backend.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
                return _SocketAskedDirectly(stream)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as failure:
                error = failure
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("http.request connects over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _SocketAskedDirectly(httpcore.AsyncNetworkStream):
    """The backend's stream, its socket's readability asked of the socket itself. httpcore asks
    it of every idle connection each time a request enters or leaves the pool (`has_expired`),
    and anyio answers through a mapping it builds again, with a `getpeername()`, on every ask:
    17 % of the http worker's CPU in B3 (benchmarks/README.md, "fix 20")."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        # The same socket under TLS (start_tls wraps this stream's).
        self._socket: socket.socket | None = stream.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
    ) -> httpcore.AsyncNetworkStream:
        tls = await self._stream.start_tls(ssl_context, server_hostname, timeout)
        return _SocketAskedDirectly(tls)

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "is_readable":
            return is_socket_readable(self._socket)
        if info == "socket":
            return self._socket
        return self._stream.get_extra_info(info)


POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)


class CheckedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a `CheckedNetworkBackend`."""

    def __init__(self, backend: CheckedNetworkBackend):
        super().__init__()
        # httpx takes no network backend; its transport sends every request through `_pool`
        # (tests/integration/test_http_egress.py fails if a release stops doing so).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            network_backend=backend,
            # httpx's own limits, which a pool built by hand does not get: httpcore's defaults
            # are 10 connections for the whole worker (a slow host held them all, and other
            # steps timed out waiting for one) and idle connections kept for ever.
            max_connections=POOL_LIMITS.max_connections,
            max_keepalive_connections=POOL_LIMITS.max_keepalive_connections,
            keepalive_expiry=POOL_LIMITS.keepalive_expiry,
        )


def checked_client(settings: Settings) -> httpx.AsyncClient:
    """The client of one http worker: every connection checked by the settings' policy.
    Redirects are not followed (a step sees the 3xx answer), and the environment's proxies
    and ~/.netrc are ignored: a proxy would connect where the policy never looked, and the
    worker's own netrc passwords must not go to a URL a job names."""
    resolver: Resolver = (
        DnsServerResolver(settings.http_dns_servers)
        if settings.http_dns_servers
        else SystemResolver()
    )
    backend = CheckedNetworkBackend(EgressPolicy(settings.http_denied_networks), resolver)
    return httpx.AsyncClient(
        transport=CheckedTransport(backend), follow_redirects=False, trust_env=False
    )
