"""The `http.request` action, on the `http` queue."""

import json
from collections.abc import Generator
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from opsconductor.activities.egress import EgressRefused, checked_client
from opsconductor.activities.step_credentials import StepCredentials
from opsconductor.activities.steps import (
    SecretMask,
    attempt,
    bounded,
    failed,
    heartbeating,
    rejected,
    render_inputs,
)
from opsconductor.config import Settings
from opsconductor.contracts.steps import StepRequest, StepResult
from opsconductor.jobspec.actions import HttpRequest
from opsconductor.jobspec.templates import SecretResolver, is_template
from opsconductor.models.credential import CredentialKind
from opsconductor.security.envelope import KeyRing
from opsconductor.services.vault import Revealed
from opsconductor.text import OUTPUT_ERRORS, storable

# What a step keeps of an answer's body. The rest is not read at all: a server may stream
# without end, and a worker that buffered it would run out of memory with every step it holds.
MAX_RESPONSE_BYTES = 1024 * 1024
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
CUT_BODY_NOTE = (
    f"\n[… the body went on past {MAX_RESPONSE_BYTES // 1024 // 1024} MiB; the rest was not read]"
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
        self._credentials = StepCredentials(sessionmaker, keyring)
        # One client per worker: its connection pool and TLS context are shared by every step
        # (building a TLS context per request costs more CPU than many requests do).
        self._client = checked_client(settings)

    @activity.defn(name="http-step")
    async def run_step(self, request: StepRequest) -> StepResult:
        # Steps have a 30 s heartbeat timeout (so a dead worker is noticed): a request that
        # waits longer for its answer, or for a busy server to accept it, must heartbeat.
        async with heartbeating():
            return await self._run_step(request)

    async def _run_step(self, request: StepRequest) -> StepResult:
        mask = SecretMask()
        secrets, credential = await self.reveal(request, mask)
        return await self.perform(request, mask, secrets, credential)

    async def reveal(
        self, request: StepRequest, mask: SecretMask, targets: list[str] | None = None
    ) -> tuple[SecretResolver, Revealed | None]:
        """The values `secret()` reads and the credential the step names, read for the
        request's target, or once for `targets` (a chunk's: one access row per target)."""
        named = request.with_.get("credential")
        if named is not None and (not isinstance(named, str) or is_template(named)):
            raise rejected("with.credential: name a credential literally, not with a template")
        return await self._credentials.reveal_without_target(request, named, mask, targets)

    async def perform(
        self,
        request: StepRequest,
        mask: SecretMask,
        secrets: SecretResolver,
        credential: Revealed | None,
    ) -> StepResult:
        """One attempt: the request rendered against the target's context and sent through the
        worker's client (its egress policy checked on every connection)."""
        inputs = render_inputs(request, HttpRequest, mask, secrets)
        timeout = inputs.timeout.total_seconds() if not isinstance(inputs.timeout, str) else 30
        outgoing = self._client.build_request(
            inputs.method,
            inputs.url,
            headers=inputs.headers,
            json=inputs.json_body,
            content=inputs.body,
            timeout=timeout,
        )
        try:
            response = await self._sent(outgoing, _auth(credential))
            try:
                content, cut = await _body_start(response)
            finally:
                await response.aclose()
        except EgressRefused as refusal:
            raise rejected(mask.apply(str(refusal))) from None
        except httpx.HTTPError as error:
            raise failed(
                mask.apply(f"{inputs.method} {inputs.url} failed: {type(error).__name__}: {error}"),
                StepResult(attempt=attempt()),
            ) from None
        body = mask.apply(storable(content.decode(errors=OUTPUT_ERRORS)))
        if cut:
            body += CUT_BODY_NOTE
        outputs: dict[str, Any] = {
            "status": response.status_code,
            "headers": {name: mask.apply(value) for name, value in response.headers.items()},
            "body": bounded(body),
            "json": _json_or_none(body),
        }
        result = StepResult(attempt=attempt(), stdout=outputs["body"], outputs=outputs)
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

    async def _sent(self, outgoing: httpx.Request, auth: httpx.Auth | None) -> httpx.Response:
        """The answer's start (status and headers; the body is read after). An idempotent
        request is sent once more, on another connection, when the kept-alive connection it
        went out on turns out closed before any answer: the server closed it while idle as the
        request left (its keep-alive timeout, often 2 to 5 s, crossing ours). Nothing of it was
        answered, and RFC 9110 lets a client repeat an idempotent request; a POST or PATCH is
        never repeated, its step fails and its own `retry` decides."""
        reused = _ConnectionReuse()
        outgoing.extensions["trace"] = reused.trace
        chosen = auth or httpx.USE_CLIENT_DEFAULT
        try:
            return await self._client.send(outgoing, auth=chosen, stream=True)
        except (httpx.RemoteProtocolError, httpx.ReadError):
            if outgoing.method not in IDEMPOTENT_METHODS or not reused.reused:
                raise
        del outgoing.extensions["trace"]
        return await self._client.send(outgoing, auth=chosen, stream=True)


class _ConnectionReuse:
    """Whether a request went out on a connection kept alive from an earlier one: httpcore's
    trace tells when it opens a connection for it."""

    def __init__(self) -> None:
        self.reused = True

    async def trace(self, event: str, info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.started":
            self.reused = False


async def _body_start(response: httpx.Response) -> tuple[bytes, bool]:
    """The body's first `MAX_RESPONSE_BYTES`, and whether it went on. Leaving the stream before
    its end closes the connection rather than returning it to the pool."""
    start = bytearray()
    async for piece in response.aiter_bytes():
        start += piece
        if len(start) > MAX_RESPONSE_BYTES:
            return bytes(start[:MAX_RESPONSE_BYTES]), True
    return bytes(start), False


def _json_or_none(body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None
