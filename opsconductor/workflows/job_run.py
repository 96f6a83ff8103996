"""The job-run workflow: interprets a compiled plan, step by step, target by target.

Deterministic by construction: templates are rendered with a sandboxed Jinja environment (pure
computation), time comes from `workflow.now()`, and everything that touches the world (remote
commands, HTTP, the database) is an activity. Run records are written through a local activity
so the API can show progress without reading workflow history.
"""

import asyncio
from collections.abc import Sequence
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.exceptions import TimeoutError as ActivityTimeoutError

with workflow.unsafe.imports_passed_through():
    from opsconductor.activities.run_records import RunRecorder, RunStatusRecord, StepRecord
    from opsconductor.jobspec.actions import CORE_ACTIONS
    from opsconductor.jobspec.context import base_context, run_once_context, target_context
    from opsconductor.jobspec.document import JobDocument, Order, Step
    from opsconductor.jobspec.durations import parse_duration
    from opsconductor.jobspec.plan import Segment, SegmentKind
    from opsconductor.jobspec.runtime import (
        RunRequest,
        RunStatus,
        RunSummary,
        SkipReason,
        StepOutcome,
        StepRequest,
        StepResult,
        StepStatus,
        TargetSnapshot,
    )
    from opsconductor.jobspec.templates import TemplateProblem, render, render_condition
    from opsconductor.workflows.approvals import ApprovalDecision, ApprovalGate
    from opsconductor.workflows.notifications import Announcer

DEFAULT_STEP_TIMEOUT = timedelta(minutes=10)
# Remote commands heartbeat while they run; a worker that dies is noticed this quickly and the
# step is retried elsewhere (within its retry policy).
STEP_HEARTBEAT_TIMEOUT = timedelta(seconds=30)
RECORD_TIMEOUT = timedelta(seconds=30)
# Errors raised by step activities that no retry can fix (bad template, missing credential).
NOT_RETRYABLE = ["StepRejected"]


def _render(text: str, context: dict[str, object]) -> str:
    # Jinja takes a lock to create its caches; the sandbox refuses that although rendering is
    # pure computation over the given context, so it runs unrestricted.
    with workflow.unsafe.sandbox_unrestricted():
        return render(text, context)


def _condition(text: str, context: dict[str, object]) -> bool:
    with workflow.unsafe.sandbox_unrestricted():
        return render_condition(text, context)


@workflow.defn(name="job-run")
class JobRunWorkflow:
    def __init__(self) -> None:
        self._per_target: dict[str, dict[str, StepOutcome]] = {}
        self._run_once: dict[str, StepOutcome] = {}
        self._started_targets: set[str] = set()
        self._status = RunStatus.queued
        self._approvals = ApprovalGate()
        self._notices = Announcer()

    @workflow.query(name="progress")
    def progress(self) -> dict[str, object]:
        outcomes = [*self._run_once.values()]
        for steps in self._per_target.values():
            outcomes.extend(steps.values())
        counts: dict[str, int] = {}
        for outcome in outcomes:
            counts[outcome.status.value] = counts.get(outcome.status.value, 0) + 1
        return {
            "status": self._status.value,
            "steps": counts,
            "failed_targets": self._failed_targets(),
            "waiting_approval": self._approvals.pending(),
        }

    @workflow.update(name="decide-approval")
    async def decide_approval(self, decision: ApprovalDecision) -> str:
        return self._approvals.decide(decision)

    @decide_approval.validator
    def _validate_decision(self, decision: ApprovalDecision) -> None:
        self._approvals.check(decision)

    @workflow.run
    async def run(self, request: RunRequest) -> RunSummary:
        self._request = request
        self._document: JobDocument = request.plan.document
        self._started_at = workflow.now()
        self._per_target = {target.name: {} for target in request.targets}
        await self._set_status(RunStatus.running)
        self._notices.started(request, self._base())
        reason: str | None = None
        try:
            body = self._execute_plan()
            timeout = self._document.timeout
            await (asyncio.wait_for(body, timeout.total_seconds()) if timeout else body)
        except TimeoutError:
            reason = f"the run exceeded its timeout of {self._document.timeout}"
            await self._abort_remaining(reason)
            return await self._finish(RunStatus.failed, reason)
        except (asyncio.CancelledError, CancelledError):
            await self._abort_remaining("the run was cancelled", cancelled=True)
            await self._finish(RunStatus.cancelled, "the run was cancelled")
            raise
        except TemplateProblem as error:
            reason = str(error)
            await self._abort_remaining(reason)
            return await self._finish(RunStatus.failed, reason)
        return await self._finish(self._final_status(), None)

    # -- the plan -------------------------------------------------------------------------

    async def _execute_plan(self) -> None:
        concurrency = self._concurrency()
        for segment in self._request.plan.segments:
            if segment.kind is SegmentKind.run_once:
                await self._run_once_segment(segment)
            elif self._document.strategy.order is Order.per_step:
                await self._per_step_segment(segment, concurrency)
            else:
                await self._per_target_segment(segment, concurrency)

    def _concurrency(self) -> int:
        value = self._document.strategy.concurrency
        rendered = _render(str(value), base_context(self._request, self._started_at, [], []))
        try:
            return max(1, int(rendered))
        except ValueError as error:
            raise TemplateProblem(
                f"strategy.concurrency rendered {rendered!r}, not a number"
            ) from error

    async def _per_target_segment(self, segment: Segment, concurrency: int) -> None:
        limit = asyncio.Semaphore(concurrency)

        async def one_target(target: TargetSnapshot) -> None:
            async with limit:
                if not await self._may_start(target, segment.step_ids):
                    return
                await self._run_dag(segment.step_ids, target)

        await asyncio.gather(*(one_target(target) for target in self._request.targets))

    async def _per_step_segment(self, segment: Segment, concurrency: int) -> None:
        limit = asyncio.Semaphore(concurrency)
        for step_id in segment.step_ids:
            step = self._document.step(step_id)

            async def one_target(target: TargetSnapshot, step: Step = step) -> None:
                async with limit:
                    if await self._may_start(target, [step.id]):
                        await self._run_step_on_target(step, target)

            await asyncio.gather(*(one_target(target) for target in self._request.targets))

    async def _run_once_segment(self, segment: Segment) -> None:
        await self._run_dag(segment.step_ids, None)

    async def _run_dag(self, step_ids: Sequence[str], target: TargetSnapshot | None) -> None:
        """Runs steps as their needs finish; steps with no path between them run side by side."""
        tasks: dict[str, asyncio.Task[None]] = {}

        async def run_when_ready(step: Step) -> None:
            await asyncio.gather(*(tasks[need] for need in step.needs if need in tasks))
            if target is None:
                await self._run_step_once(step)
            else:
                await self._run_step_on_target(step, target)

        for step_id in step_ids:  # topological order: a step's needs already have tasks
            tasks[step_id] = asyncio.create_task(run_when_ready(self._document.step(step_id)))
        await asyncio.gather(*tasks.values())

    async def _may_start(self, target: TargetSnapshot, step_ids: Sequence[str]) -> bool:
        """Whether a target takes part in this segment; if not, its steps are recorded skipped."""
        if target.name in self._failed_targets():
            # A target that failed earlier is out of the run: its remaining steps depend on
            # work that did not happen.
            reason = SkipReason.upstream_failed
        elif target.name not in self._started_targets and self._too_many_failed():
            reason = SkipReason.run_aborted
        else:
            self._started_targets.add(target.name)
            return True
        for step_id in step_ids:
            if step_id not in self._per_target[target.name]:
                await self._store(self._skipped(step_id, target.name, reason), target)
        return False

    # -- one step -----------------------------------------------------------------------------

    async def _run_step_on_target(self, step: Step, target: TargetSnapshot) -> None:
        own = self._per_target[target.name]
        needs = [own.get(need) or self._run_once.get(need) for need in step.needs]
        context = target_context(self._base(), target, own.values(), self._run_once.values())
        outcome = await self._decide_and_run(step, target, needs, context)
        await self._store(outcome, target)

    async def _run_step_once(self, step: Step) -> None:
        needs: list[StepOutcome | None] = []
        for need in step.needs:
            if need in self._run_once:
                needs.append(self._run_once[need])
            else:
                # A per-target need counts as failed when it failed on any target.
                results = [steps[need] for steps in self._per_target.values() if need in steps]
                failed = next((result for result in results if result.blocks_dependants), None)
                needs.append(failed or (results[0] if results else None))
        per_target = {name: list(steps.values()) for name, steps in self._per_target.items()}
        context = run_once_context(self._base(), per_target, self._run_once.values())
        outcome = await self._decide_and_run(step, None, needs, context)
        await self._store(outcome, None)

    async def _decide_and_run(
        self,
        step: Step,
        target: TargetSnapshot | None,
        needs: Sequence[StepOutcome | None],
        context: dict[str, object],
    ) -> StepOutcome:
        target_name = target.name if target else None
        if step.when is None:
            if any(need is not None and need.blocks_dependants for need in needs):
                return self._skipped(step.id, target_name, SkipReason.upstream_failed)
        else:
            try:
                if not _condition(step.when, context):
                    return self._skipped(step.id, target_name, SkipReason.condition)
            except TemplateProblem as error:
                return self._failed(step, target_name, f"when: {error}")
        await self._store(
            StepOutcome(
                step_id=step.id,
                target=target_name,
                status=StepStatus.running,
                started_at=workflow.now(),
            ),
            target,
        )
        return await self._execute(step, target, context)

    async def _execute(
        self, step: Step, target: TargetSnapshot | None, context: dict[str, object]
    ) -> StepOutcome:
        started = workflow.now()
        target_name = target.name if target else None
        if step.action == "control.sleep":
            return await self._sleep(step, target_name, context)
        if step.action == "control.approval":
            return await self._approval(step, target_name, context)
        spec = CORE_ACTIONS[step.action]
        assert spec.queue is not None
        try:
            result = await workflow.execute_activity(
                f"{spec.queue.value}-step",
                StepRequest(
                    run_id=self._request.run_id,
                    step_id=step.id,
                    action=step.action,
                    with_=step.with_,
                    context=context,
                    target=target,
                    credential=step.credential,
                ),
                task_queue=spec.queue.value,
                result_type=StepResult,
                start_to_close_timeout=step.timeout or DEFAULT_STEP_TIMEOUT,
                heartbeat_timeout=STEP_HEARTBEAT_TIMEOUT,
                retry_policy=RetryPolicy(
                    maximum_attempts=step.retry.attempts,
                    initial_interval=step.retry.interval,
                    backoff_coefficient=step.retry.backoff,
                    maximum_interval=step.retry.max_interval,
                    non_retryable_error_types=NOT_RETRYABLE,
                ),
            )
        except ActivityError as error:
            return self._activity_failure(step, target_name, error)
        return StepOutcome(
            step_id=step.id,
            target=target_name,
            status=StepStatus.succeeded,
            exit_code=result.exit_code,
            stdout=result.stdout,
            stderr=result.stderr,
            outputs=result.outputs,
            attempts=result.attempt,
            started_at=started,
            finished_at=workflow.now(),
        )

    def _activity_failure(
        self, step: Step, target_name: str | None, error: ActivityError
    ) -> StepOutcome:
        cause = error.cause
        last = StepResult()
        if isinstance(cause, ApplicationError) and cause.details:
            last = StepResult.model_validate(cause.details[0])
            message = cause.message
        elif isinstance(cause, ActivityTimeoutError):
            message = f"timed out ({cause.type.name.lower() if cause.type else 'timeout'})"
            last.attempt = step.retry.attempts
        else:
            message = str(cause or error)
        outcome = self._failed(step, target_name, message)
        outcome.exit_code = last.exit_code
        outcome.stdout = last.stdout
        outcome.stderr = last.stderr
        outcome.attempts = last.attempt
        return outcome

    async def _sleep(
        self, step: Step, target_name: str | None, context: dict[str, object]
    ) -> StepOutcome:
        try:
            duration = parse_duration(_render(str(step.with_["duration"]), context))
        except (TemplateProblem, ValueError) as error:
            return self._failed(step, target_name, f"with.duration: {error}")
        await workflow.sleep(duration)
        return self._succeeded(step, target_name, {})

    async def _approval(
        self, step: Step, target_name: str | None, context: dict[str, object]
    ) -> StepOutcome:
        try:
            message = _render(str(step.with_["message"]), context)
            timeout = parse_duration(_render(str(step.with_.get("timeout", "24h")), context))
        except (TemplateProblem, ValueError) as error:
            return self._failed(step, target_name, str(error))
        approvers = [str(item) for item in step.with_.get("approvers", ["operator"])]
        self._approvals.open(step.id, message, approvers)
        await self._set_status(RunStatus.waiting_approval)
        self._notices.waiting_approval(self._request, context, step.id, message)
        try:
            await workflow.wait_condition(lambda: self._approvals.decided(step.id), timeout=timeout)
        except TimeoutError:
            self._approvals.expire(step.id)
        decision = self._approvals.close(step.id)
        await self._set_status(RunStatus.running)
        outputs = decision.outputs()
        if decision.approved:
            return self._succeeded(step, target_name, outputs)
        outcome = self._failed(step, target_name, decision.summary())
        outcome.outputs = outputs
        return outcome

    # -- outcomes and records -----------------------------------------------------------------

    def _base(self) -> dict[str, object]:
        failed = self._failed_targets()
        succeeded = [
            name
            for name, steps in self._per_target.items()
            if steps and name not in failed and name in self._started_targets
        ]
        return base_context(self._request, self._started_at, succeeded, failed)

    def _skipped(self, step_id: str, target: str | None, reason: SkipReason) -> StepOutcome:
        now = workflow.now()
        return StepOutcome(
            step_id=step_id,
            target=target,
            status=StepStatus.skipped,
            reason=reason.value,
            started_at=now,
            finished_at=now,
        )

    def _failed(self, step: Step, target: str | None, reason: str) -> StepOutcome:
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

    def _succeeded(self, step: Step, target: str | None, outputs: dict[str, object]) -> StepOutcome:
        return StepOutcome(
            step_id=step.id,
            target=target,
            status=StepStatus.succeeded,
            outputs=outputs,
            attempts=1,
            started_at=workflow.now(),
            finished_at=workflow.now(),
        )

    async def _store(self, outcome: StepOutcome, target: TargetSnapshot | None) -> None:
        book = self._run_once if target is None else self._per_target[target.name]
        previous = book.get(outcome.step_id)
        if previous is not None and previous.status is StepStatus.running:
            outcome.started_at = previous.started_at
        book[outcome.step_id] = outcome
        await workflow.execute_local_activity_method(
            RunRecorder.record_step,
            StepRecord(run_id=self._request.run_id, outcome=outcome),
            start_to_close_timeout=RECORD_TIMEOUT,
        )

    async def _abort_remaining(self, reason: str, *, cancelled: bool = False) -> None:
        """Gives every step without a final state one, so the run record is complete: steps
        that were running are cancelled; steps that never started are skipped (or cancelled
        when the whole run was)."""
        pending: list[tuple[str, TargetSnapshot | None, StepOutcome | None]] = []
        for step in self._document.steps:
            owners: list[TargetSnapshot | None] = (
                [None] if step.run_once else list(self._request.targets)
            )
            for target in owners:
                current = (
                    self._run_once.get(step.id)
                    if target is None
                    else self._per_target[target.name].get(step.id)
                )
                if current is None or current.status is StepStatus.running:
                    pending.append((step.id, target, current))
        for step_id, target, current in pending:
            now = workflow.now()
            was_running = current is not None
            await self._store(
                StepOutcome(
                    step_id=step_id,
                    target=target.name if target else None,
                    status=StepStatus.cancelled if cancelled or was_running else StepStatus.skipped,
                    reason=reason if cancelled or was_running else SkipReason.run_aborted,
                    started_at=current.started_at if current else now,
                    finished_at=now,
                ),
                target,
            )

    def _failed_targets(self) -> list[str]:
        return [
            name
            for name, steps in self._per_target.items()
            if any(
                outcome.status is StepStatus.failed and not outcome.tolerated
                for outcome in steps.values()
            )
        ]

    def _failure_allowance(self) -> int | None:
        limit = self._document.strategy.max_failed_targets
        if limit is None:
            return None
        if isinstance(limit, str):
            return len(self._request.targets) * int(limit.rstrip("%")) // 100
        return limit

    def _too_many_failed(self) -> bool:
        allowance = self._failure_allowance()
        return allowance is not None and len(self._failed_targets()) > allowance

    def _final_status(self) -> RunStatus:
        if any(outcome.blocks_dependants for outcome in self._run_once.values()):
            return RunStatus.failed
        allowance = self._failure_allowance() or 0
        return RunStatus.failed if len(self._failed_targets()) > allowance else RunStatus.succeeded

    async def _set_status(self, status: RunStatus, reason: str | None = None) -> None:
        self._status = status
        await workflow.execute_local_activity_method(
            RunRecorder.record_run_status,
            RunStatusRecord(run_id=self._request.run_id, status=status, reason=reason),
            start_to_close_timeout=RECORD_TIMEOUT,
        )

    async def _finish(self, status: RunStatus, reason: str | None) -> RunSummary:
        await self._set_status(status, reason)
        await self._notices.finished(self._request, self._base(), status, reason)
        failed = self._failed_targets()
        return RunSummary(
            run_id=self._request.run_id,
            status=status,
            succeeded_targets=[
                target.name
                for target in self._request.targets
                if target.name in self._started_targets and target.name not in failed
            ],
            failed_targets=failed,
            reason=reason,
        )
