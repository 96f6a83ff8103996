"""Streams a step's output lines to the run log in PostgreSQL while the step runs.

Lines are buffered briefly and written in batches, so a chatty command costs a few inserts a
second rather than one per line; `GET /runs/{id}/logs?follow=true` reads them as they land.
"""

import asyncio
import logging
import uuid
from collections.abc import Callable
from contextlib import suppress
from types import TracebackType
from typing import Self

from sqlalchemy import insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.db import execute_many, unit_of_work
from opsconductor.models.base import utcnow
from opsconductor.models.run import RUN_ONCE_TARGET, RunLogLine
from opsconductor.text import storable

logger = logging.getLogger(__name__)

FLUSH_INTERVAL_SECONDS = 0.25
MAX_BUFFERED_LINES = 500
MAX_LINE_CHARACTERS = 8192
_INSERT_LINE = insert(RunLogLine.__table__)  # type: ignore[attr-defined]


class RunLogWriter:
    """Lines queued by any number of streams, written in batches: one stream's (a step on a
    target), or a whole chunk's (activities/ssh_chunks.py: one insert every flush for all its
    targets). Use as an async context manager; `queue` never blocks on the database."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], run_id: uuid.UUID):
        self._sessionmaker = sessionmaker
        self._run_id = run_id
        self._pending: list[dict[str, object]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    async def __aenter__(self) -> Self:
        self._flusher = asyncio.create_task(self._flush_periodically())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._flusher is not None:
            # Asked to stop and waited for, never cancelled: a flush cancelled between
            # PostgreSQL's commit and its answer would put back lines already written, and the
            # final flush below would write them twice.
            self._closing.set()
            await asyncio.shield(self._flusher)
        try:
            await self.flush()
        except (OSError, SQLAlchemyError):
            # Never fail (and so re-run) a remote command because its log could not be
            # written; its result carries its output.
            logger.warning("run log lines lost", extra={"run_id": str(self._run_id)})

    def queue(self, line: dict[str, object]) -> None:
        self._pending.append(line)

    def finish_soon(self) -> None:
        """Writes what is queued now instead of at the next tick, and stops the ticks: for a
        caller whose streams have ended and that has other writes to make before it closes
        the writer (a chunk's final records), so the two run side by side. Lines queued later
        are still written when the writer closes."""
        self._closing.set()

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            await self._insert(batch)
        except BaseException:
            self._pending = batch + self._pending
            raise

    async def _insert(self, batch: list[dict[str, object]]) -> None:
        async with unit_of_work(self._sessionmaker) as session:
            await execute_many(session, _INSERT_LINE, batch)

    async def _flush_periodically(self) -> None:
        while not self._closing.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), FLUSH_INTERVAL_SECONDS)
            try:
                await self.flush()
            except (OSError, SQLAlchemyError):
                # The database is briefly away: keep the newest lines and try again. The
                # step's result still carries its (bounded) output either way.
                logger.warning(
                    "run log write failed; retrying", extra={"run_id": str(self._run_id)}
                )
                self._pending = self._pending[-MAX_BUFFERED_LINES:]


class RunLogStream:
    """One step's output on one target. Use as an async context manager; `write` never blocks
    on the database. Its lines go to `writer` when given (which the caller runs), else to a
    writer of its own."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        run_id: uuid.UUID,
        step_id: str,
        target: str | None,
        attempt: int,
        mask: Callable[[str], str] = lambda text: text,
        writer: RunLogWriter | None = None,
    ):
        self._run_id = run_id
        self._step_id = step_id
        self._target = target or RUN_ONCE_TARGET
        self._attempt = attempt
        self._mask = mask
        self._partial: dict[str, str] = {}
        self._own = writer is None
        self._writer = writer or RunLogWriter(sessionmaker, run_id)

    async def __aenter__(self) -> Self:
        if self._own:
            await self._writer.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for stream, rest in self._partial.items():
            if rest:
                self._queue(stream, rest)
        self._partial.clear()
        if self._own:
            await self._writer.__aexit__(exc_type, exc, tb)

    def write(self, stream: str, text: str) -> None:
        """Accepts output as it arrives, in chunks that may split lines."""
        buffered = self._partial.get(stream, "") + text
        *complete, rest = buffered.split("\n")
        self._partial[stream] = rest
        for line in complete:
            self._queue(stream, line)

    def _queue(self, stream: str, line: str) -> None:
        self._writer.queue(
            {
                "run_id": self._run_id,
                "target": self._target,
                "step_id": self._step_id,
                "attempt": self._attempt,
                "stream": stream,
                "line": storable(self._mask(line.rstrip("\r")))[:MAX_LINE_CHARACTERS],
                "created_at": utcnow(),
            }
        )
