"""Streams a step's output lines to the run log in PostgreSQL while the step runs.

Lines are buffered briefly and written in batches, so a chatty command costs a few inserts a
second rather than one per line; `GET /runs/{id}/logs?follow=true` reads them as they land.
"""

import asyncio
import logging
import uuid
from contextlib import suppress
from types import TracebackType
from typing import Protocol, Self

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
# What is held of a line still being written. A stored line keeps its first MAX_LINE_CHARACTERS
# once masked; held beyond that is only the room masking may take (a secret replaced by `***`).
# Holding all of it made a line without end (`head -c 1G /dev/zero`) cost the worker memory
# without bound and time in its square: every piece was joined to all the line before it.
MAX_HELD_CHARACTERS = 8 * MAX_LINE_CHARACTERS


class LineMask(Protocol):
    """The step's secrets: `apply` masks a whole line; `apply_to_start` masks the start of a
    line whose rest was not held, so the end may hold the first part of a secret."""

    def apply(self, text: str) -> str: ...

    def apply_to_start(self, text: str) -> str: ...


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


class _LineStart:
    """The start of a line being written: at most MAX_HELD_CHARACTERS of it."""

    def __init__(self) -> None:
        self._pieces: list[str] = []
        self._size = 0
        self._whole = True

    def __bool__(self) -> bool:
        return self._size > 0 or not self._whole

    def add(self, text: str) -> None:
        room = MAX_HELD_CHARACTERS - self._size
        if len(text) > room:
            text, self._whole = text[:room], False
        if text:
            self._pieces.append(text)
            self._size += len(text)

    def take(self) -> tuple[str, bool]:
        """The line's start, and whether it is the whole line; the next line starts empty."""
        line, whole = "".join(self._pieces), self._whole
        self._pieces, self._size, self._whole = [], 0, True
        return line, whole


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
        mask: LineMask | None = None,
        writer: RunLogWriter | None = None,
    ):
        self._run_id = run_id
        self._step_id = step_id
        self._target = target or RUN_ONCE_TARGET
        self._attempt = attempt
        self._mask = mask
        self._partial: dict[str, _LineStart] = {}
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
        for stream, start in self._partial.items():
            if start:
                self._queue(stream, start)
        self._partial.clear()
        if self._own:
            await self._writer.__aexit__(exc_type, exc, tb)

    def write(self, stream: str, text: str) -> None:
        """Accepts output as it arrives, in chunks that may split lines."""
        start = self._partial.setdefault(stream, _LineStart())
        *complete, rest = text.split("\n")
        for line in complete:
            start.add(line)
            self._queue(stream, start)
        start.add(rest)

    def _queue(self, stream: str, start: _LineStart) -> None:
        line, whole = start.take()
        if whole:
            line = line.rstrip("\r")
        if self._mask is not None:
            line = self._mask.apply(line) if whole else self._mask.apply_to_start(line)
        self._writer.queue(
            {
                "run_id": self._run_id,
                "target": self._target,
                "step_id": self._step_id,
                "attempt": self._attempt,
                "stream": stream,
                "line": storable(line)[:MAX_LINE_CHARACTERS],
                "created_at": utcnow(),
            }
        )
