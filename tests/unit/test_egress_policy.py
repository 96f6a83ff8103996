"""The egress policy's reading of addresses and settings, and the worker's client ignoring
the environment's proxies and netrc (docs/security.md, "Egress from `http.request`")."""

import asyncio
import importlib.abc
import importlib.machinery
import ipaddress
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from anyio.abc._sockets import _SocketProvider
from pydantic import ValidationError

from opsconductor.activities.egress import EgressPolicy, EgressRefused, checked_client
from opsconductor.config import DEFAULT_HTTP_DENIED_NETWORKS, Settings
from tests.fixtures.http_receiver import HttpReceiver

DEFAULT = EgressPolicy(DEFAULT_HTTP_DENIED_NETWORKS)


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("169.254.169.254", "169.254.0.0/16"),
        ("2002:a9fe:a9fe::1", "169.254.0.0/16"),  # 6to4 of 169.254.169.254
        ("64:ff9b::a9fe:a9fe", "169.254.0.0/16"),  # NAT64
        ("::ffff:0.0.0.0", "0.0.0.0/8"),
        ("fe80::1", "fe80::/10"),
        ("100.100.100.200", "100.100.100.200/32"),
        ("224.0.0.251", "224.0.0.0/4"),
        ("ff02::1", "ff00::/8"),
        ("::", "::/128"),
    ],
)
def test_the_defaults_deny_link_local_metadata_and_multicast(address: str, network: str) -> None:
    refusal = DEFAULT.refusal("h", ipaddress.ip_address(address))
    assert refusal is not None
    assert f"in the denied network {network} (OPSCONDUCTOR_HTTP_DENIED_NETWORKS)" in refusal


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "10.1.2.3", "192.168.1.1", "8.8.8.8"])
def test_the_defaults_allow_loopback_private_and_public_addresses(address: str) -> None:
    assert DEFAULT.refusal("h", ipaddress.ip_address(address)) is None


def test_metadata_names_are_refused_only_while_the_metadata_address_is_denied() -> None:
    assert DEFAULT.refuses_name("Metadata.Google.Internal.") is not None
    assert EgressPolicy([]).refuses_name("metadata.google.internal") is None


def test_the_setting_is_the_whole_list_and_empty_denies_nothing() -> None:
    assert [str(n) for n in Settings(http_denied_networks="10.0.0.0/8").http_denied_networks] == [
        "10.0.0.0/8"
    ]
    assert Settings(http_denied_networks="").http_denied_networks == []
    with pytest.raises(ValidationError, match="http_denied_networks"):
        Settings(http_denied_networks="10.0.0.1/8")


def test_dns_servers_are_addresses_with_optional_ports() -> None:
    assert Settings(http_dns_servers="127.0.0.1:5353, [::1]:53,10.0.0.2").http_dns_servers == [
        "127.0.0.1:5353",
        "[::1]:53",
        "10.0.0.2",
    ]
    with pytest.raises(ValidationError, match="a DNS server is an IP address"):
        Settings(http_dns_servers="dns.example")
    with pytest.raises(ValidationError, match="the port must be 1 to 65535"):
        Settings(http_dns_servers="127.0.0.1:0")


async def test_the_client_ignores_proxy_variables_and_netrc(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login worker password worker-netrc-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    # A proxy on the denied link-local network: used, it would be refused.
    monkeypatch.setenv("HTTP_PROXY", "http://169.254.1.1:3128")
    monkeypatch.setenv("ALL_PROXY", "http://169.254.1.1:3128")
    with HttpReceiver() as receiver:
        async with checked_client(Settings()) as client:
            answer = await client.get(f"{receiver.url}/direct")
        (request,) = receiver.requests
    assert answer.status_code == 200
    assert "Authorization" not in request.headers


async def test_redirects_are_answered_not_followed() -> None:
    with HttpReceiver() as receiver:
        receiver.respond("/away", status=302, headers={"Location": "http://169.254.169.254/"})
        async with checked_client(Settings()) as client:
            answer = await client.get(f"{receiver.url}/away")
    assert (answer.status_code, answer.headers["Location"]) == (302, "http://169.254.169.254/")
    with pytest.raises(EgressRefused):
        async with checked_client(Settings()) as client:
            await client.get("http://169.254.169.254/")


class _ImportLookups(importlib.abc.MetaPathFinder):
    """Counts the names an import searches `sys.path` for (it finds nothing itself)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        self.names.append(fullname)
        return None


async def test_requests_search_for_no_module_and_log_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """httpcore asks `import sniffio` for every lock, event and cancellation shield it sets
    up; without sniffio installed, each ask searched every sys.path entry again (13 per
    request, 22 % of the http worker's CPU; benchmarks/README.md, "fix 20"). The worker's
    client answers them without a search. httpcore asks each idle connection whether its
    socket is readable whenever a request enters or leaves the pool; anyio answered through a
    mapping built again each time (a `getpeername()` in it): only as a connection opens now.
    httpx logged each request's URL at INFO, a secret in its query too: nothing is logged."""
    lookups = _ImportLookups()
    monkeypatch.setattr(sys, "meta_path", [lookups, *sys.meta_path])
    socket_mappings = 0
    built = vars(_SocketProvider)["extra_attributes"].fget  # the property's function

    def counted(stream: _SocketProvider) -> Any:
        nonlocal socket_mappings
        socket_mappings += 1
        return built(stream)

    monkeypatch.setattr(_SocketProvider, "extra_attributes", property(counted))
    caplog.set_level(logging.DEBUG)
    with HttpReceiver() as receiver:
        async with checked_client(Settings()) as client:
            answers = await asyncio.gather(
                *(client.get(f"{receiver.url}/n{index}?key=s3cret") for index in range(20))
            )
            # One at a time, with the connections the burst opened idle in the pool.
            answers += [await client.get(f"{receiver.url}/m{index}") for index in range(20)]
    assert [answer.status_code for answer in answers] == [200] * 40
    assert lookups.names == []
    # As each of (at most) 20 connections opens: its socket, and whether it speaks TLS.
    assert socket_mappings <= 2 * 20
    assert [record for record in caplog.records if record.name.startswith("http")] == []
