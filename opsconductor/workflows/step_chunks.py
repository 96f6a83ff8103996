"""Chunked steps: the targets of a batch that reach the same step together run it as one
activity (docs/engine.md, "Scale: chunked steps").

Each target still walks its own DAG (workflows/target_batch.py); when it reaches a step whose
action is chunked, it hands its request to the step's collector here instead of scheduling an
activity of its own, and waits for its own result. The collector flushes once every coroutine
of the current workflow activation has run (`workflow.wait_condition(lambda: True)` resolves
only then: the SDK checks conditions after its ready queue is empty), so every target that
arrives at the step in the same activation (the whole batch at its first step; the targets of
one chunk at the next) is in the same flush, in the order they arrived: deterministic.

Workflow code: no I/O, no clock, no randomness.
"""

import asyncio
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError

with workflow.unsafe.imports_passed_through():
    from opsconductor.contracts.queues import TaskQueue
    from opsconductor.contracts.steps import (
        MAX_STEP_INPUT,
        ChunkMember,
        ChunkRequest,
        ChunkResult,
        ChunkRetry,
        MemberResult,
        StepRequest,
        StepResult,
        http_request_chunk,
        ssh_command_chunk,
    )
    from opsconductor.jobspec.document import Step
    from opsconductor.workflows.patches import CHUNK_INPUT_SIZE, patched

# A chunk activity retried by Temporal is one whose worker was lost (it never raises for a
# target's failure): it resumes from its heartbeat, so a few tries cover a deploy rolled twice.
CHUNK_ATTEMPTS = 4
# The SDK sends heartbeats at most every 80 % of this (8 s): a chunk's progress reaches
# Temporal that often, so a retry after a lost worker runs again at most the targets that
# finished in the last ~9 s, and a cancel reaches the chunk within ~8 s. The chunk heartbeats
# every second and never waits on the database to do so (activities/ssh_chunks.py).
CHUNK_HEARTBEAT_TIMEOUT = timedelta(seconds=10)
# Room on top of the members' own bounds for connecting, records and the run log.
CHUNK_SLACK = timedelta(minutes=1)
# Each chunked action's chunk activity and the queue its workers poll.
CHUNK_ACTIVITIES = {
    "ssh.command": (ssh_command_chunk, TaskQueue.ssh),
    "http.request": (http_request_chunk, TaskQueue.http),
}


@dataclass
class _Waiter:
    request: StepRequest
    # The length of the request's JSON: what the target adds to a chunk's input, at most (the
    # chunk carries the shared part once).
    size: int
    attempts: int
    future: asyncio.Future[MemberResult]
    chunk: asyncio.Task[None] | None = field(default=None)


def chunk_timeout(step: Step, step_timeout: timedelta, members: int, concurrency: int) -> timedelta:
    """How long a chunk may take: every member's every attempt at its full timeout, with the
    waits between them, in as many waves as the concurrency needs."""
    retry = step.retry
    waits = sum(
        (
            (
                min(retry.interval * retry.backoff**n, retry.max_interval)
                if retry.max_interval
                else retry.interval * retry.backoff**n
            )
            for n in range(retry.attempts - 1)
        ),
        timedelta(),
    )
    member = step_timeout * retry.attempts + waits
    return member * math.ceil(members / concurrency) + CHUNK_SLACK


def targets_shown(members: list[ChunkMember]) -> str:
    """A chunk's targets as the Temporal UI shows them: the one, or the first and last."""
    names = [member.target.name for member in members]
    if len(names) == 1:
        return names[0]
    return f"{names[0]} … {names[-1]} ({len(names)})"


class StepChunks:
    """Collects the requests of targets that reach a chunked step together and runs them as
    chunk activities of at most `size` targets each."""

    def __init__(self, size: int, concurrency: int) -> None:
        self._size = size
        self._concurrency = concurrency
        self._waiting: dict[str, list[_Waiter]] = {}
        # The flushes under way (asyncio keeps only weak references to tasks).
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(
        self, step: Step, request: StepRequest, attempts: int, step_timeout: timedelta, size: int
    ) -> MemberResult:
        """The target's result of the step, once its chunk ended; `size`: the length of the
        request's JSON. A cancelled run cancels the chunk (and so every command in it)."""
        waiter = _Waiter(request, size, attempts, asyncio.get_running_loop().create_future())
        pending = self._waiting.setdefault(step.id, [])
        pending.append(waiter)
        if len(pending) == 1:
            flush = asyncio.create_task(self._flush(step, step_timeout))
            self._tasks.add(flush)
            flush.add_done_callback(self._tasks.discard)
        try:
            return await waiter.future
        except asyncio.CancelledError:
            if waiter.chunk is not None:
                waiter.chunk.cancel()
            raise

    async def _flush(self, step: Step, step_timeout: timedelta) -> None:
        await workflow.wait_condition(lambda: True)
        for members in self._split(self._waiting.pop(step.id)):
            task = asyncio.create_task(self._chunk(step, members, step_timeout))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            for waiter in members:
                waiter.chunk = task

    def _split(self, waiters: list[_Waiter]) -> Iterator[list[_Waiter]]:
        """The chunks, in arrival order: at most `size` targets each, and targets whose
        requests together stay under MAX_STEP_INPUT (so under Temporal's payload limit however
        large their contexts; a target alone over it never gets here)."""
        chunk: list[_Waiter] = []
        total = 0
        for waiter in waiters:
            full = len(chunk) == self._size
            if chunk and (
                full or (total + waiter.size > MAX_STEP_INPUT and patched(CHUNK_INPUT_SIZE))
            ):
                yield chunk
                chunk, total = [], 0
            chunk.append(waiter)
            total += waiter.size
        if chunk:
            yield chunk

    async def _chunk(self, step: Step, waiters: list[_Waiter], step_timeout: timedelta) -> None:
        waiters = [waiter for waiter in waiters if not waiter.future.done()]
        if not waiters:
            return
        shared = waiters[0].request
        request = ChunkRequest(
            run_id=shared.run_id,
            step_id=shared.step_id,
            action=shared.action,
            with_=shared.with_,
            credential=shared.credential,
            return_output=shared.return_output,
            retry=ChunkRetry(
                interval_seconds=step.retry.interval.total_seconds(),
                backoff=step.retry.backoff,
                max_interval_seconds=(
                    step.retry.max_interval.total_seconds() if step.retry.max_interval else None
                ),
            ),
            timeout_seconds=step_timeout.total_seconds(),
            concurrency=self._concurrency,
            members=[
                ChunkMember(
                    target=waiter.request.target,
                    context=waiter.request.context,
                    first_attempt=waiter.request.first_attempt,
                    attempts=waiter.attempts,
                )
                for waiter in waiters
                if waiter.request.target is not None
            ],
        )
        chunk_activity, queue = CHUNK_ACTIVITIES[step.action]
        try:
            result: ChunkResult = await workflow.execute_activity(
                chunk_activity,
                request,
                task_queue=queue.value,
                start_to_close_timeout=chunk_timeout(
                    step, step_timeout, len(waiters), self._concurrency
                ),
                heartbeat_timeout=CHUNK_HEARTBEAT_TIMEOUT,
                # What the Temporal UI shows for the activity: its targets, as for a target's
                # own activity (`web-1 · usage · ssh.command`) or a batch
                # (`web-1 … web-99 (99) · usage · ssh.command`).
                summary=f"{targets_shown(request.members)} · {step.id} · {step.action}",
                retry_policy=RetryPolicy(maximum_attempts=CHUNK_ATTEMPTS),
            )
        except asyncio.CancelledError:
            for waiter in waiters:
                waiter.future.cancel()
            raise
        except ActivityError as error:
            if isinstance(error.cause, CancelledError):
                for waiter in waiters:
                    waiter.future.cancel()
                return
            # Every try of the chunk failed (its worker lost each time): each member fails.
            message = f"its chunk failed: {error.cause or error}"
            for waiter in waiters:
                if not waiter.future.done():
                    waiter.future.set_result(
                        MemberResult(
                            target=waiter.request.target.name if waiter.request.target else "",
                            result=StepResult(attempt=waiter.request.first_attempt),
                            error=message,
                        )
                    )
            return
        by_target = {member.target: member for member in result.members}
        for waiter in waiters:
            assert waiter.request.target is not None
            if not waiter.future.done():
                waiter.future.set_result(by_target[waiter.request.target.name])
