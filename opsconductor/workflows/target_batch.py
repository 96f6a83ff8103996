"""A batch of a run's targets running one per-target segment, as a child of the job-run workflow
(or in it, when the run's targets fit in one batch: `BatchRun`).

Splitting targets into batches keeps every history bounded: a run over 10,000 targets is a
parent with one event group per batch, and children of at most `batch_size` targets each, all
far below Temporal's limits on events, history size and pending activities.
"""

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from opsconductor.contracts.runs import (
        TARGET_BATCH_WORKFLOW,
        BatchRequest,
        BatchResult,
        SkipReason,
        StepOutcome,
        TargetBatch,
        load_target_batch,
    )
    from opsconductor.contracts.steps import TargetSnapshot
    from opsconductor.jobspec.document import Step
    from opsconductor.workflows.context import read_later, target_context
    from opsconductor.workflows.patches import open_bundle
    from opsconductor.workflows.records import write_record
    from opsconductor.workflows.step_chunks import StepChunks
    from opsconductor.workflows.step_execution import StepExecutor, run_dag, skipped

# Outcomes returned to the parent share one payload; each one's output is cut to fit.
RESULT_BUDGET = 900_000


def output_share(outcomes: int) -> int:
    return max(256, min(64 * 1024, RESULT_BUDGET // max(1, 3 * outcomes)))


@workflow.defn(name=TARGET_BATCH_WORKFLOW)
class TargetBatchWorkflow:
    @workflow.run
    async def run(self, request: BatchRequest) -> BatchResult:
        open_bundle()
        return await BatchRun(request).run()


class BatchRun:
    """One batch's targets walking their DAGs: the body of a `job-run-batch` child, or run in
    the `job-run` workflow itself when the run's targets fit in one batch (workflows/job_run.py,
    `_run_batch`)."""

    def __init__(self, request: BatchRequest) -> None:
        self._request = request
        self._document = request.plan.document
        chunks = StepChunks(request.chunk_size, request.concurrency) if request.chunk_size else None
        self._executor = StepExecutor(request.run_id, read_later(self._document), chunks=chunks)
        self._outcomes: dict[str, dict[str, StepOutcome]] = {
            name: {outcome.step_id: outcome for outcome in outcomes}
            for name, outcomes in request.prior.items()
        }
        self._started = set(request.started)
        self._segment: dict[str, list[StepOutcome]] = {}

    async def run(self) -> BatchResult:
        request = self._request
        targets = await write_record(
            load_target_batch,
            TargetBatch(run_id=request.run_id, offset=request.offset, count=request.count),
            # Not a write, but the same bounded retry and the same kind of reason.
            f"(read) the targets from offset {request.offset} of the run",
        )
        limit = asyncio.Semaphore(request.concurrency)

        async def one_target(target: TargetSnapshot) -> None:
            async with limit:
                self._outcomes.setdefault(target.name, {})
                if await self._may_start(target):
                    await run_dag(
                        request.step_ids,
                        self._document,
                        lambda step: self._run_step(step, target),
                    )

        await asyncio.gather(*(one_target(target) for target in targets))
        keep = set(request.keep_output)
        share = output_share(
            sum(
                1
                for outcomes in self._segment.values()
                for outcome in outcomes
                if outcome.step_id in keep
            )
        )
        return BatchResult(
            outcomes={
                name: [
                    outcome.bounded(share) if outcome.step_id in keep else outcome.without_output()
                    for outcome in outcomes
                ]
                for name, outcomes in self._segment.items()
            },
            started=sorted(self._started),
        )

    def _failed_here(self) -> int:
        return sum(
            1
            for outcomes in self._segment.values()
            if any(outcome.blocks_dependants for outcome in outcomes)
        )

    async def _may_start(self, target: TargetSnapshot) -> bool:
        """Whether a target takes part in this segment; if not, its steps are recorded skipped."""
        allowance = self._request.failure_allowance
        if any(outcome.blocks_dependants for outcome in self._outcomes[target.name].values()):
            # A target that failed earlier is out of the run: its remaining steps depend on
            # work that did not happen.
            reason = SkipReason.upstream_failed
        elif (
            target.name not in self._started
            and allowance is not None
            and self._request.failed_before + self._failed_here() > allowance
        ):
            reason = SkipReason.run_aborted
        else:
            self._started.add(target.name)
            return True
        for step_id in self._request.step_ids:
            await self._store(skipped(step_id, target.name, reason))
        return False

    async def _run_step(self, step: Step, target: TargetSnapshot) -> None:
        own = self._outcomes[target.name]
        run_once = {outcome.step_id: outcome for outcome in self._request.run_once}
        needs = [own.get(need) or run_once.get(need) for need in step.needs]
        context = target_context(self._request.base, step, target, own.values(), run_once.values())
        await self._store(await self._executor.run(step, target, needs, context))

    async def _store(self, outcome: StepOutcome) -> None:
        assert outcome.target is not None
        self._outcomes[outcome.target][outcome.step_id] = outcome
        self._segment.setdefault(outcome.target, []).append(outcome)
        await self._executor.record(outcome)
