"""`http.request` over a chunk of targets as one activity (docs/engine.md, "Scale: chunked
steps"): what a target batch sends for the targets that reach an `http.request` step together.

Each target's request is rendered against its own context and sent as the single-target
activity sends it (activities/http.py), through the worker's one client, so every connection
is checked against the egress policy as before (activities/egress.py). Once per chunk: the vault
read of each `secret()` and of the step's credential (one access row per target it serves),
the steps' `running` records and their final records (activities/step_chunks.py).
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.activities.http import HttpActions
from opsconductor.activities.step_chunks import Attempt, StepChunk, run_chunk
from opsconductor.contracts import implements
from opsconductor.contracts.steps import (
    ChunkMember,
    ChunkRequest,
    ChunkResult,
    MemberResult,
    StepRequest,
    http_request_chunk,
)


class HttpChunks:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], http: HttpActions):
        self._sessionmaker = sessionmaker
        # The worker's single-target actions: their client (its pool and TLS context) serves
        # the chunks too.
        self._http = http

    @implements(http_request_chunk)
    async def run_chunk(self, request: ChunkRequest) -> ChunkResult:
        return await run_chunk(request, partial(_HttpChunk, self, request))


class _HttpChunk(StepChunk):
    """One try of an `http.request` chunk."""

    def __init__(
        self, owner: HttpChunks, request: ChunkRequest, finished: dict[str, MemberResult]
    ) -> None:
        super().__init__(owner._sessionmaker, request, finished)
        self._http = owner._http

    @asynccontextmanager
    async def prepared(
        self, members: list[ChunkMember], requests: dict[str, StepRequest]
    ) -> AsyncIterator[dict[str, Attempt]]:
        secrets, credential = await self._http.reveal(
            requests[members[0].target.name],
            self._mask,
            [member.target.name for member in members],
        )
        yield {
            name: partial(self._http.perform, request, self._mask, secrets, credential)
            for name, request in requests.items()
        }
