"""The `http.request` action, on the `http` queue."""

import asyncio
import ipaddress
import json
import socket
from typing import Any
from urllib.parse import urlsplit

import httpx
from temporalio import activity

from opsconductor.activities.steps import SecretMask, bounded, failed, rejected, render_inputs
from opsconductor.config import Settings
from opsconductor.jobspec.actions import HttpRequest
from opsconductor.jobspec.runtime import StepRequest, StepResult

METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata"})
MAX_RESPONSE_BYTES = 1024 * 1024


async def _refuse_link_local(url: str) -> None:
    """Refuse addresses where cloud metadata services answer (169.254.0.0/16, fe80::/10)."""
    host = urlsplit(url).hostname or ""
    if host.lower() in METADATA_HOSTS:
        raise rejected(f"with.url: {host} is a cloud metadata service")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None)
    except socket.gaierror:
        return  # the request itself reports the unresolvable name
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if address.is_link_local:
            raise rejected(
                f"with.url: {host} resolves to the link-local address {address}; set "
                "OPSCONDUCTOR_HTTP_ALLOW_LINK_LOCAL=true to allow it"
            )


class HttpActions:
    def __init__(self, settings: Settings):
        self._settings = settings

    @activity.defn(name="http-step")
    async def run_step(self, request: StepRequest) -> StepResult:
        mask = SecretMask()
        inputs = render_inputs(request, HttpRequest, mask)
        if not self._settings.http_allow_link_local:
            await _refuse_link_local(inputs.url)
        timeout = inputs.timeout.total_seconds() if not isinstance(inputs.timeout, str) else 30
        try:
            async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
                response = await client.request(
                    inputs.method,
                    inputs.url,
                    headers=inputs.headers,
                    json=inputs.json_body,
                    content=inputs.body,
                )
        except httpx.HTTPError as error:
            raise failed(
                mask.apply(f"{inputs.method} {inputs.url} failed: {type(error).__name__}: {error}"),
                StepResult(attempt=activity.info().attempt),
            ) from None
        body = response.content[:MAX_RESPONSE_BYTES].decode(errors="replace")
        outputs: dict[str, Any] = {
            "status": response.status_code,
            "headers": dict(response.headers),
            "body": bounded(mask.apply(body)),
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
                f"{inputs.method} {inputs.url} answered {response.status_code}, "
                f"expected {', '.join(map(str, expected))}",
                result,
            )
        return result


def _json_or_none(body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None
