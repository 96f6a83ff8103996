"""Running one step, shared by the job-run workflow (run-once steps) and its target batches.

Workflow code: deterministic by construction. Templates are rendered with a sandboxed Jinja
environment (pure computation), time comes from `workflow.now()`, and everything that touches
the world (remote commands, HTTP, the database) is an activity.
"""

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
)
from temporalio.exceptions import TimeoutError as ActivityTimeoutError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from opsconductor.contracts.queues import TaskQueue
    from opsconductor.contracts.runs import (
        JOB_RUN_WORKFLOW,
        RunDisplay,
        RunRequest,
        RunSummary,
        SkipReason,
        StepOutcome,
        StepRecord,
        StepStatus,
        record_step,
        run_search_attributes,
        run_workflow_id,
    )
    from opsconductor.contracts.steps import (
        CHUNKED_ACTIONS,
        MAX_STEP_INPUT,
        WORKER_SHUTDOWN,
        StepRequest,
        StepResult,
        TargetSnapshot,
    )
    from opsconductor.jobspec.actions import ActionSpec
    from opsconductor.jobspec.document import JobDocument, Step
    from opsconductor.jobspec.durations import parse_duration
    from opsconductor.jobspec.plugins import known_actions
    from opsconductor.jobspec.templates import TemplateProblem, render, render_condition
    from opsconductor.workflows.patches import (
        CHUNKED_HTTP_STEPS,
        CHUNKED_STEPS,
        RERUN_ON_WORKER_SHUTDOWN,
        WORKER_RECORDS_STATE,
        patched,
    )
    from opsconductor.workflows.records import write_record
    from opsconductor.workflows.step_chunks import StepChunks

DEFAULT_STEP_TIMEOUT = timedelta(minutes=10)
# Remote commands heartbeat while they run; a worker that dies is noticed this quickly and the
# step is retried elsewhere (within its retry policy).
STEP_HEARTBEAT_TIMEOUT = timedelta(seconds=30)
# Errors raised by step activities that no retry can fix (bad template, missing credential),
# and the attempt a worker's shutdown cut off, which the workflow itself runs again.
NOT_RETRYABLE = ["StepRejected", WORKER_SHUTDOWN]
# How often one step is run again because a worker shut down under it, on top of its own
# retries: a deploy rolls each worker once, so three covers a deploy rolled back and redone;
# a step cut off more often than that fails rather than loop through a crash-looping fleet.
MAX_SHUTDOWN_RERUNS = 3

# An action the workflow performs itself: (step, target name, context) -> outcome.
InWorkflowAction = Callable[[Step, str | None, dict[str, object]], Awaitable[StepOutcome]]


def _action(name: str) -> ActionSpec:
    # Plugins are read from entry points once per process, when the worker starts and
    # registers their activities; here the cached catalog is only looked up.
    with workflow.unsafe.sandbox_unrestricted():
        return known_actions()[name]


def render_text(text: str, context: Mapping[str, object]) -> str:
    # Jinja takes a lock to create its caches; the sandbox refuses that although rendering is
    # pure computation over the given context, so it runs unrestricted.
    with workflow.unsafe.sandbox_unrestricted():
        return render(text, dict(context), deterministic=True)


def condition_holds(text: str, context: Mapping[str, object]) -> bool:
    with workflow.unsafe.sandbox_unrestricted():
        return render_condition(text, dict(context), deterministic=True)


def skipped(step_id: str, target: str | None, reason: SkipReason) -> StepOutcome:
    now = workflow.now()
    return StepOutcome(
        step_id=step_id,
        target=target,
        status=StepStatus.skipped,
        reason=reason.value,
        started_at=now,
        finished_at=now,
    )


def failed(step: Step, target: str | None, reason: str) -> StepOutcome:
    return StepOutcome(
        step_id=step.id,
        target=target,
        status=StepStatus.failed,
        reason=reason,
        tolerated=step.on_error.value == "continue",
        attempts=1,
        started_at=workflow.now(),
        finished_at=workflow.now(),
    )


def succeeded(step: Step, target: str | None, outputs: dict[str, object]) -> StepOutcome:
    return StepOutcome(
        step_id=step.id,
        target=target,
        status=StepStatus.succeeded,
        outputs=outputs,
        attempts=1,
        started_at=workflow.now(),
        finished_at=workflow.now(),
    )


async def run_dag(
    step_ids: Sequence[str], document: JobDocument, run_step: Callable[[Step], Awaitable[None]]
) -> None:
    """Runs steps as their needs finish; steps with no path between them run side by side."""
    tasks: dict[str, asyncio.Task[None]] = {}

    async def run_when_ready(step: Step) -> None:
        await asyncio.gather(*(tasks[need] for need in step.needs if need in tasks))
        await run_step(step)

    for step_id in step_ids:  # topological order: a step's needs already have tasks
        tasks[step_id] = asyncio.create_task(run_when_ready(document.step(step_id)))
    await asyncio.gather(*tasks.values())


def shutdown_cut(error: ActivityError) -> StepResult | None:
    """The attempt a worker's shutdown cut off (worker/shutdown.py), if that is the failure."""
    cause = error.cause
    if not isinstance(cause, ApplicationError) or cause.type != WORKER_SHUTDOWN:
        return None
    return activity_failure_details(error, attempts=1)[1]


def activity_failure_details(error: ActivityError, attempts: int) -> tuple[str, StepResult]:
    """Why a step activity failed, and its last attempt's result as far as the failure tells.

    Pure, and total: a plugin (or any activity) may raise ApplicationError with details of any
    shape, or none, and the answer is still a message and a result, never an exception that
    would fail the workflow task (and retry it for ever)."""
    cause = error.cause
    if isinstance(cause, ApplicationError):
        message = cause.message or cause.type or "the activity failed"
        if not cause.details:
            return message, StepResult()
        try:
            return message, StepResult.model_validate(cause.details[0])
        except Exception:  # any shape a plugin chose: the message still tells
            return message, StepResult()
    if isinstance(cause, ActivityTimeoutError):
        kind = cause.type.name.lower() if cause.type else "timeout"
        return f"timed out ({kind})", StepResult(attempt=attempts)
    return str(cause or error), StepResult()


def record_name(outcome: StepOutcome) -> str:
    """How a failure to write the step's record names it."""
    return f"the record of step {outcome.step_id}" + (
        f" on {outcome.target}" if outcome.target else ""
    )


StepWriter = Callable[[StepOutcome], Awaitable[None]]
# Called before a step whose worker records its state is scheduled: what the workflow would
# have written with the step's `running` record must be written now (the run's held-back
# status, workflows/job_run.py).
BeforeWorkerRecords = Callable[[], Awaitable[None]]


async def _nothing_to_write() -> None:
    return None


class StepExecutor:
    """Decides whether a step runs (needs, `when`), runs it, and records every state change."""

    def __init__(
        self,
        run_id: uuid.UUID,
        read_later: frozenset[str],
        in_workflow: Mapping[str, InWorkflowAction] | None = None,
        write: StepWriter | None = None,
        before_worker_records: BeforeWorkerRecords = _nothing_to_write,
        chunks: StepChunks | None = None,
    ) -> None:
        self._run_id = run_id
        # Where a target batch collects the targets that reach a chunked step together.
        self._chunks = chunks
        self._before_worker_records = before_worker_records
        # How a record is written: by default a `record_step` of its own; the run's workflow
        # folds some into its other records (workflows/job_run.py).
        self._write = write or self._record_step
        # Steps whose output returns to the workflow (workflows/context.py, `read_later`).
        self._read_later = read_later
        self._in_workflow: dict[str, InWorkflowAction] = {
            "control.sleep": self._sleep,
            **(in_workflow or {}),
        }

    async def record(self, outcome: StepOutcome) -> None:
        if outcome.state_recorded:
            return  # the step's worker wrote it with the output
        await self._write(outcome)

    async def _record_step(self, outcome: StepOutcome) -> None:
        await write_record(
            record_step, StepRecord(run_id=self._run_id, outcome=outcome), record_name(outcome)
        )

    async def run(
        self,
        step: Step,
        target: TargetSnapshot | None,
        needs: Sequence[StepOutcome | None],
        context: dict[str, object],
    ) -> StepOutcome:
        target_name = target.name if target else None
        if step.when is None:
            if any(need is not None and need.blocks_dependants for need in needs):
                return skipped(step.id, target_name, SkipReason.upstream_failed)
        else:
            try:
                if not condition_holds(step.when, context):
                    return skipped(step.id, target_name, SkipReason.condition)
            except TemplateProblem as error:
                return failed(step, target_name, f"when: {error}")
        started = workflow.now()
        by_worker = self._worker_records_state(step)
        if by_worker:
            await self._before_worker_records()
        else:
            await self.record(
                StepOutcome(
                    step_id=step.id,
                    target=target_name,
                    status=StepStatus.running,
                    started_at=started,
                )
            )
        outcome = await self._perform(step, target, context, by_worker)
        outcome.started_at = started
        return outcome

    def _worker_records_state(self, step: Step) -> bool:
        """Whether the step's activity writes its `running` and `succeeded` states: every step
        run by one activity. Actions the workflow performs, and `job.run` (whose child run the
        workflow starts after the activity), are recorded by the workflow."""
        if step.action in self._in_workflow or step.action == "job.run":
            return False
        return patched(WORKER_RECORDS_STATE)

    async def _perform(
        self,
        step: Step,
        target: TargetSnapshot | None,
        context: dict[str, object],
        worker_records_state: bool = False,
    ) -> StepOutcome:
        target_name = target.name if target else None
        action = self._in_workflow.get(step.action)
        if action is not None:
            return await action(step, target_name, context)
        request = StepRequest(
            run_id=self._run_id,
            step_id=step.id,
            action=step.action,
            with_=step.with_,
            context=context,
            target=target,
            credential=step.credential,
            # job.run's result is the child run to start: the workflow always reads it.
            return_output=step.id in self._read_later or step.action == "job.run",
            worker_records_state=worker_records_state,
        )
        size = len(request.model_dump_json())
        if size > MAX_STEP_INPUT:
            return failed(
                step,
                target_name,
                f"the step's template context is {size // 1000} kB, over the "
                f"{MAX_STEP_INPUT // 1000} kB a step may carry; reference fewer targets' "
                "results in it",
            )
        if self._chunked(step, request):
            result = await self._chunk_member(step, target_name, request, size)
        else:
            result = await self._attempts(step, target_name, request)
        if isinstance(result, StepOutcome):
            return result
        if step.action == "job.run":
            return await self._child_run_outcome(step, target_name, result)
        return StepOutcome(
            step_id=step.id,
            target=target_name,
            status=StepStatus.succeeded,
            exit_code=result.exit_code,
            stdout=result.stdout,
            stderr=result.stderr,
            outputs=result.outputs,
            text_outputs=result.text_outputs,
            output_recorded=result.output_recorded,
            state_recorded=result.state_recorded,
            attempts=result.attempt,
            finished_at=workflow.now(),
        )

    async def _attempts(
        self, step: Step, target_name: str | None, request: StepRequest
    ) -> StepResult | StepOutcome:
        """The step's activity until it ends: its result (its attempt counted across re-runs),
        or the step's failed outcome.

        An attempt cut off by a worker's shutdown does not count: the step runs again from the
        start, as a new activity (so on a live worker), with the retries it had left, at most
        MAX_SHUTDOWN_RERUNS times. A cancelled run is not a shutdown: it goes on up."""
        attempts, reruns = step.retry.attempts, 0
        while True:
            try:
                result = await self._activity(step, request, attempts)
            except ActivityError as error:
                cut = shutdown_cut(error)
                if cut is None or not patched(RERUN_ON_WORKER_SHUTDOWN):
                    return self._activity_failure(step, target_name, error, request, attempts)
                if reruns == MAX_SHUTDOWN_RERUNS:
                    outcome = self._activity_failure(step, target_name, error, request, attempts)
                    outcome.reason = f"{outcome.reason}; not run again after {reruns} such re-runs"
                    return outcome
                reruns += 1
                attempts -= min(cut.attempt, attempts) - 1
                request = request.model_copy(
                    update={"first_attempt": request.attempt(cut.attempt) + 1}
                )
                continue
            result.attempt = request.attempt(result.attempt)
            return result

    def _chunked(self, step: Step, request: StepRequest) -> bool:
        return (
            self._chunks is not None
            and step.action in CHUNKED_ACTIONS
            and request.target is not None
            and request.worker_records_state
            and (step.action != "http.request" or patched(CHUNKED_HTTP_STEPS))
            and patched(CHUNKED_STEPS)
        )

    async def _chunk_member(
        self, step: Step, target_name: str | None, request: StepRequest, size: int
    ) -> StepResult | StepOutcome:
        """`_attempts` for a target whose step runs in a chunk: the chunk applies the retry
        policy; a member a worker's shutdown cut off runs again in a later chunk, as above."""
        assert self._chunks is not None
        attempts, reruns = step.retry.attempts, 0
        step_timeout = step.timeout or DEFAULT_STEP_TIMEOUT
        while True:
            member = await self._chunks.run(step, request, attempts, step_timeout, size)
            last = member.result
            if not member.cut:
                if member.error is not None:
                    return self._failed_with(step, target_name, member.error, last, last.attempt)
                return last
            if reruns == MAX_SHUTDOWN_RERUNS:
                message = (
                    f"attempt {last.attempt} was stopped: its worker shut down before the step "
                    f"ended; not run again after {reruns} such re-runs"
                )
                return self._failed_with(step, target_name, message, last, last.attempt)
            reruns += 1
            attempts -= last.attempt - request.first_attempt
            request = request.model_copy(update={"first_attempt": last.attempt + 1})

    async def _activity(self, step: Step, request: StepRequest, attempts: int) -> StepResult:
        spec = _action(step.action)
        assert spec.queue is not None
        assert spec.activity_name is not None
        result: StepResult = await workflow.execute_activity(
            spec.activity_name,
            request,
            task_queue=spec.queue.value,
            result_type=StepResult,
            start_to_close_timeout=step.timeout or DEFAULT_STEP_TIMEOUT,
            heartbeat_timeout=STEP_HEARTBEAT_TIMEOUT,
            # What the Temporal UI shows for the activity: `web-1 · usage · ssh.command`.
            summary=f"{request.target.name if request.target else 'run once'} · {step.id} · "
            f"{step.action}",
            retry_policy=RetryPolicy(
                maximum_attempts=attempts,
                initial_interval=step.retry.interval,
                backoff_coefficient=step.retry.backoff,
                maximum_interval=step.retry.max_interval,
                non_retryable_error_types=NOT_RETRYABLE,
            ),
        )
        return result

    def _activity_failure(
        self,
        step: Step,
        target_name: str | None,
        error: ActivityError,
        request: StepRequest,
        attempts: int,
    ) -> StepOutcome:
        cause = error.cause
        if isinstance(cause, CancelledError):
            # The run is being cancelled: the step did not fail, it was stopped. Cancellation
            # goes on up so no further step starts; closing the run records this one cancelled.
            raise asyncio.CancelledError from error
        message, last = activity_failure_details(error, attempts)
        return self._failed_with(step, target_name, message, last, request.attempt(last.attempt))

    def _failed_with(
        self, step: Step, target_name: str | None, message: str, last: StepResult, attempts: int
    ) -> StepOutcome:
        """The step's failed outcome, showing its last attempt's result."""
        outcome = failed(step, target_name, message)
        outcome.exit_code = last.exit_code
        outcome.stdout = last.stdout
        outcome.stderr = last.stderr
        outcome.outputs = last.outputs
        outcome.text_outputs = last.text_outputs
        outcome.output_recorded = last.output_recorded
        outcome.attempts = attempts
        return outcome

    async def _sleep(
        self, step: Step, target_name: str | None, context: dict[str, object]
    ) -> StepOutcome:
        try:
            duration = parse_duration(render_text(str(step.with_["duration"]), context))
        except (TemplateProblem, ValueError) as error:
            return failed(step, target_name, f"with.duration: {error}")
        await workflow.sleep(duration)
        return succeeded(step, target_name, {})

    async def _child_run_outcome(
        self, step: Step, target_name: str | None, prepared: StepResult
    ) -> StepOutcome:
        """The orchestration activity stored the child run; the workflow starts it as a child
        workflow, so cancelling this run cancels the child, and waits for its end."""
        request = RunRequest.model_validate(prepared.outputs["request"])
        # Absent in histories recorded before runs carried their display.
        shown = prepared.outputs.get("display")
        display = RunDisplay.model_validate(shown) if shown else None
        try:
            summary: RunSummary = await workflow.execute_child_workflow(
                # By name: this module is part of the job-run workflow, which cannot import
                # itself here without a cycle (job_run -> step_execution -> job_run).
                JOB_RUN_WORKFLOW,
                request,
                id=run_workflow_id(request.run_id),
                task_queue=TaskQueue.orchestration.value,
                result_type=RunSummary,
                parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
                search_attributes=run_search_attributes(request),
                static_summary=display.summary if display else None,
                static_details=display.details if display else None,
            )
        except ChildWorkflowError as error:
            if isinstance(error.cause, CancelledError):
                raise asyncio.CancelledError from error  # this run is being cancelled
            return failed(step, target_name, f"child run {request.run_id}: {error.cause or error}")
        outputs: dict[str, object] = {
            "run_id": str(summary.run_id),
            "status": summary.status.value,
            "outputs": summary.outputs,
            "failed_targets": summary.failed_targets,
        }
        outcome = succeeded(step, target_name, outputs)
        if summary.status.value != "succeeded":
            outcome.status = StepStatus.failed
            outcome.reason = f"child run {summary.run_id} ended {summary.status.value}" + (
                f": {summary.reason}" if summary.reason else ""
            )
            outcome.tolerated = step.on_error.value == "continue"
        return outcome
