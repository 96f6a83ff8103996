"""The job-run workflow (and its target batches) with every activity stubbed in memory: no
PostgreSQL, no sshd, no HTTP receiver; only the Temporal dev server of the test session.

Each test starts a run the way the run service does and asserts what a user would see: the
run's summary and status, and the step records written (status, reason, attempts). Durations
are sub-second (the job document accepts `ms`), so no test waits on a real clock for long.
"""

import asyncio
import collections
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError, CancelledError

from opsconductor.workflows.step_execution import MAX_SHUTDOWN_RERUNS
from tests.workflow_stubs import (
    DECIDE_APPROVAL,
    JOB_ID,
    NOT_PENDING,
    NOT_PERMITTED,
    PROGRESS_QUERY,
    ApprovalDecision,
    RunBook,
    RunStatus,
    SkipReason,
    StepCall,
    StepResult,
    StepStatus,
    StubWorld,
    batch_workflow_id,
    cut_by_shutdown,
    fail,
    hang,
    hold_until_active,
    reject,
    stub_world,
    succeed,
)


@pytest.fixture(scope="module")
async def world() -> AsyncIterator[StubWorld]:
    async with stub_world() as world:
        yield world


def ssh(step_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "action": "ssh.command", "with": {"command": f"run {step_id}"}, **extra}


def job(*steps: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": "unit-job", "steps": list(steps), **fields}


def failing(step_id: str, targets: Iterable[str], message: str = "exit status 1"):
    """Fails `step_id` on `targets` (every attempt); everything else succeeds."""
    doomed = set(targets)

    async def behaviour(call: StepCall, book: RunBook) -> StepResult | None:
        if call.step_id == step_id and call.target in doomed:
            raise fail(call, message, stdout=f"attempt {call.attempt} broke\n")
        return await succeed(call, book)

    return behaviour


def order(book: RunBook) -> list[tuple[str | None, str]]:
    return [(call.target, call.step_id) for call in book.calls]


# -- strategy: order and concurrency ----------------------------------------------------------


async def test_per_target_order_takes_each_target_through_all_its_steps(world: StubWorld):
    document = job(
        ssh("a"), ssh("b", needs=["a"]), strategy={"order": "per-target", "concurrency": 1}
    )
    handle, book = await world.start(document, 3, batch_size=2)

    summary = await handle.result()

    assert summary.status is RunStatus.succeeded
    assert summary.succeeded_targets == ["t1", "t2", "t3"]
    assert order(book) == [
        ("t1", "a"), ("t1", "b"), ("t2", "a"), ("t2", "b"), ("t3", "a"), ("t3", "b"),
    ]  # fmt: skip
    assert book.peak == 1
    assert {key: status for key, (status, _) in book.table().items()} == {
        (target, step): "succeeded" for target in ("t1", "t2", "t3") for step in ("a", "b")
    }
    assert [record.status for record in book.statuses] == [RunStatus.running, RunStatus.succeeded]


async def test_per_step_order_finishes_a_step_on_every_target_before_the_next(world: StubWorld):
    document = job(
        ssh("a"), ssh("b", needs=["a"]), strategy={"order": "per-step", "concurrency": 1}
    )
    handle, book = await world.start(document, 3)

    summary = await handle.result()

    assert summary.status is RunStatus.succeeded
    assert order(book) == [
        ("t1", "a"), ("t2", "a"), ("t3", "a"), ("t1", "b"), ("t2", "b"), ("t3", "b"),
    ]  # fmt: skip
    # One segment (and child workflow) per step.
    assert [(batch.offset, batch.count) for batch in book.batches] == [(0, 3), (0, 3)]


@pytest.mark.parametrize(
    ("targets", "batch_size", "concurrency"),
    [(6, 100, 3), (8, 2, 4), (4, 100, 1)],
    ids=["one-batch", "across-batches", "one-at-a-time"],
)
async def test_concurrency_is_reached_and_never_exceeded(
    world: StubWorld, targets: int, batch_size: int, concurrency: int
):
    handle, book = await world.start(
        job(ssh("a"), strategy={"concurrency": concurrency}),
        targets,
        batch_size=batch_size,
        behaviour=hold_until_active(concurrency),
    )

    summary = await handle.result()

    assert summary.status is RunStatus.succeeded
    assert len(book.calls) == targets
    assert book.peak == concurrency


async def test_concurrency_may_be_a_template_over_the_parameters(world: StubWorld):
    document = job(
        ssh("a"),
        parameters={"width": {"type": "integer", "default": 2}},
        strategy={"concurrency": "{{ params.width }}"},
    )
    handle, book = await world.start(document, 4, behaviour=hold_until_active(2))

    assert (await handle.result()).status is RunStatus.succeeded
    assert book.peak == 2


async def test_a_concurrency_template_that_is_not_a_number_fails_the_run(world: StubWorld):
    document = job(ssh("a"), strategy={"concurrency": "{{ 'wide' }}"})
    handle, book = await world.start(document, 2)

    summary = await handle.result()

    assert summary.status is RunStatus.failed
    assert summary.reason == "strategy.concurrency rendered 'wide', not a number"
    assert book.calls == []
    # Closing the run records every step that never ran as skipped.
    assert book.table() == {
        ("t1", "a"): ("skipped", "run_aborted"),
        ("t2", "a"): ("skipped", "run_aborted"),
    }


# -- needs, when, on_error --------------------------------------------------------------------


async def test_a_failed_step_skips_its_dependants_on_that_target_only(world: StubWorld):
    handle, book = await world.start(
        job(ssh("a"), ssh("b", needs=["a"])), 3, behaviour=failing("a", ["t2"])
    )

    summary = await handle.result()

    assert summary.status is RunStatus.failed
    assert summary.reason is None
    assert summary.failed_targets == ["t2"]
    assert summary.succeeded_targets == ["t1", "t3"]
    assert book.table() == {
        ("t1", "a"): ("succeeded", None),
        ("t1", "b"): ("succeeded", None),
        ("t2", "a"): ("failed", "exit status 1"),
        ("t2", "b"): ("skipped", SkipReason.upstream_failed.value),
        ("t3", "a"): ("succeeded", None),
        ("t3", "b"): ("succeeded", None),
    }
    broken = book.row("t2", "a")
    assert (broken.exit_code, broken.stdout, broken.attempts) == (1, "attempt 1 broke\n", 1)
    assert not broken.tolerated
    assert book.calls_of("b", "t2") == []


async def test_when_decides_per_target_and_can_read_a_failed_need(world: StubWorld):
    document = job(
        ssh("a"),
        ssh("only_t1", when="{{ target.name == 't1' }}"),
        ssh("rollback", needs=["a"], when="{{ steps.a.failed }}"),
    )
    handle, book = await world.start(document, 3, behaviour=failing("a", ["t3"]))

    summary = await handle.result()

    assert summary.status is RunStatus.failed
    assert summary.failed_targets == ["t3"]
    table = book.table()
    assert [table[(t, "only_t1")] for t in ("t1", "t2", "t3")] == [
        ("succeeded", None),
        ("skipped", "condition"),
        ("skipped", "condition"),
    ]
    # A `when` replaces the default "all needs succeeded": the rollback runs where a failed.
    assert [table[(t, "rollback")] for t in ("t1", "t2", "t3")] == [
        ("skipped", "condition"),
        ("skipped", "condition"),
        ("succeeded", None),
    ]


async def test_a_when_that_does_not_render_fails_the_step(world: StubWorld):
    handle, book = await world.start(job(ssh("a", when="{{ nothing.here }}")), 1)

    summary = await handle.result()

    assert summary.status is RunStatus.failed
    status, reason = book.table()[("t1", "a")]
    assert status == "failed"
    assert reason is not None
    assert reason.startswith("when: ")
    assert book.calls == []


async def test_on_error_continue_records_the_failure_but_the_run_goes_on(world: StubWorld):
    document = job(ssh("a", on_error="continue"), ssh("b", needs=["a"]))
    handle, book = await world.start(document, 2, behaviour=failing("a", ["t2"]))

    summary = await handle.result()

    assert summary.status is RunStatus.succeeded
    assert summary.failed_targets == []
    assert summary.succeeded_targets == ["t1", "t2"]
    tolerated = book.row("t2", "a")
    assert (tolerated.status, tolerated.reason, tolerated.tolerated) == (
        StepStatus.failed,
        "exit status 1",
        True,
    )
    assert book.table()[("t2", "b")] == ("succeeded", None)


async def test_on_error_fail_is_the_default_and_fails_the_run(world: StubWorld):
    document = job(ssh("a", on_error="fail"), ssh("b"))
    handle, book = await world.start(document, 2, behaviour=failing("a", ["t1", "t2"]))

    summary = await handle.result()

    assert summary.status is RunStatus.failed
    # Listed in the order the targets' batches reported, not in target order.
    assert sorted(summary.failed_targets) == ["t1", "t2"]
    # `b` needs nothing: it still runs on the failed targets.
    assert book.table()[("t1", "b")] == ("succeeded", None)


# -- retries and timeouts ---------------------------------------------------------------------


async def test_a_retried_step_that_succeeds_records_its_attempts(world: StubWorld):
    async def flaky(call: StepCall, book: RunBook) -> StepResult | None:
        if call.attempt < 3:
            raise fail(call, f"attempt {call.attempt} failed")
        return await succeed(call, book)

    document = job(ssh("a", retry={"attempts": 5, "interval": "10ms", "backoff": 1.0}))
    handle, book = await world.start(document, 1, behaviour=flaky)

    summary = await handle.result()

    assert summary.status is RunStatus.succeeded
    assert [(call.attempt, call.end) for call in book.calls] == [
        (1, "failed"),
        (2, "failed"),
        (3, "succeeded"),
    ]
    row = book.row("t1", "a")
    assert (row.status, row.attempts, row.reason) == (StepStatus.succeeded, 3, None)


async def test_a_step_failing_every_attempt_records_the_last_one(world: StubWorld):
    document = job(ssh("a", retry={"attempts": 3, "interval": "10ms"}))
    handle, book = await world.start(document, 1, behaviour=failing("a", ["t1"], "disk full"))

    summary = await handle.result()

    assert summary.status is RunStatus.failed
    assert [call.attempt for call in book.calls] == [1, 2, 3]
    row = book.row("t1", "a")
    assert (row.status, row.reason, row.attempts) == (StepStatus.failed, "disk full", 3)
    assert row.stdout == "attempt 3 broke\n"


async def test_a_rejected_step_is_not_retried(world: StubWorld):
    async def rejecting(call: StepCall, book: RunBook) -> StepResult | None:
        raise reject(call, "credential 'deploy' not found")

    document = job(ssh("a", retry={"attempts": 5, "interval": "10ms"}))
    handle, book = await world.start(document, 1, behaviour=rejecting)

    summary = await handle.result()

    assert summary.status is RunStatus.failed
    assert len(book.calls) == 1
    row = book.row("t1", "a")
    assert (row.reason, row.attempts) == ("credential 'deploy' not found", 1)


async def test_a_step_cut_off_by_a_worker_shutdown_runs_again_from_the_start(world: StubWorld):
    async def cut_once(call: StepCall, book: RunBook) -> StepResult | None:
        if call.step_id == "a" and call.step_attempt == 1:
            raise cut_by_shutdown(call)
        return await succeed(call, book)

    # The default retry: one attempt. The cut-off one does not count.
    handle, book = await world.start(job(ssh("a"), ssh("b", needs=["a"])), 1, behaviour=cut_once)

    summary = await handle.result()

    assert summary.status is RunStatus.succeeded
    assert [(c.step_id, c.step_attempt, c.end) for c in book.calls] == [
        ("a", 1, "failed"),
        ("a", 2, "succeeded"),
        ("b", 1, "succeeded"),
    ]
    row = book.row("t1", "a")
    assert (row.status, row.attempts, row.reason) == (StepStatus.succeeded, 2, None)


async def test_a_shutdown_re_run_keeps_the_retries_the_step_had_left(world: StubWorld):
    async def fail_cut_fail(call: StepCall, book: RunBook) -> StepResult | None:
        if call.step_attempt == 2:
            raise cut_by_shutdown(call)
        raise fail(call, f"attempt {call.step_attempt} failed")

    document = job(ssh("a", retry={"attempts": 2, "interval": "10ms"}))
    handle, book = await world.start(document, 1, behaviour=fail_cut_fail)

    summary = await handle.result()

    # Two attempts really failed (the step's retry.attempts); the cut-off one in between
    # was not counted against them.
    assert summary.status is RunStatus.failed
    assert [(call.step_attempt, call.end) for call in book.calls] == [
        (1, "failed"),
        (2, "failed"),
        (3, "failed"),
    ]
    row = book.row("t1", "a")
    assert (row.status, row.attempts, row.reason) == (StepStatus.failed, 3, "attempt 3 failed")


async def test_a_step_cut_off_by_every_shutdown_fails_after_the_re_run_limit(world: StubWorld):
    async def always_cut(call: StepCall, book: RunBook) -> StepResult | None:
        raise cut_by_shutdown(call)

    handle, book = await world.start(job(ssh("a")), 1, behaviour=always_cut)

    summary = await handle.result()

    assert summary.status is RunStatus.failed
    runs = 1 + MAX_SHUTDOWN_RERUNS
    assert [call.step_attempt for call in book.calls] == list(range(1, runs + 1))
    row = book.row("t1", "a")
    assert (row.status, row.attempts) == (StepStatus.failed, runs)
    assert row.reason == (
        f"attempt {runs} was stopped: its worker shut down; "
        f"not run again after {MAX_SHUTDOWN_RERUNS} such re-runs"
    )


async def test_a_step_timeout_stops_each_attempt(world: StubWorld):
    document = job(ssh("a", timeout="200ms", retry={"attempts": 2, "interval": "10ms"}), ssh("b"))
    behaviour = failing("none", [])

    async def slow_a(call: StepCall, book: RunBook) -> StepResult | None:
        return await (hang(call, book) if call.step_id == "a" else behaviour(call, book))

    handle, book = await world.start(document, 1, behaviour=slow_a)

    summary = await handle.result()

    assert summary.status is RunStatus.failed
    assert summary.failed_targets == ["t1"]
    row = book.row("t1", "a")
    assert (row.status, row.reason, row.attempts) == (
        StepStatus.failed,
        "timed out (start_to_close)",
        2,
    )
    assert book.table()[("t1", "b")] == ("succeeded", None)
    # Each attempt was stopped on the worker, not left running.
    attempts = book.calls_of("a", "t1")
    assert [call.attempt for call in attempts] == [1, 2]
    await book.until(lambda: all(call.end == "cancelled" for call in attempts), 2.0)


async def test_the_run_timeout_fails_the_run_and_closes_its_steps(world: StubWorld):
    document = job(ssh("a"), ssh("b", needs=["a"]), timeout="300ms")
    handle, book = await world.start(document, 2, behaviour=hang)

    summary = await handle.result()

    assert summary.status is RunStatus.failed
    assert summary.reason is not None
    assert summary.reason.startswith("the run exceeded its timeout of ")
    assert book.statuses[-1].status is RunStatus.failed
    assert book.statuses[-1].reason == summary.reason
    table = book.table()
    # The steps that were running are closed cancelled, with the run's reason; those that
    # never started are skipped.
    assert [table[(t, "a")] for t in ("t1", "t2")] == [("cancelled", summary.reason)] * 2
    assert [table[(t, "b")] for t in ("t1", "t2")] == [("skipped", "run_aborted")] * 2


async def test_the_run_timeout_reason_names_the_timeout_as_written(world: StubWorld):
    handle, _ = await world.start(job(ssh("a"), timeout="300ms"), 1, behaviour=hang)

    summary = await handle.result()

    assert summary.reason == "the run exceeded its timeout of 300ms"


# -- max_failed_targets -----------------------------------------------------------------------


async def test_max_failed_targets_stops_starting_targets_within_a_batch(world: StubWorld):
    document = job(ssh("a"), strategy={"concurrency": 1, "max_failed_targets": 1})
    handle, book = await world.start(document, 5, behaviour=failing("a", ["t1", "t2"]))

    summary = await handle.result()

    assert summary.status is RunStatus.failed
    assert summary.failed_targets == ["t1", "t2"]
    assert summary.succeeded_targets == []
    assert order(book) == [("t1", "a"), ("t2", "a")]
    assert [book.table()[(t, "a")] for t in ("t3", "t4", "t5")] == [("skipped", "run_aborted")] * 3


async def test_max_failed_targets_leaves_later_batches_unstarted(world: StubWorld):
    document = job(ssh("a"), strategy={"concurrency": 1, "max_failed_targets": 1})
    handle, book = await world.start(
        document, 5, batch_size=2, behaviour=failing("a", ["t1", "t2"])
    )

    summary = await handle.result()

    assert summary.status is RunStatus.failed
    assert summary.failed_targets == ["t1", "t2"]
    # The first batch went over the limit: no later batch was even loaded ...
    assert [(batch.offset, batch.count) for batch in book.batches] == [(0, 2)]
    # ... and closing the run records their steps skipped.
    assert [book.table()[(t, "a")] for t in ("t3", "t4", "t5")] == [("skipped", "run_aborted")] * 3


async def test_max_failed_targets_as_a_percent(world: StubWorld):
    # 20% of 5 targets: one may fail; the second failure stops the run starting targets.
    document = job(ssh("a"), strategy={"concurrency": 1, "max_failed_targets": "20%"})
    handle, book = await world.start(document, 5, behaviour=failing("a", ["t2", "t3"]))

    summary = await handle.result()

    assert summary.status is RunStatus.failed
    assert summary.failed_targets == ["t2", "t3"]
    assert summary.succeeded_targets == ["t1"]
    assert order(book) == [("t1", "a"), ("t2", "a"), ("t3", "a")]
    assert [book.table()[(t, "a")] for t in ("t4", "t5")] == [("skipped", "run_aborted")] * 2


async def test_failures_within_max_failed_targets_let_the_run_succeed(world: StubWorld):
    # 40% of 5 targets: two may fail, and every target is still tried.
    document = job(ssh("a"), strategy={"concurrency": 1, "max_failed_targets": "40%"})
    handle, book = await world.start(document, 5, behaviour=failing("a", ["t1", "t2"]))

    summary = await handle.result()

    assert summary.status is RunStatus.succeeded
    assert summary.failed_targets == ["t1", "t2"]
    assert summary.succeeded_targets == ["t3", "t4", "t5"]
    assert len(book.calls) == 5


# -- approvals --------------------------------------------------------------------------------


def approval_job(timeout: str = "5s", approvers: list[str] | None = None) -> dict[str, Any]:
    gate: dict[str, Any] = {
        "id": "gate",
        "action": "control.approval",
        "run_once": True,
        "with": {"message": "deploy to {{ run.target_count }} targets?", "timeout": timeout},
    }
    if approvers is not None:
        gate["with"]["approvers"] = approvers
    return job(gate, ssh("deploy", needs=["gate"]))


async def waiting(book: RunBook) -> None:
    await book.until(lambda: book.status is RunStatus.waiting_approval)


async def test_an_approved_gate_lets_the_targets_run(world: StubWorld):
    handle, book = await world.start(approval_job(), 2)
    await waiting(book)
    assert book.table() == {(None, "gate"): ("running", None)}
    assert book.calls == []

    answer = await handle.execute_update(
        DECIDE_APPROVAL,
        ApprovalDecision(step="gate", approve=True, by="olivia", role="operator", comment="go"),
        result_type=str,
    )
    summary = await handle.result()

    assert answer == "approved"
    assert summary.status is RunStatus.succeeded
    assert summary.outputs == {"gate": {"decision": "approved", "by": "olivia", "comment": "go"}}
    assert [record.status for record in book.statuses] == [
        RunStatus.running,
        RunStatus.waiting_approval,
        RunStatus.running,
        RunStatus.succeeded,
    ]
    assert book.table()[(None, "gate")] == ("succeeded", None)
    assert {call.target for call in book.calls} == {"t1", "t2"}


async def test_a_rejected_gate_fails_the_run_and_skips_the_targets(world: StubWorld):
    handle, book = await world.start(approval_job(), 2)
    await waiting(book)

    answer = await handle.execute_update(
        DECIDE_APPROVAL,
        ApprovalDecision(step="gate", approve=False, by="ada", role="admin", comment="not today"),
        result_type=str,
    )
    summary = await handle.result()

    assert answer == "rejected"
    assert summary.status is RunStatus.failed
    assert summary.failed_targets == []
    gate = book.row(None, "gate")
    assert (gate.status, gate.reason) == (StepStatus.failed, "rejected by ada: not today")
    assert gate.outputs == {"decision": "rejected", "by": "ada", "comment": "not today"}
    assert [book.table()[(t, "deploy")] for t in ("t1", "t2")] == [
        ("skipped", "upstream_failed")
    ] * 2
    assert book.calls == []


async def test_a_rejected_gate_lists_no_target_as_succeeded(world: StubWorld):
    handle, book = await world.start(approval_job(), 2)
    await waiting(book)
    await handle.execute_update(
        DECIDE_APPROVAL,
        ApprovalDecision(step="gate", approve=False, by="ada", role="admin"),
        result_type=str,
    )

    summary = await handle.result()

    assert summary.status is RunStatus.failed
    assert summary.succeeded_targets == []


async def test_an_undecided_gate_expires(world: StubWorld):
    handle, book = await world.start(approval_job(timeout="300ms"), 1)

    summary = await handle.result()

    assert summary.status is RunStatus.failed
    gate = book.row(None, "gate")
    assert (gate.status, gate.reason) == (
        StepStatus.failed,
        "no decision before the approval timed out",
    )
    assert gate.outputs == {"decision": "expired", "by": None, "comment": ""}
    assert book.table()[("t1", "deploy")] == ("skipped", "upstream_failed")
    assert [record.status for record in book.statuses] == [
        RunStatus.running,
        RunStatus.waiting_approval,
        RunStatus.running,
        RunStatus.failed,
    ]


async def test_a_decision_by_someone_not_an_approver_is_refused(world: StubWorld):
    handle, book = await world.start(approval_job(approvers=["admin"]), 1)
    await waiting(book)

    for decision, refusal in [
        (ApprovalDecision(step="gate", approve=True, by="olivia", role="operator"), NOT_PERMITTED),
        (ApprovalDecision(step="other", approve=True, by="ada", role="admin"), NOT_PENDING),
    ]:
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(DECIDE_APPROVAL, decision, result_type=str)
        assert isinstance(refused.value.cause, ApplicationError)
        assert refused.value.cause.type == refusal

    # Refused decisions change nothing: the gate still waits, and a named approver decides.
    assert book.status is RunStatus.waiting_approval
    await handle.execute_update(
        DECIDE_APPROVAL,
        ApprovalDecision(step="gate", approve=True, by="root", role="admin"),
        result_type=str,
    )
    assert (await handle.result()).status is RunStatus.succeeded


# -- cancel -----------------------------------------------------------------------------------


async def test_a_cancelled_run_ends_cancelled_with_its_steps(world: StubWorld):
    handle, book = await world.start(job(ssh("a"), ssh("b", needs=["a"])), 2, behaviour=hang)
    await book.until(lambda: len(book.calls) == 2)

    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as ended:
        await handle.result()

    assert isinstance(ended.value.cause, CancelledError)
    assert book.statuses[-1].status is RunStatus.cancelled
    assert book.statuses[-1].reason == "the run was cancelled"
    assert book.table() == {
        (target, step): ("cancelled", "the run was cancelled")
        for target in ("t1", "t2")
        for step in ("a", "b")
    }
    # The running commands were stopped, not left behind.
    await book.until(lambda: all(call.end == "cancelled" for call in book.calls), 2.0)


async def test_a_run_cancelled_while_waiting_for_approval(world: StubWorld):
    handle, book = await world.start(approval_job(), 2)
    await waiting(book)

    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()

    assert book.statuses[-1].status is RunStatus.cancelled
    assert book.table() == {
        (None, "gate"): ("cancelled", "the run was cancelled"),
        ("t1", "deploy"): ("cancelled", "the run was cancelled"),
        ("t2", "deploy"): ("cancelled", "the run was cancelled"),
    }
    assert book.calls == []


# -- batching ---------------------------------------------------------------------------------


async def test_targets_run_in_child_workflows_of_batch_size(world: StubWorld):
    summary_step = {
        "id": "report",
        "action": "http.request",
        "run_once": True,
        "needs": ["b"],
        "when": "{{ true }}",
        "with": {"url": "http://receiver/report", "json": {"s": "{{ run.summary }}"}},
    }
    document = job(ssh("a"), ssh("b", needs=["a"]), summary_step, ssh("c", needs=["report"]))
    handle, book = await world.start(document, 5, batch_size=2, behaviour=failing("a", ["t4"]))

    summary = await handle.result()

    assert summary.status is RunStatus.failed
    assert summary.failed_targets == ["t4"]
    assert summary.succeeded_targets == ["t1", "t2", "t3", "t5"]
    # Two per-target segments (before and after the run-once step), three batches each; the
    # batches of a segment run side by side.
    loaded = [(batch.offset, batch.count) for batch in book.batches]
    assert sorted(loaded[:3]) == sorted(loaded[3:]) == [(0, 2), (2, 2), (4, 1)]
    children = []
    async for event in handle.fetch_history_events():
        if event.HasField("start_child_workflow_execution_initiated_event_attributes"):
            attributes = event.start_child_workflow_execution_initiated_event_attributes
            children.append((attributes.workflow_type.name, attributes.workflow_id))
    assert sorted(children) == [
        ("job-run-batch", batch_workflow_id(handle.id, segment, offset))
        for segment in (1, 2)
        for offset in (0, 2, 4)
    ]
    # What the Temporal UI shows for a batch: its range of targets.
    first = world.client.get_workflow_handle(batch_workflow_id(handle.id, 1, 0))
    assert await (await first.describe()).static_summary() == "targets t1 … t2 (2)"
    # The run-once step saw every batch's outcome.
    report = book.calls_of("report")
    assert len(report) == 1
    assert report[0].context["run"]["summary"] == "5 target(s): 4 succeeded, 1 failed (t4)"
    table = book.table()
    assert table[("t4", "b")] == ("skipped", "upstream_failed")
    # A target that failed earlier is out of the run: later segments skip it.
    assert table[("t4", "c")] == ("skipped", "upstream_failed")
    assert [table[(t, "c")] for t in ("t1", "t2", "t3", "t5")] == [("succeeded", None)] * 4


TASK_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
}


async def test_a_succeeded_step_costs_its_activity_and_no_record_in_history(world: StubWorld):
    """The worker records a step's `running` and `succeeded` states: a batch's history holds one
    activity per target and step, and local activities (records) only for what the worker
    cannot know, here the failure after the last attempt (docs/engine.md). A run whose targets
    fit in one batch runs it in its own workflow: no child, one patch marker."""
    document = job(ssh("a"), ssh("b", needs=["a"]))
    handle, book = await world.start(document, 3, behaviour=failing("b", ["t3"]))

    summary = await handle.result()

    assert summary.failed_targets == ["t3"]
    counts: collections.Counter[str] = collections.Counter()
    async for event in handle.fetch_history_events():
        # Workflow tasks' own events left out: how activity results group into tasks varies.
        counts["events"] += event.event_type not in TASK_EVENTS
        counts["activities"] += event.HasField("activity_task_scheduled_event_attributes")
        counts["children"] += event.HasField(
            "start_child_workflow_execution_initiated_event_attributes"
        )
        if event.HasField("marker_recorded_event_attributes"):
            counts[event.marker_recorded_event_attributes.marker_name] += 1
    # Records: the `running` status, loading the batch's targets, t3's failed `b`, the end.
    # (With a batch child, before `patch-bundle-2`: 35 events in two histories, 2 patch
    # markers, and the child's first and last workflow tasks.)
    assert counts == {
        "events": 28,
        "activities": 6,
        "children": 0,
        "core_patch": 1,
        "core_local_activity": 4,
    }
    table = book.table()
    assert [table[(t, step)] for t in ("t1", "t2") for step in "ab"] == [("succeeded", None)] * 4
    assert table[("t3", "b")][0] == "failed"


# -- continuing as new -------------------------------------------------------------------------


async def runs_of(world: StubWorld, workflow_id: str) -> list[str]:
    """The run ids of a workflow's chain of continuations, first to last."""
    chain = [(await world.client.get_workflow_handle(workflow_id).describe()).run_id]
    while True:
        history = await world.client.get_workflow_handle(
            workflow_id, run_id=chain[0]
        ).fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        if not started.continued_execution_run_id:
            return chain
        chain.insert(0, started.continued_execution_run_id)


STEPS = ("probe", "patch", "verify")


async def test_a_run_continues_as_new_and_keeps_every_target_result(world: StubWorld):
    gate = {
        "id": "gate",
        "action": "control.approval",
        "run_once": True,
        "with": {"message": "go on?"},
    }
    document = job(
        ssh("probe"),
        ssh("patch", needs=["probe"]),
        gate,
        # Reads a per-target state from before the continuations (its state only: the run
        # carries no output across).
        ssh("verify", needs=["gate", "probe"], when="{{ steps.probe.exit_code == 0 }}"),
    )
    # Five batches of one target per per-target segment, at most two batches per history.
    handle, book = await world.start(
        document, 5, batch_size=1, max_batches_per_history=2, behaviour=failing("probe", ["t4"])
    )
    # The API's handle: by workflow id alone, whichever run of the chain is current.
    current = world.client.get_workflow_handle(handle.id)
    await waiting(book)
    decision = ApprovalDecision(step="gate", approve=True, by="olivia", role="operator")
    assert await current.execute_update(DECIDE_APPROVAL, decision, result_type=str) == "approved"

    summary = await handle.result()

    assert summary.status is RunStatus.failed
    assert (summary.succeeded_targets, summary.failed_targets) == (["t1", "t2", "t3", "t5"], ["t4"])
    assert summary.outputs["gate"]["decision"] == "approved"
    table = book.table()
    expected: dict[tuple[str | None, str], tuple[str, str | None]] = {
        (t, step): ("succeeded", None) for t in ("t1", "t2", "t3", "t5") for step in STEPS
    }
    expected |= {
        ("t4", "probe"): ("failed", "exit status 1"),
        ("t4", "patch"): ("skipped", "upstream_failed"),
        # A target that failed before the continuations is still out of the run after them.
        ("t4", "verify"): ("skipped", "upstream_failed"),
        (None, "gate"): ("succeeded", None),
    }
    assert table == expected
    # Every batch ran once, none twice, across the continuations; every step ran once.
    assert sorted((batch.offset, batch.count) for batch in book.batches) == sorted(
        [(offset, 1) for offset in range(5)] * 2
    )
    assert sorted(order(book)) == sorted(
        [(t, "probe") for t in ("t1", "t2", "t3", "t4", "t5")]
        + [(t, step) for t in ("t1", "t2", "t3", "t5") for step in ("patch", "verify")]
    )
    assert book.calls_of("verify", "t1")[0].context["steps"]["probe"]["exit_code"] == 0
    # The run's record saw one run: started once, waited once, ended once.
    assert [record.status for record in book.statuses] == [
        RunStatus.running,
        RunStatus.waiting_approval,
        RunStatus.running,
        RunStatus.failed,
    ]
    # Ten batches, two per history: the first run and four continuations, each history
    # ending in WorkflowExecutionContinuedAsNew but the last.
    chain = await runs_of(world, handle.id)
    assert len(chain) == 5
    assert chain[0] == handle.first_execution_run_id
    for run_id in chain[:-1]:
        history = await world.client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        assert history.events[-1].HasField("workflow_execution_continued_as_new_event_attributes")
    described = await current.describe()
    assert described.run_id == chain[-1]
    assert described.typed_search_attributes.get(JOB_ID) is not None
    progress = await current.query(PROGRESS_QUERY)
    assert progress["batches"] == {"total": 10, "running": 0, "done": 10}
    assert progress["failed_targets"] == ["t4"]
    assert progress["steps"] == {"succeeded": 13, "failed": 1, "skipped": 2}


async def test_a_run_that_would_carry_output_keeps_one_history(world: StubWorld):
    """A per-target step's output read across a segment stays with the parent: a continuation
    carries states only, so the run is not continued."""
    report = {
        "id": "report",
        "run_once": True,
        "needs": ["probe"],
        "action": "control.sleep",
        "with": {"duration": "{{ '1ms' if steps.probe.results else '2ms' }}"},
    }
    handle, book = await world.start(
        job(ssh("probe"), report), 3, batch_size=1, max_batches_per_history=1
    )

    assert (await handle.result()).status is RunStatus.succeeded
    assert len(await runs_of(world, handle.id)) == 1
    assert sorted(str(call.target) for call in book.calls if call.step_id == "probe") == [
        "t1",
        "t2",
        "t3",
    ]


async def test_the_run_timeout_counts_from_the_first_run_not_each_continuation(world: StubWorld):
    async def slow(call: StepCall, book: RunBook) -> StepResult | None:
        await asyncio.sleep(2)
        return await succeed(call, book)

    # Three batches one after another, one per history: 6 s in all, 2 s in each history, which
    # leaves a loaded machine a second of overhead per batch either way.
    document = job(ssh("probe"), timeout="3s", strategy={"concurrency": 1})
    handle, book = await world.start(
        document, 3, batch_size=1, max_batches_per_history=1, behaviour=slow
    )

    summary = await handle.result()

    assert summary.status is RunStatus.failed
    assert summary.reason == "the run exceeded its timeout of 3s"
    assert len(await runs_of(world, handle.id)) >= 2
    assert book.row("t3", "probe").status in (StepStatus.cancelled, StepStatus.skipped)


# -- records that cannot be written ------------------------------------------------------------


async def test_a_step_record_the_database_refuses_fails_the_run_with_why(world: StubWorld):
    handle, book = await world.start(job(ssh("a"), ssh("b", needs=["a"])), 1, unwritable=["b"])

    summary = await handle.result()

    assert summary.status is RunStatus.failed
    assert summary.reason is not None
    assert "could not write the record of step b on t1 to PostgreSQL" in summary.reason
    assert "DataError: value out of range" in summary.reason
    # The run's own record still ends, with the same reason, and b never ran twice.
    assert (book.status, book.statuses[-1].reason) == (RunStatus.failed, summary.reason)
    assert len(book.calls_of("b", "t1")) <= 1


# -- run records: one write at each end --------------------------------------------------------


async def local_activities(handle: Any) -> list[str]:
    """The run-record writes in a workflow's history: its local activities, by name."""
    names = []
    async for event in handle.fetch_history_events():
        attributes = event.marker_recorded_event_attributes
        if event.HasField("marker_recorded_event_attributes") and (
            attributes.marker_name == "core_local_activity"
        ):
            # The SDK's marker data holds the activity's type among its JSON payload fields.
            data = attributes.details["data"].payloads[0].data
            names.append(next(n for n in RECORD_WRITES if n.encode() in data))
    return names


RECORD_WRITES = (
    "record-run-status",
    "record-step",
    "record-run",
    "close-run-steps",
    "load-target-batch",
)


async def round_trips(handle: Any) -> dict[str, int]:
    """What a workflow's history cost in trips through the Temporal server."""
    counts = {"workflow tasks": 0, "activities": 0, "children": 0}
    async for event in handle.fetch_history_events():
        if event.HasField("workflow_task_completed_event_attributes"):
            counts["workflow tasks"] += 1
        elif event.HasField("activity_task_scheduled_event_attributes"):
            counts["activities"] += 1
        elif event.HasField("start_child_workflow_execution_initiated_event_attributes"):
            counts["children"] += 1
    return counts


PATCH = "core_patch"  # the SDK's marker of a `workflow.patched`


async def beyond_bare(handle: Any) -> tuple[int, list[str]]:
    """A workflow's history length, and its events a bare workflow's lacks: patch markers (by
    patch id) and search-attribute upserts (the run's status, or the SDK's patch versions)."""
    count, extras = 0, []
    async for event in handle.fetch_history_events():
        count += 1
        marker = event.marker_recorded_event_attributes
        if event.HasField("marker_recorded_event_attributes") and marker.marker_name == PATCH:
            patch = json.loads(marker.details["patch-data"].payloads[0].data)
            extras.append(f"patch {patch['id']}")
        elif event.HasField("upsert_workflow_search_attributes_event_attributes"):
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
            status = fields.indexed_fields.get("OpsRunStatus")
            named = f"OpsRunStatus={json.loads(status.data)}" if status else "TemporalChangeVersion"
            extras.append(f"upsert {named}")
    return count, extras


async def test_a_one_step_run_writes_its_records_once_as_it_starts_and_once_as_it_ends(
    world: StubWorld,
):
    seen: list[tuple[RunStatus | None, StepStatus]] = []

    async def observe(call: StepCall, book: RunBook) -> StepResult | None:
        seen.append((book.status, book.row(None, "get").status))
        return None

    get = {"id": "get", "action": "http.request", "run_once": True, "with": {"url": "http://r/"}}
    handle, book = await world.start(job(get), 1, behaviour=observe)

    summary = await handle.result()

    assert summary.status is RunStatus.succeeded
    # While the step ran, the run and its step showed running: the run's status written before
    # the step was scheduled, the step's by its worker (as it records its success).
    assert seen == [(RunStatus.running, StepStatus.running)]
    assert await local_activities(handle) == ["record-run-status", "record-run"]
    # The same round trips as a bare workflow with one activity (benchmark B2's baseline): two
    # workflow tasks (the start, the activity's result), one activity, no child workflow.
    assert await round_trips(handle) == {"workflow tasks": 2, "activities": 1, "children": 0}
    # Inside them, one patch marker for all the patches a new run takes (workflows/patches.py),
    # with the SDK's TemporalChangeVersion upsert, and the two statuses the UI filters by: 17
    # events where the bare workflow has 11 (benchmarks/README.md, "fix 15").
    assert await beyond_bare(handle) == (
        17,
        [
            "patch patch-bundle-2",
            "upsert TemporalChangeVersion",
            "upsert OpsRunStatus=running",
            "upsert OpsRunStatus=succeeded",
        ],
    )
    assert book.folded_writes == 1
    assert [record.status for record in book.statuses] == [RunStatus.running, RunStatus.succeeded]
    assert book.table() == {(None, "get"): ("succeeded", None)}


async def test_a_per_target_run_writes_once_before_its_batches_and_once_at_its_end(
    world: StubWorld,
):
    seen: list[RunStatus | None] = []

    async def observe(call: StepCall, book: RunBook) -> StepResult | None:
        seen.append(book.status)
        return None

    handle, book = await world.start(job(ssh("a")), 2, behaviour=observe)

    summary = await handle.result()

    assert summary.status is RunStatus.succeeded
    assert seen == [RunStatus.running, RunStatus.running]
    # The batch (both targets) runs in the run's own workflow, which reads its targets too.
    assert await local_activities(handle) == [
        "record-run-status",
        "load-target-batch",
        "record-run",
    ]
    assert [record.status for record in book.statuses] == [RunStatus.running, RunStatus.succeeded]


async def test_a_last_step_record_the_database_refuses_still_ends_the_run_with_why(
    world: StubWorld,
):
    get = {"id": "get", "action": "http.request", "run_once": True, "with": {"url": "http://r/"}}
    handle, book = await world.start(job(get), 1, unwritable=["get"])

    summary = await handle.result()

    assert summary.status is RunStatus.failed
    assert summary.reason is not None
    assert "could not write the record of step get and the run's end (succeeded) to" in (
        summary.reason
    )
    assert "DataError: value out of range" in summary.reason
    assert (book.status, book.statuses[-1].reason) == (RunStatus.failed, summary.reason)
