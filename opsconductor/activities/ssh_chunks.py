"""`ssh.command` over a chunk of targets as one activity (docs/engine.md, "Scale: chunked
steps"): what a target batch sends for the targets that reach an `ssh.command` step together.

Each target runs as the single-target activity runs it (activities/ssh.py: its `with` block
rendered against its own context, its own connection, its command in its own remote session,
killed on cancel). What the single-target path does per target, a chunk does once: the vault
read of each distinct credential (logged with one access row per target it serves, in one
insert) and its key parsing, the pinned host keys (one query), and the run log (one insert per
flush for every target). The retries, timeout, records, heartbeat, resume and shutdown are
every chunked action's (activities/step_chunks.py).
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import asyncssh
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.activities.run_log import RunLogWriter
from opsconductor.activities.ssh import SshActions, connect_timeout
from opsconductor.activities.ssh_connect import (
    Endpoint,
    Prefetched,
    gone_from_inventory,
    login_options,
)
from opsconductor.activities.step_chunks import Attempt, StepChunk, run_chunk
from opsconductor.activities.step_credentials import StepCredentials
from opsconductor.activities.steps import rejected
from opsconductor.contracts import implements
from opsconductor.contracts.steps import (
    ChunkMember,
    ChunkRequest,
    ChunkResult,
    MemberResult,
    StepRequest,
    StepResult,
    ssh_command_chunk,
)
from opsconductor.db import unit_of_work
from opsconductor.jobspec.templates import SecretResolver
from opsconductor.security.envelope import KeyRing
from opsconductor.services.targets import host_keys
from opsconductor.services.vault import CredentialUnavailable, Revealed


class SshChunks:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], keyring: KeyRing):
        self._sessionmaker = sessionmaker
        self._credentials = StepCredentials(sessionmaker, keyring)
        self._ssh = SshActions(sessionmaker, keyring)

    @implements(ssh_command_chunk)
    async def run_chunk(self, request: ChunkRequest) -> ChunkResult:
        return await run_chunk(request, partial(_SshChunk, self, request))


class _SshChunk(StepChunk):
    """One try of an `ssh.command` chunk."""

    def __init__(
        self, owner: SshChunks, request: ChunkRequest, finished: dict[str, MemberResult]
    ) -> None:
        super().__init__(owner._sessionmaker, request, finished)
        self._owner = owner
        self._options: dict[int, asyncssh.SSHClientConnectionOptions | CredentialUnavailable] = {}

    @asynccontextmanager
    async def prepared(
        self, members: list[ChunkMember], requests: dict[str, StepRequest]
    ) -> AsyncIterator[dict[str, Attempt]]:
        # The pinned host keys (one query) are read while the credentials are.
        pinning = asyncio.create_task(self._pinned_keys(members))
        try:
            secrets, logins = await self._owner._credentials.reveal_for_targets(
                requests[members[0].target.name],
                [member.target for member in members],
                self._mask,
            )
        except BaseException:
            pinning.cancel()
            await asyncio.gather(pinning, return_exceptions=True)
            raise
        pins = await pinning
        async with RunLogWriter(self._owner._sessionmaker, self._request.run_id) as writer:
            self.run_log = writer
            yield {
                name: partial(self._attempt, request, _Login(secrets, logins[name], pins, writer))
                for name, request in requests.items()
            }

    async def _pinned_keys(self, members: list[ChunkMember]) -> dict[uuid.UUID, str | None]:
        async with unit_of_work(self._owner._sessionmaker) as session:
            return await host_keys.pinned_host_keys(
                session, [member.target.id for member in members]
            )

    async def _attempt(self, request: StepRequest, login: "_Login") -> StepResult:
        target = request.target
        assert target is not None
        endpoint = Endpoint(
            target.id,
            target.name,
            target.address,
            target.port,
            connect_timeout(self._request.timeout_seconds),
        )
        if isinstance(login.credential, CredentialUnavailable):
            raise rejected(str(login.credential))
        if target.id not in login.pins:
            raise rejected(str(gone_from_inventory(endpoint)))
        options = self._login_options(login.credential)
        operation = self._owner._ssh.command(request, self._mask, login.secrets, login.writer)
        prefetched = Prefetched(login.pins[target.id], options)
        return await self._owner._ssh.logged_in(
            endpoint, login.credential, operation, self._mask, prefetched
        )

    def _login_options(self, credential: Revealed) -> asyncssh.SSHClientConnectionOptions:
        """Parsed once per credential in the chunk."""
        options = self._options.get(id(credential))
        if options is None:
            try:
                options = login_options(credential)
            except CredentialUnavailable as error:
                options = error
            self._options[id(credential)] = options
        if isinstance(options, CredentialUnavailable):
            raise rejected(str(options))
        return options


class _Login:
    """What a member logs in with: read once for the chunk."""

    def __init__(
        self,
        secrets: SecretResolver,
        credential: Revealed | CredentialUnavailable,
        pins: dict[uuid.UUID, str | None],
        writer: RunLogWriter,
    ) -> None:
        self.secrets = secrets
        self.credential = credential
        self.pins = pins
        self.writer = writer
