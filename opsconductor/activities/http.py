"""The `http.request` action, on the `http` queue."""

import asyncio
import ipaddress
import json
import socket
from collections.abc import Generator
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from opsconductor.activities.step_credentials import StepCredentials
from opsconductor.activities.steps import (
    SecretMask,
    bounded,
    failed,
    heartbeating,
    rejected,
    render_inputs,
)
from opsconductor.config import Settings
from opsconductor.contracts.steps import StepRequest, StepResult
from opsconductor.jobspec.actions import HttpRequest
from opsconductor.jobspec.templates import is_template
from opsconductor.models.credential import CredentialKind
from opsconductor.security.envelope import KeyRing
from opsconductor.services.vault import Revealed
from opsconductor.text import OUTPUT_ERRORS, storable

METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata"})
# AWS also serves its metadata on a unique-local IPv6 address, outside fe80::/10.
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("fd00:ec2::254")})
MAX_RESPONSE_BYTES = 1024 * 1024


async def _refuse_link_local(url: str) -> None:
    """Refuse addresses where cloud metadata services answer (169.254.0.0/16, fe80::/10,
    fd00:ec2::254), also when written as IPv4-mapped IPv6."""
    host = urlsplit(url).hostname or ""
    if host.lower() in METADATA_HOSTS:
        raise rejected(f"with.url: {host} is a cloud metadata service")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None)
    except socket.gaierror:
        return  # the request itself reports the unresolvable name
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        # ::ffff:169.254.169.254 reaches the IPv4 address over a dual-stack socket, yet is not
        # link-local as an IPv6 address.
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address.is_link_local or address in METADATA_ADDRESSES:
            raise rejected(
                f"with.url: {host} resolves to {address}, a link-local or cloud metadata "
                "address; set "
                "OPSCONDUCTOR_HTTP_ALLOW_LINK_LOCAL=true to allow it"
            )


def _auth(credential: Revealed | None) -> httpx.Auth | None:
    if credential is None:
        return None
    if credential.kind is CredentialKind.http_basic:
        return httpx.BasicAuth(credential.username or "", credential.secret["password"])
    if credential.kind is CredentialKind.http_bearer:
        return BearerAuth(credential.secret["token"])
    raise rejected(
        f"with.credential: {credential.name!r} is a {credential.kind} credential; "
        "http.request authenticates with http_basic or http_bearer"
    )


class BearerAuth(httpx.Auth):
    def __init__(self, token: str):
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


class HttpActions:
    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        keyring: KeyRing,
    ):
        self._settings = settings
        self._credentials = StepCredentials(sessionmaker, keyring)
        # One client per worker: its connection pool and TLS context are shared by every step
        # (building a TLS context per request costs more CPU than many requests do).
        self._client = httpx.AsyncClient(follow_redirects=False)

    @activity.defn(name="http-step")
    async def run_step(self, request: StepRequest) -> StepResult:
        # Steps have a 30 s heartbeat timeout (so a dead worker is noticed): a request that
        # waits longer for its answer, or for a busy server to accept it, must heartbeat.
        async with heartbeating():
            return await self._run_step(request)

    async def _run_step(self, request: StepRequest) -> StepResult:
        mask = SecretMask()
        named = request.with_.get("credential")
        if named is not None and (not isinstance(named, str) or is_template(named)):
            raise rejected("with.credential: name a credential literally, not with a template")
        secrets, credential = await self._credentials.reveal_without_target(request, named, mask)
        inputs = render_inputs(request, HttpRequest, mask, secrets)
        if not self._settings.http_allow_link_local:
            await _refuse_link_local(inputs.url)
        timeout = inputs.timeout.total_seconds() if not isinstance(inputs.timeout, str) else 30
        try:
            response = await self._client.request(
                inputs.method,
                inputs.url,
                headers=inputs.headers,
                json=inputs.json_body,
                content=inputs.body,
                auth=_auth(credential) or httpx.USE_CLIENT_DEFAULT,
                timeout=timeout,
            )
        except httpx.HTTPError as error:
            raise failed(
                mask.apply(f"{inputs.method} {inputs.url} failed: {type(error).__name__}: {error}"),
                StepResult(attempt=activity.info().attempt),
            ) from None
        body = mask.apply(
            storable(response.content[:MAX_RESPONSE_BYTES].decode(errors=OUTPUT_ERRORS))
        )
        outputs: dict[str, Any] = {
            "status": response.status_code,
            "headers": {name: mask.apply(value) for name, value in response.headers.items()},
            "body": bounded(body),
            "json": _json_or_none(body),
        }
        result = StepResult(
            attempt=activity.info().attempt,
            stdout=outputs["body"],
            outputs=outputs,
        )
        expected = inputs.expect_status
        assert isinstance(expected, list)
        if response.status_code not in expected:
            raise failed(
                mask.apply(
                    f"{inputs.method} {inputs.url} answered {response.status_code}, "
                    f"expected {', '.join(map(str, expected))}"
                ),
                result,
            )
        return result


def _json_or_none(body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None
