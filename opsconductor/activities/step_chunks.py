"""One step over a chunk of targets as one activity (docs/engine.md, "Scale: chunked steps"):
what every chunked action shares (`ssh.command` in activities/ssh_chunks.py, `http.request` in
activities/http_chunks.py).

An action supplies how its chunk is prepared once (credentials, pinned keys, a run log) and how
one attempt on one target runs; this module runs the members, at most `concurrency` at once,
with the step's retry policy and timeout applied per target, writes the `running` records in
one statement as the chunk starts and the final records of the targets that ended since the
last write about every second, and heartbeats the finished targets as details, so a retry
after its worker was lost runs only the others. A target's failure never fails the chunk: it
is that target's result. A worker's shutdown stops the attempts still running (as a cancel
does) and answers the finished targets' results, the others marked `cut`: the workflow runs
those again in a later chunk, as it does a single-target step.
"""

import asyncio
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, suppress

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from opsconductor.activities.run_log import RunLogWriter
from opsconductor.activities.run_records import mark_steps_running, store_steps_output
from opsconductor.activities.step_output import failure_result, for_history
from opsconductor.activities.steps import SecretMask, member_attempt
from opsconductor.contracts.steps import (
    ChunkMember,
    ChunkProgress,
    ChunkRequest,
    ChunkResult,
    MemberResult,
    StepRequest,
    StepResult,
)
from opsconductor.worker.shutdown import cut_by_shutdown

logger = logging.getLogger(__name__)

# How often finished targets' records are written and the chunk heartbeats its progress. The
# SDK sends a heartbeat at most every 80 % of the heartbeat timeout (8 s), with the latest
# details: what a retry after a lost worker resumes from is at most ~9 s old.
BEAT_SECONDS = 1.0
# Heartbeat details carry finished targets' results up to this size (a step whose output a
# later step reads returns it); beyond it, a target is run again after a lost worker.
MAX_PROGRESS_BYTES = 1_000_000
# How the SDK's converter marks JSON; the details are a `ChunkProgress` in it (`_progress`).
_JSON_PLAIN = {"encoding": b"json/plain"}

# One attempt of one member's step, as the chunk's action runs it.
Attempt = Callable[[], Awaitable[StepResult]]


def _resumed() -> ChunkProgress:
    """What an earlier try of this chunk finished, from its last heartbeat."""
    details = activity.info().heartbeat_details
    if not details:
        return ChunkProgress()
    try:
        return ChunkProgress.model_validate(details[0])
    except ValidationError:
        return ChunkProgress()


def _remaining(member: ChunkMember, started: int | None) -> ChunkMember:
    """A member an earlier try left at attempt `started`: that attempt does not count (its
    worker was lost, not the step), so it starts again one past it with the retries it had."""
    if started is None:
        return member
    used = started - member.first_attempt
    return member.model_copy(
        update={"first_attempt": started + 1, "attempts": max(1, member.attempts - used)}
    )


class StepChunk(ABC):
    """One try of a chunk activity; a chunked action says how it prepares and attempts."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        request: ChunkRequest,
        finished: dict[str, MemberResult],
    ) -> None:
        self._sessionmaker = sessionmaker
        self._request = request
        self.finished = finished
        # Each finished member as the heartbeat details carry it, encoded once: a beat joins
        # them rather than have the SDK encode every finished member again every second
        # (benchmarks/README.md, "fix 20").
        self._encoded = {
            name: member.model_dump_json().encode() for name, member in finished.items()
        }
        self._started: dict[str, int] = {}
        # Ended, their records not yet written: (request, result, error).
        self._ended: list[tuple[StepRequest, StepResult, str | None]] = []
        self._mask = SecretMask()
        self._closing = asyncio.Event()
        # The members' `running` records, written beside their first attempts; every later
        # write of theirs waits for it (`_store`), so it never lands after one.
        self._marking: asyncio.Task[None] | None = None
        # The run log the action's members write to, if any (set in `prepared`): told to write
        # its last lines as the members end, beside their final records.
        self.run_log: RunLogWriter | None = None

    @abstractmethod
    def prepared(
        self, members: list[ChunkMember], requests: dict[str, StepRequest]
    ) -> AbstractAsyncContextManager[dict[str, Attempt]]:
        """What the chunk reads once (credentials, keys) and holds while its members run (a
        run log), giving each member's attempt by target name. An ApplicationError on entering
        it (a `secret()` no target can read) ends every member with it."""

    async def run(self, members: list[ChunkMember]) -> None:
        # At once, before the action's reads, not after the first beat: the first heartbeat
        # is due within the heartbeat timeout (10 s) of the start, and a worker lost a moment
        # after the chunk started must leave the attempts it started on record, so the retry
        # does not count them.
        self._started = {member.target.name: member.first_attempt for member in members}
        activity.heartbeat(self._progress())
        requests = {
            member.target.name: self._request.step_request(member, first_attempt=1)
            for member in members
        }
        async with AsyncExitStack() as stack:
            try:
                attempts = await stack.enter_async_context(self.prepared(members, requests))
            except ApplicationError as refused:
                for member in members:
                    self._end(requests[member.target.name], member, refused)
                await self._store()
                return
            self._marking = asyncio.create_task(
                self._mark_running(
                    [(requests[member.target.name], member.first_attempt) for member in members]
                )
            )
            await self._run_members(members, requests, attempts)

    async def _mark_running(self, steps: list[tuple[StepRequest, int]]) -> None:
        with suppress(OSError, SQLAlchemyError):  # only what a reader sees meanwhile
            await mark_steps_running(self._sessionmaker, steps)

    async def _run_members(
        self,
        members: list[ChunkMember],
        requests: dict[str, StepRequest],
        attempts: dict[str, Attempt],
    ) -> None:
        limit = asyncio.Semaphore(self._request.concurrency)
        beat = asyncio.create_task(self._beat())
        runs = [
            asyncio.create_task(
                self._member(
                    requests[member.target.name], member, attempts[member.target.name], limit
                )
            )
            for member in members
        ]
        try:
            await asyncio.gather(*runs)
        except asyncio.CancelledError:
            # A cancelled run or a worker's shutdown: every attempt still running is stopped
            # (a command's remote session killed, a request closed) before the chunk answers.
            for run in runs:
                run.cancel()
            await asyncio.gather(*runs, return_exceptions=True)
            raise
        finally:
            # The finished members' records are written before the chunk answers, also when a
            # shutdown cuts it (the workflow keeps what the worker wrote).
            self._closing.set()
            if self.run_log is not None:
                self.run_log.finish_soon()
            await asyncio.shield(beat)
            await self._store()

    def cut(self, members: list[ChunkMember]) -> None:
        """The members a worker's shutdown stopped: the workflow runs them again."""
        for member in members:
            name = member.target.name
            if name not in self.finished:
                attempt = self._started.get(name, member.first_attempt)
                message = f"attempt {attempt} was stopped: its worker shut down"
                self.finished[name] = MemberResult(
                    target=name, result=StepResult(attempt=attempt, error=message), cut=True
                )

    async def _member(
        self,
        request: StepRequest,
        member: ChunkMember,
        run_attempt: Attempt,
        limit: asyncio.Semaphore,
    ) -> None:
        """The member's attempts, as Temporal would retry its single-target activity."""
        timeout = self._request.timeout_seconds
        async with limit:
            for tried in range(member.attempts):
                attempt = member.first_attempt + tried
                self._started[member.target.name] = attempt
                member_attempt.set(attempt)
                try:
                    # In the member's own task: `wait_for` would start one more per attempt.
                    async with asyncio.timeout(timeout):
                        result = await run_attempt()
                except ApplicationError as error:
                    if error.non_retryable or tried == member.attempts - 1:
                        self._end(request, member, error)
                        return
                except TimeoutError:
                    if tried == member.attempts - 1:
                        message = "timed out (start_to_close)"  # as Temporal names a step timeout
                        self._ended.append((request, StepResult(attempt=attempt), message))
                        return
                except Exception as error:  # any other error fails the attempt, not the chunk
                    message = self._mask.apply(f"{type(error).__name__}: {error}")
                    if tried == member.attempts - 1:
                        self._ended.append((request, StepResult(attempt=attempt), message))
                        return
                else:
                    self._ended.append((request, result, None))
                    return
                await asyncio.sleep(self._request.retry.delay(tried + 1))

    def _end(self, request: StepRequest, member: ChunkMember, error: ApplicationError) -> None:
        last = failure_result(error) or StepResult(attempt=member.first_attempt)
        self._ended.append((request, last, error.message))

    async def _beat(self) -> None:
        """Every second, the records of the members that ended since are written and the chunk
        heartbeats the members whose records are. The write runs beside the heartbeats, not
        before them: a slow database must not hold back the heartbeat that tells Temporal the
        chunk is alive (`CHUNK_HEARTBEAT_TIMEOUT`, 10 s)."""
        storing: asyncio.Task[None] | None = None
        while not self._closing.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), BEAT_SECONDS)
            if storing is None or storing.done():
                if storing is not None:
                    storing.result()  # an error other than the database's ends the chunk
                storing = asyncio.create_task(self._store())
            activity.heartbeat(self._progress())
        if storing is not None:
            await storing

    async def _store(self) -> None:
        """Writes the records of the members that ended since the last call (one statement
        for those that succeeded, one for those that failed) and counts them finished."""
        if self._marking is not None:
            await asyncio.shield(self._marking)
        ended, self._ended = self._ended, []
        for succeeded in (True, False):
            rows = [
                (request, result)
                for request, result, error in ended
                if succeeded == (error is None)
            ]
            if not rows:
                continue
            try:
                await store_steps_output(self._sessionmaker, rows, succeeded)
                stored = True
            except (OSError, SQLAlchemyError):
                # The database is away: the output goes back with the results instead.
                logger.warning(
                    "chunk output not stored; returned with the results",
                    extra={"run_id": str(self._request.run_id), "step_id": self._request.step_id},
                )
                stored = False
            for request, result, error in ended:
                if succeeded != (error is None):
                    continue
                assert request.target is not None
                member = MemberResult(
                    target=request.target.name,
                    result=for_history(request, result, stored, succeeded),
                    error=error,
                )
                self.finished[member.target] = member
                self._encoded[member.target] = member.model_dump_json().encode()

    def _progress(self) -> RawValue:
        """The heartbeat details: a `ChunkProgress` as JSON, joined from each finished member's
        JSON, encoded as it finished."""
        finished: list[bytes] = []
        kept: set[str] = set()
        size = 0
        for name, encoded in self._encoded.items():
            size += len(encoded)
            if size > MAX_PROGRESS_BYTES:
                break
            finished.append(encoded)
            kept.add(name)
        started = {name: n for name, n in self._started.items() if name not in kept}
        data = b'{"finished":[%b],"started":%b}' % (
            b",".join(finished),
            json.dumps(started).encode(),
        )
        return RawValue(Payload(metadata=_JSON_PLAIN, data=data))


async def run_chunk(
    request: ChunkRequest, start: Callable[[dict[str, MemberResult]], StepChunk]
) -> ChunkResult:
    """A chunk activity's body: resumes from an earlier try's heartbeat, runs the members that
    try did not finish (`start` makes this try from the finished ones), and answers every
    member's result."""
    progress = _resumed()
    chunk = start({member.target: member for member in progress.finished})
    members = [
        _remaining(member, progress.started.get(member.target.name))
        for member in request.members
        if member.target.name not in chunk.finished
    ]
    if members:
        try:
            await chunk.run(members)
        except asyncio.CancelledError:
            if not cut_by_shutdown():
                raise  # the run was cancelled: the chunk is
            chunk.cut(members)
    return ChunkResult(members=[chunk.finished[member.target.name] for member in request.members])
