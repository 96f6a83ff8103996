"""`ssh.command` over a chunk of targets as one activity (docs/engine.md, "Scale: chunked
steps"): what a target batch sends for the targets that reach an `ssh.command` step together.

Each target runs as the single-target activity runs it (activities/ssh.py: its `with` block
rendered against its own context, its own connection, its command in its own remote session,
killed on cancel), with the step's retry policy and timeout applied here, per target. What the
single-target path does per target, a chunk does once: the vault read of each distinct
credential (logged with one access row per target it serves, in one insert) and its key
parsing, the pinned host keys (one query), the steps' `running` records (one statement), their
final records (one statement per flush for the targets finished since the last one, about
every second), and the run log (one insert per flush for every target).

A target's failure never fails the chunk: it is that target's result. The chunk heartbeats
every second with the targets finished so far (their records written) as details, so a retry
after its worker was lost runs only the others. A worker's shutdown stops the commands still
running (as a cancel does) and answers the finished targets' results, the others marked `cut`:
the workflow runs those again in a later chunk, as it does a single-target step.
"""

import asyncio
import logging
import uuid
from contextlib import suppress

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from opsconductor.activities.run_log import RunLogWriter
from opsconductor.activities.run_records import mark_steps_running, store_steps_output
from opsconductor.activities.ssh import SshActions, connect_timeout
from opsconductor.activities.ssh_connect import (
    Endpoint,
    Prefetched,
    gone_from_inventory,
    login_options,
)
from opsconductor.activities.step_credentials import StepCredentials
from opsconductor.activities.step_output import failure_result, for_history
from opsconductor.activities.steps import SecretMask, member_attempt, rejected
from opsconductor.contracts import implements
from opsconductor.contracts.steps import (
    ChunkMember,
    ChunkProgress,
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
from opsconductor.worker.shutdown import cut_by_shutdown

logger = logging.getLogger(__name__)

# How often finished targets' records are written and the chunk heartbeats its progress. The
# SDK sends a heartbeat at most every 80 % of the heartbeat timeout (8 s), with the latest
# details: what a retry after a lost worker resumes from is at most ~9 s old.
BEAT_SECONDS = 1.0
# Heartbeat details carry finished targets' results up to this size (a step whose output a
# later step reads returns it); beyond it, a target is run again after a lost worker.
MAX_PROGRESS_CHARACTERS = 1_000_000


def _resumed(request: ChunkRequest) -> ChunkProgress:
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


class SshChunks:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], keyring: KeyRing):
        self._sessionmaker = sessionmaker
        self._credentials = StepCredentials(sessionmaker, keyring)
        self._ssh = SshActions(sessionmaker, keyring)

    @implements(ssh_command_chunk)
    async def run_chunk(self, request: ChunkRequest) -> ChunkResult:
        progress = _resumed(request)
        chunk = _Chunk(self, request, {member.target: member for member in progress.finished})
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
        return ChunkResult(
            members=[chunk.finished[member.target.name] for member in request.members]
        )


class _Chunk:
    """One try of a chunk activity."""

    def __init__(
        self, owner: SshChunks, request: ChunkRequest, finished: dict[str, MemberResult]
    ) -> None:
        self._owner = owner
        self._request = request
        self.finished = finished
        self._started: dict[str, int] = {}
        # Ended, their records not yet written: (request, result, error).
        self._ended: list[tuple[StepRequest, StepResult, str | None]] = []
        self._mask = SecretMask()
        self._options: dict[int, dict[str, object] | CredentialUnavailable] = {}
        self._closing = asyncio.Event()

    async def run(self, members: list[ChunkMember]) -> None:
        # At once, before the vault and host-key reads, not after the first beat: the first
        # heartbeat is due within the heartbeat timeout (10 s) of the start, and a worker lost
        # a moment after the chunk started must leave the attempts it started on record, so
        # the retry does not count them.
        self._started = {member.target.name: member.first_attempt for member in members}
        activity.heartbeat(self._progress())
        requests = {
            member.target.name: self._request.step_request(member, first_attempt=1)
            for member in members
        }
        try:
            secrets, logins = await self._owner._credentials.reveal_for_targets(
                requests[members[0].target.name],
                [member.target for member in members],
                self._mask,
            )
        except ApplicationError as refused:  # a `secret()` no target can read
            for member in members:
                self._end(requests[member.target.name], member, refused)
            await self._store()
            return
        async with unit_of_work(self._owner._sessionmaker) as session:
            pins = await host_keys.pinned_host_keys(
                session, [member.target.id for member in members]
            )
        with suppress(OSError, SQLAlchemyError):  # only what a reader sees meanwhile
            await mark_steps_running(
                self._owner._sessionmaker,
                [(requests[member.target.name], member.first_attempt) for member in members],
            )
        limit = asyncio.Semaphore(self._request.concurrency)
        async with RunLogWriter(self._owner._sessionmaker, self._request.run_id) as writer:
            beat = asyncio.create_task(self._beat())
            runs = {
                member.target.name: asyncio.create_task(
                    self._member(
                        requests[member.target.name],
                        member,
                        _Login(secrets, logins[member.target.name], pins, writer),
                        limit,
                    )
                )
                for member in members
            }
            try:
                await asyncio.gather(*runs.values())
            except asyncio.CancelledError:
                # A cancelled run or a worker's shutdown: every command still running is
                # stopped (its remote session killed) before the chunk answers.
                for run in runs.values():
                    run.cancel()
                await asyncio.gather(*runs.values(), return_exceptions=True)
                raise
            finally:
                # The finished members' records are written before the chunk answers, also
                # when a shutdown cuts it (the workflow keeps what the worker wrote).
                self._closing.set()
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
        self, request: StepRequest, member: ChunkMember, login: "_Login", limit: asyncio.Semaphore
    ) -> None:
        """The member's attempts, as Temporal would retry its single-target activity."""
        timeout = self._request.timeout_seconds
        async with limit:
            for tried in range(member.attempts):
                attempt = member.first_attempt + tried
                self._started[member.target.name] = attempt
                member_attempt.set(attempt)
                try:
                    result = await asyncio.wait_for(self._attempt(request, login), timeout)
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

    def _login_options(self, credential: Revealed) -> dict[str, object]:
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
                await store_steps_output(self._owner._sessionmaker, rows, succeeded)
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
                self.finished[request.target.name] = MemberResult(
                    target=request.target.name,
                    result=for_history(request, result, stored, succeeded),
                    error=error,
                )

    def _progress(self) -> ChunkProgress:
        finished: list[MemberResult] = []
        size = 0
        for member in self.finished.values():
            size += len(member.result.stdout) + len(member.result.stderr) + 200
            if size > MAX_PROGRESS_CHARACTERS:
                break
            finished.append(member)
        kept = {member.target for member in finished}
        return ChunkProgress(
            finished=finished,
            started={name: n for name, n in self._started.items() if name not in kept},
        )


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
