"""The job-run workflow: interprets a compiled plan.

Run-once steps (approvals, summaries, child runs) run here. Per-target segments run in child
workflows of at most `batch_size` targets each (workflows/target_batch.py), so the size of every
history is bounded whatever the size of the fleet. Run records are written through local
activities, so the API shows progress without reading workflow history.
"""

import asyncio
import collections
import math
from collections.abc import Sequence
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import CancelledError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from opsconductor.contracts.queues import TaskQueue
    from opsconductor.contracts.runs import (
        CONTINUE_AS_NEW_PATCH,
        DECIDE_APPROVAL_UPDATE,
        FOLD_RUN_RECORDS_PATCH,
        JOB_RUN_WORKFLOW,
        PROGRESS_QUERY,
        RUN_STATUS,
        RUN_STATUS_SEARCH_ATTRIBUTE_PATCH,
        ApprovalDecision,
        BatchRequest,
        BatchResult,
        RunClosing,
        RunProgress,
        RunRecord,
        RunRequest,
        RunStatus,
        RunStatusRecord,
        RunSummary,
        StepOutcome,
        StepRecord,
        StepStatus,
        batch_workflow_id,
        close_run_steps,
        fits_one_history,
        record_run,
        record_run_status,
        record_step,
    )
    from opsconductor.jobspec.document import JobDocument, Order, Step
    from opsconductor.jobspec.durations import format_duration, parse_duration
    from opsconductor.jobspec.plan import SegmentKind
    from opsconductor.jobspec.templates import TemplateProblem
    from opsconductor.workflows.approvals import ApprovalGate
    from opsconductor.workflows.context import (
        base_context,
        mentions,
        read_later,
        reads_output,
        run_once_context,
    )
    from opsconductor.workflows.continuation import (
        CARRY_LIMIT,
        pack_states,
        pack_targets,
        unpack_states,
        unpack_targets,
    )
    from opsconductor.workflows.notifications import Announcer
    from opsconductor.workflows.patches import bundled, one_batch_inline, open_bundle, patched
    from opsconductor.workflows.records import RecordFailed, write_record
    from opsconductor.workflows.step_execution import (
        StepExecutor,
        failed,
        record_name,
        render_text,
        run_dag,
        succeeded,
    )
    from opsconductor.workflows.target_batch import BatchRun, TargetBatchWorkflow, output_share


class BatchFailed(Exception):
    """A target batch workflow ended without a result (terminated, or failed outright)."""


class ContinueRun(Exception):
    """The run's history is full enough: it continues as new with `request`."""

    def __init__(self, request: RunRequest) -> None:
        super().__init__("the run continues as new")
        self.request = request


# Where a per-target batch group sits in the plan: (segment index, step index within the
# segment; 0 unless `order: per-step` runs each step in batches of its own).
Position = tuple[int, int]


@workflow.defn(name=JOB_RUN_WORKFLOW)
class JobRunWorkflow:
    def __init__(self) -> None:
        self._per_target: dict[str, dict[str, StepOutcome]] = {}
        self._run_once: dict[str, StepOutcome] = {}
        self._started_targets: set[str] = set()
        # The succeeded and failed targets, computed once per change of the two above: every
        # batch's context counts them, and over 100,000 targets a recount per batch made one
        # workflow task outlast the SDK's 2 s deadlock limit on a busy worker.
        self._tally: tuple[list[str], list[str]] | None = None
        self._status = RunStatus.queued
        self._approvals = ApprovalGate()
        self._notices = Announcer()
        self._batches = {"total": 0, "running": 0, "done": 0}
        self._segments_run = 0
        # Batches started in this execution, and whether it continues as new (decided once).
        self._batches_here = 0
        self._continuing: bool | None = None
        # Records held back to ride on the next write ("Run records: one write at each end",
        # docs/engine.md): the `running` status until the first record or batch, the last
        # step's outcome until the run's end, which follows it in the same workflow task.
        self._status_unwritten = False
        self._steps_unwritten: list[StepOutcome] = []

    @workflow.query(name=PROGRESS_QUERY)
    def progress(self) -> dict[str, object]:
        counts: dict[str, int] = {}
        outcomes = [*self._run_once.values()]
        for steps in self._per_target.values():
            outcomes.extend(steps.values())
        for outcome in outcomes:
            counts[outcome.status.value] = counts.get(outcome.status.value, 0) + 1
        return {
            "status": self._status.value,
            "steps": counts,
            "batches": dict(self._batches),
            "failed_targets": self._failed_targets(),
            "waiting_approval": self._approvals.pending(),
        }

    @workflow.update(name=DECIDE_APPROVAL_UPDATE)
    async def decide_approval(self, decision: ApprovalDecision) -> str:
        return self._approvals.decide(decision)

    @decide_approval.validator
    def _validate_decision(self, decision: ApprovalDecision) -> None:
        self._approvals.check(decision)

    @workflow.run
    async def run(self, request: RunRequest) -> RunSummary:
        self._request = request
        self._document: JobDocument = request.plan.document
        self._executor = StepExecutor(
            request.run_id,
            read_later(self._document),
            {"control.approval": self._approval},
            write=self._write_step,
            before_worker_records=self._write_status,
        )
        open_bundle()
        self._folds = patched(FOLD_RUN_RECORDS_PATCH)
        if request.progress is None:
            self._started_at = workflow.now()
            if self._folds:
                self._show_status(RunStatus.running)
                self._status_unwritten = True
            else:
                await self._set_status(RunStatus.running)
            self._notices.started(request, self._base())
        else:
            # A continuation: the run's record, status and start notice are already written.
            self._restore(request.progress)
        timeout = self._document.timeout
        try:
            body = self._execute_plan()
            await (asyncio.wait_for(body, self._time_left(timeout)) if timeout else body)
        except ContinueRun as continuation:
            workflow.continue_as_new(continuation.request)
        except TimeoutError:
            assert timeout is not None  # only a run with a timeout times out
            reason = f"the run exceeded its timeout of {format_duration(timeout)}"
            return await self._finish(RunStatus.failed, reason)
        except (asyncio.CancelledError, CancelledError):
            await self._finish(RunStatus.cancelled, "the run was cancelled")
            raise
        except (TemplateProblem, BatchFailed, RecordFailed) as error:
            # A record that could not be written ends the run failed with why; if the final
            # records cannot be written either, RecordFailed fails the workflow with the reason.
            return await self._finish(RunStatus.failed, str(error))
        return await self._finish(self._final_status(), None)

    # -- the plan -------------------------------------------------------------------------

    async def _execute_plan(self) -> None:
        concurrency = self._concurrency()
        progress = self._request.progress
        resume: Position = (progress.segment, progress.step) if progress else (0, 0)
        for index, segment in enumerate(self._request.plan.segments):
            if index < resume[0]:
                continue  # done before the run continued as new
            if segment.kind is SegmentKind.run_once:
                await run_dag(segment.step_ids, self._document, self._run_step_once)
            elif self._document.strategy.order is Order.per_step:
                for step_index, step_id in enumerate(segment.step_ids):
                    if (index, step_index) >= resume:
                        await self._run_batches((index, step_index), [step_id], concurrency)
            else:
                await self._run_batches((index, 0), segment.step_ids, concurrency)

    def _concurrency(self) -> int:
        value = self._document.strategy.concurrency
        rendered = render_text(str(value), self._base(target_lists=False))
        try:
            return max(1, int(rendered))
        except ValueError as error:
            raise TemplateProblem(
                f"strategy.concurrency rendered {rendered!r}, not a number"
            ) from error

    async def _run_batches(
        self, position: Position, step_ids: Sequence[str], concurrency: int
    ) -> None:
        """Runs steps on every target, batch by batch, holding `concurrency` targets at once.

        With max_failed_targets, batches run one after another so each starts knowing exactly
        how many targets have failed; otherwise enough run side by side to fill the limit.

        Once the run's history is full enough (`_continuation_due`), no further batch starts:
        the running ones finish, and the run continues as new from the first batch that did
        not start. Batches start in offset order, so those that started are always the ones
        before it. A continuation whose input would pass `CARRY_LIMIT` is not taken: the rest
        of the run stays in this history."""
        await self._write_status()  # before any batch starts: the run shows running meanwhile
        names = self._request.target_names
        size = self._request.batch_size
        bounds = [(offset, min(size, len(names) - offset)) for offset in range(0, len(names), size)]
        if self._failure_allowance() is None:
            side_by_side = math.ceil(concurrency / size)
            per_batch = max(1, concurrency // side_by_side)
        else:
            side_by_side, per_batch = 1, min(concurrency, size)
        progress = self._request.progress
        first = 0
        if progress is not None and (progress.segment, progress.step) == position:
            first = progress.offset  # counted before the run continued as new
        else:
            self._segments_run += 1
            self._batches["total"] += len(bounds)
        lists = any(mentions(self._document.step(step_id), "targets") for step_id in step_ids)
        sizes = dict(bounds)
        # The batches not started yet, in offset order. `side_by_side` runners take them one
        # at a time, so a workflow task holds that many coroutines, not one per batch: over
        # 100,000 targets, a thousand waiting coroutines made the first task (and tearing it
        # down) outlast the SDK's 2 s deadlock limit on a busy worker.
        pending = collections.deque(offset for offset, _ in bounds if offset >= first)

        async def one_batch(offset: int, count: int) -> None:
            members = names[offset : offset + count]
            if self._too_many_failed() and not self._started_targets.intersection(members):
                # Nothing here may start; closing the run records their steps skipped.
                self._batches["done"] += 1
                return
            self._batches["running"] += 1
            self._batches_here += 1
            try:
                result = await self._run_batch(step_ids, offset, members, per_batch, lists)
            finally:
                self._batches["running"] -= 1
                self._batches["done"] += 1
            self._started_targets.update(result.started)
            for name, outcomes in result.outcomes.items():
                own = self._per_target.setdefault(name, {})
                own.update({outcome.step_id: outcome for outcome in outcomes})
            self._tally = None

        async def runner() -> None:
            while pending and not self._continuation_due():
                offset = pending.popleft()
                await one_batch(offset, sizes[offset])

        while pending:
            await asyncio.gather(*(runner() for _ in range(side_by_side)))
            if not pending:
                return
            progress = self._progress(position, pending[0])
            continued = self._request.model_copy(update={"progress": progress})
            if len(continued.model_dump_json()) <= CARRY_LIMIT:
                # Nothing may be in flight at the boundary: the batches are done, and every
                # message announced so far must have started its delivery workflow. (Waited
                # for here, so a cancel meanwhile ends the run as any cancel does.)
                await self._notices.sent()
                raise ContinueRun(continued)
            # Too large to carry: the rest runs in this history, as before continuations.
            self._continuing = False

    # -- continuing as new --------------------------------------------------------------------

    def _continuation_due(self) -> bool:
        """Whether the run should start no further batch here but continue as new: it has run
        `max_batches_per_history` batches in this history, or Temporal suggests it."""
        if self._continuing is None and (
            self._batches_here >= self._request.max_batches_per_history
            or workflow.info().is_continue_as_new_suggested()
        ):
            # Decided once, when first due: a run recorded before the patch never continues.
            self._continuing = self._may_continue() and patched(CONTINUE_AS_NEW_PATCH)
        return self._continuing is True

    def _may_continue(self) -> bool:
        """A continuation carries states, not output: a run that holds per-target output a
        step in another segment reads keeps its one history (as every run did before)."""
        plan = self._request.plan
        per_target = [s for s in plan.segments if s.kind is SegmentKind.per_target]
        if self._document.strategy.order is Order.per_step:
            groups = [[step_id] for segment in per_target for step_id in segment.step_ids]
        else:
            groups = [segment.step_ids for segment in per_target]
        return not any(self._kept_output(group) for group in groups)

    def _progress(self, position: Position, offset: int) -> RunProgress:
        names = self._request.target_names
        before = self._request.progress
        return RunProgress(
            started_at=self._started_at,
            segment=position[0],
            step=position[1],
            offset=offset,
            segments_run=self._segments_run,
            batches_total=self._batches["total"],
            batches_done=self._batches["done"],
            started=pack_targets(names, self._started_targets),
            states=pack_states(names, self._per_target),
            run_once=list(self._run_once.values()),
            continuations=before.continuations + 1 if before else 1,
        )

    def _restore(self, progress: RunProgress) -> None:
        names = self._request.target_names
        self._started_at = progress.started_at
        self._status = RunStatus.running
        self._segments_run = progress.segments_run
        self._batches.update(total=progress.batches_total, done=progress.batches_done)
        self._started_targets = unpack_targets(names, progress.started)
        self._per_target = unpack_states(names, progress.states)
        self._tally = None
        self._run_once = {outcome.step_id: outcome for outcome in progress.run_once}

    def _time_left(self, timeout: timedelta) -> float:
        if self._request.progress is None:
            return timeout.total_seconds()  # the timer every run recorded before has
        return max(0.0, (timeout - (workflow.now() - self._started_at)).total_seconds())

    async def _run_batch(
        self,
        step_ids: Sequence[str],
        offset: int,
        members: Sequence[str],
        per_batch: int,
        lists: bool,
    ) -> BatchResult:
        prior = {
            name: list(self._per_target[name].values())
            for name in members
            if name in self._per_target
        }
        request = BatchRequest(
            run_id=self._request.run_id,
            plan=self._request.plan,
            base=self._base(target_lists=lists),
            offset=offset,
            count=len(members),
            step_ids=list(step_ids),
            concurrency=per_batch,
            failure_allowance=self._failure_allowance(),
            failed_before=self._failed_count(),
            started=sorted(self._started_targets.intersection(members)),
            prior=prior,
            run_once=list(self._run_once.values()),
            keep_output=self._kept_output(step_ids),
            chunk_size=self._request.chunk_size,
        )
        everyone = self._request.target_names
        if (
            len(members) == len(everyone)
            and fits_one_history(self._request.plan, len(everyone))
            and one_batch_inline()
        ):
            # The run's only batch runs here: a child would add its start, its two workflow
            # tasks and this workflow's task on its end to the run (benchmarks/README.md, "fix
            # 19"). Its history stays bounded: this run's events and, over all its segments,
            # no more than one batch may hold (`fits_one_history`). A cancel, a failed record or
            # a template problem reaches `run` as it does from a child.
            return await BatchRun(request).run()
        try:
            return await workflow.execute_child_workflow(
                TargetBatchWorkflow.run,
                request,
                id=batch_workflow_id(workflow.info().workflow_id, self._segments_run, offset),
                task_queue=TaskQueue.orchestration.value,
                # What the Temporal UI shows for the child: its range of targets.
                static_summary=f"targets {members[0]} … {members[-1]} ({len(members)})",
            )
        except ChildWorkflowError as error:
            if isinstance(error.cause, CancelledError):
                raise asyncio.CancelledError from error  # this run is being cancelled
            raise BatchFailed(
                f"the batch of targets from {members[0]} failed: {error.cause or error}"
            ) from None

    def _kept_output(self, step_ids: Sequence[str]) -> list[str]:
        """The steps of a batch whose output returns to the run: a step outside the batch's
        own steps reads it."""
        return [
            step_id
            for step_id in step_ids
            if any(
                reads_output(other, step_id)
                for other in self._document.steps
                if other.id not in step_ids
            )
        ]

    # -- run-once steps -----------------------------------------------------------------------

    async def _run_step_once(self, step: Step) -> None:
        needs: list[StepOutcome | None] = []
        for need in step.needs:
            if need in self._run_once:
                needs.append(self._run_once[need])
            else:
                # A per-target need counts as failed when it failed on any target.
                results = [steps[need] for steps in self._per_target.values() if need in steps]
                failure = next((result for result in results if result.blocks_dependants), None)
                needs.append(failure or (results[0] if results else None))
        # Only the per-target steps this step's templates name reach its context, each output
        # cut to share one payload: a summary over 10,000 targets must still fit.
        named = [
            step_id
            for step_id in (item.id for item in self._document.steps)
            if step_id not in self._run_once and mentions(step, step_id)
        ]
        share = output_share(len(named) * max(1, len(self._per_target)))
        per_target = {
            target: [steps[step_id].bounded(share) for step_id in named if step_id in steps]
            for target, steps in self._per_target.items()
        }
        context = run_once_context(self._base(), per_target, self._run_once.values())
        outcome = await self._executor.run(step, None, needs, context)
        self._run_once[step.id] = outcome
        if self._folds and self._ends_the_plan() and not outcome.state_recorded:
            # Nothing awaits between here and `_finish`, which writes it with the run's end.
            # (One its worker recorded is not written again: `record` skips it.)
            self._steps_unwritten.append(outcome)
        else:
            await self._executor.record(outcome)

    def _ends_the_plan(self) -> bool:
        """Whether every step of the plan's last segment, a run-once one, has its outcome."""
        last = self._request.plan.segments[-1]
        return last.kind is SegmentKind.run_once and all(
            step_id in self._run_once for step_id in last.step_ids
        )

    async def _approval(
        self, step: Step, target_name: str | None, context: dict[str, object]
    ) -> StepOutcome:
        try:
            message = render_text(str(step.with_["message"]), context)
            timeout = parse_duration(render_text(str(step.with_.get("timeout", "24h")), context))
        except (TemplateProblem, ValueError) as error:
            return failed(step, target_name, str(error))
        approvers = [str(item) for item in step.with_.get("approvers", ["operator"])]
        self._approvals.open(
            step.id,
            message,
            approvers,
            requester=self._request.requester or self._request.triggered_by,
            allow_self_approval=step.with_.get("allow_self_approval") is True,
        )
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
            return succeeded(step, target_name, outputs)
        outcome = failed(step, target_name, decision.summary())
        outcome.outputs = outputs
        return outcome

    # -- state and records --------------------------------------------------------------------

    def _base(self, *, target_lists: bool = True) -> dict[str, object]:
        return base_context(
            self._request,
            self._started_at,
            self._succeeded_targets(),
            self._failed_targets(),
            target_lists=target_lists,
        )

    def _succeeded_targets(self) -> list[str]:
        return list(self._target_tally()[0])

    def _failed_targets(self) -> list[str]:
        return list(self._target_tally()[1])

    def _failed_count(self) -> int:
        return len(self._target_tally()[1])  # counted, not copied: asked before every batch

    def _target_tally(self) -> tuple[list[str], list[str]]:
        """Started targets with no failure, in target order, and targets with a failure that
        was not tolerated. A target whose every step was skipped because something upstream
        failed (a rejected approval gate) did nothing: it is neither succeeded nor failed."""
        if self._tally is None:
            failed = [
                name
                for name, steps in self._per_target.items()
                if any(
                    outcome.status is StepStatus.failed and not outcome.tolerated
                    for outcome in steps.values()
                )
            ]
            failing = set(failed)
            succeeded = [
                name
                for name in self._request.target_names
                if name in self._started_targets
                and name not in failing
                and not all(
                    outcome.status is StepStatus.skipped and outcome.failed
                    for outcome in self._per_target.get(name, {}).values()
                )
            ]
            self._tally = (succeeded, failed)
        return self._tally

    def _failure_allowance(self) -> int | None:
        limit = self._document.strategy.max_failed_targets
        if limit is None:
            return None
        if isinstance(limit, str):
            return len(self._request.target_names) * int(limit.rstrip("%")) // 100
        return limit

    def _too_many_failed(self) -> bool:
        allowance = self._failure_allowance()
        return allowance is not None and self._failed_count() > allowance

    def _final_status(self) -> RunStatus:
        if any(outcome.blocks_dependants for outcome in self._run_once.values()):
            return RunStatus.failed
        allowance = self._failure_allowance() or 0
        return RunStatus.failed if self._failed_count() > allowance else RunStatus.succeeded

    def _show_status(self, status: RunStatus) -> None:
        """The status as the progress query and the run's search attribute show it."""
        shown, self._status = self._status, status
        if status is shown and bundled():
            return  # the search attribute holds it already (older runs upserted it again)
        if patched(RUN_STATUS_SEARCH_ATTRIBUTE_PATCH):
            workflow.upsert_search_attributes([RUN_STATUS.value_set(status.value)])

    def _status_record(self, reason: str | None = None) -> RunStatusRecord:
        return RunStatusRecord(run_id=self._request.run_id, status=self._status, reason=reason)

    async def _set_status(self, status: RunStatus, reason: str | None = None) -> None:
        self._show_status(status)
        self._status_unwritten = False  # this write supersedes it
        await write_record(
            record_run_status, self._status_record(reason), f"the run's status ({status.value})"
        )

    async def _write_status(self) -> None:
        """Writes the status held back at the start, if no record has carried it yet."""
        if self._status_unwritten:
            await self._set_status(self._status)

    def _closing(self, status: RunStatus, reason: str | None) -> RunClosing:
        """Every step without a final state gets one, so the run record is complete."""
        return RunClosing(
            run_id=self._request.run_id,
            per_target_step_ids=[s.id for s in self._document.steps if not s.run_once],
            run_once_step_ids=[s.id for s in self._document.steps if s.run_once],
            reason=reason or "the run ended before the step's turn",
            cancelled=status is RunStatus.cancelled,
        )

    async def _write_end(
        self, status: RunStatus, reason: str | None, steps: Sequence[StepOutcome] = ()
    ) -> None:
        """The run's end in one write: `steps`, the steps' final states and its status."""
        self._show_status(status)
        self._status_unwritten = False
        await write_record(
            record_run,
            RunRecord(
                run_id=self._request.run_id,
                steps=list(steps),
                closing=self._closing(status, reason),
                status=self._status_record(reason),
            ),
            " and ".join(
                [*(record_name(step) for step in steps), f"the run's end ({status.value})"]
            ),
        )

    async def _write_step(self, outcome: StepOutcome) -> None:
        """A run-once step's record; the first one also carries the `running` status."""
        if not self._status_unwritten:
            await write_record(
                record_step,
                StepRecord(run_id=self._request.run_id, outcome=outcome),
                record_name(outcome),
            )
            return
        self._status_unwritten = False
        await write_record(
            record_run,
            RunRecord(run_id=self._request.run_id, steps=[outcome], status=self._status_record()),
            f"{record_name(outcome)} and the run's status ({self._status.value})",
        )

    async def _finish(self, status: RunStatus, reason: str | None) -> RunSummary:
        if not self._folds:
            await write_record(
                close_run_steps, self._closing(status, reason), "the final state of the run's steps"
            )
            await self._set_status(status, reason)
        elif not self._steps_unwritten:
            await self._write_end(status, reason)
        else:
            try:
                await self._write_end(status, reason, self._steps_unwritten)
            except RecordFailed as error:
                # The database refused the last step's outcome: the run still ends, failed
                # with why, as when that record is written on its own.
                status, reason = RunStatus.failed, str(error)
                await self._write_end(status, reason)
        await self._notices.finished(self._request, self._base(), status, reason)
        return RunSummary(
            run_id=self._request.run_id,
            status=status,
            succeeded_targets=self._succeeded_targets(),
            failed_targets=self._failed_targets(),
            reason=reason,
            outputs={
                step_id: outcome.all_outputs()
                for step_id, outcome in self._run_once.items()
                if outcome.status is StepStatus.succeeded
            },
        )
