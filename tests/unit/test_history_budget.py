"""What a run carries through history, decided from the plan: which steps' output returns to
the workflow, what a step's context holds, how many targets a batch takes, and that outputs
repeating a stream cross history once yet read the same in templates."""

import uuid
from typing import Any

from opsconductor.contracts.runs import (
    BATCH_EVENT_BUDGET,
    EVENTS_PER_TARGET_STEP,
    StepOutcome,
    StepStatus,
    batch_size_for,
    fits_one_history,
)
from opsconductor.contracts.steps import StepResult, TargetSnapshot
from opsconductor.jobspec.document import JobDocument
from opsconductor.jobspec.plan import compile_plan
from opsconductor.workflows.context import read_later, reads_output, target_context


def document(*steps: dict[str, Any], **extra: Any) -> JobDocument:
    return JobDocument.model_validate({"name": "budget", "steps": list(steps), **extra})


def command(step_id: str, text: str = "true", **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "action": "ssh.command", "with": {"command": text}, **extra}


def test_only_steps_whose_output_a_later_template_reads_return_it() -> None:
    job = document(
        command("build"),
        command("check", needs=["build"], when="{{ steps.build.exit_code == 0 }}"),
        command("report", "echo '{{ steps.check.stdout }}'", needs=["check"]),
        command("quiet", needs=["report"]),
        {"id": "gate", "run_once": True, "action": "control.sleep", "with": {"duration": "1s"}},
    )
    # build: only its exit code is read; check: its stdout is; quiet: nothing reads it; gate:
    # run-once, whose outputs are the run's.
    assert read_later(job) == {"check", "gate"}
    assert not reads_output(job.step("check"), "build")
    assert reads_output(job.step("report"), "check")
    # Any other way of naming a step counts as reading its output.
    assert reads_output(document(command("x", "{{ steps['build'] }}")).step("x"), "build")


def test_a_step_context_holds_the_steps_it_mentions_with_output_only_where_read() -> None:
    job = document(
        command("build"),
        command("check", needs=["build"], when="{{ steps.build.exit_code == 0 }}"),
        command("tail", "echo '{{ steps.build.stdout }}'", needs=["check"]),
    )
    target = TargetSnapshot(id=uuid.uuid4(), name="web-1", address="h", port=22, protocol="ssh")
    build = StepOutcome(
        step_id="build", status=StepStatus.succeeded, exit_code=0, stdout="x" * 1000
    )
    other = StepOutcome(step_id="other", status=StepStatus.succeeded, stdout="y" * 1000)
    check = target_context({}, job.step("check"), target, [build, other], [])
    assert check["steps"]["build"]["exit_code"] == 0
    assert check["steps"]["build"]["stdout"] == ""
    assert "other" not in check["steps"]
    tail = target_context({}, job.step("tail"), target, [build, other], [])
    assert tail["steps"]["build"]["stdout"] == "x" * 1000


def test_outputs_repeating_a_stream_cross_once_and_read_the_same() -> None:
    result = StepResult(
        exit_code=0,
        stdout="hello",
        stderr="warn",
        outputs={"exit_code": 0, "stdout": "hello", "stderr": "warn", "size": 5},
    )
    carried = result.without_repeats()
    assert carried.outputs == {"exit_code": 0, "size": 5}
    assert carried.text_outputs == {"stdout": "stdout", "stderr": "stderr"}
    outcome = StepOutcome(
        step_id="s",
        status=StepStatus.succeeded,
        stdout=carried.stdout,
        stderr=carried.stderr,
        outputs=carried.outputs,
        text_outputs=carried.text_outputs,
    )
    assert outcome.context()["outputs"] == result.outputs
    assert result.state_only().model_dump(include={"stdout", "stderr", "outputs"}) == {
        "stdout": "",
        "stderr": "",
        "outputs": {},
    }


def test_batches_shrink_as_steps_grow_so_a_batch_history_stays_in_budget() -> None:
    fifty = document(*(command(f"s{index}") for index in range(50)))
    size = batch_size_for(compile_plan(fifty), 100)
    assert size == BATCH_EVENT_BUDGET // (EVENTS_PER_TARGET_STEP * 50) == 20
    assert size * 50 * EVENTS_PER_TARGET_STEP <= BATCH_EVENT_BUDGET
    # Few steps: the configured size; per-step order runs one step per batch.
    assert batch_size_for(compile_plan(document(command("a"), command("b"))), 100) == 100
    per_step = document(
        *(command(f"s{index}") for index in range(50)), strategy={"order": "per-step"}
    )
    assert batch_size_for(compile_plan(per_step), 100) == 100


def test_a_run_runs_its_one_batch_in_its_own_history_only_if_all_its_segments_fit_there() -> None:
    # 50 per-step steps over 100 targets: 50 batches of 100 targets, each a segment of its own.
    # In the run's own workflow they would be 50,000 events, past Temporal's limit; they stay
    # children. One step over 100 targets, or 10 steps, fits one batch's budget.
    per_step = document(
        *(command(f"s{index}") for index in range(50)), strategy={"order": "per-step"}
    )
    assert not fits_one_history(compile_plan(per_step), 100)
    assert fits_one_history(compile_plan(per_step), 20)
    assert fits_one_history(compile_plan(document(command("hostname"))), 100)
    ten = document(*(command(f"s{index}") for index in range(10)))
    assert fits_one_history(compile_plan(ten), 100)
    assert not fits_one_history(compile_plan(ten), 101)
    # Run-once steps run in the run's workflow either way and do not count.
    gate = {"id": "gate", "run_once": True, "action": "control.sleep", "with": {"duration": "1s"}}
    assert fits_one_history(
        compile_plan(document(*(command(f"s{i}") for i in range(10)), gate)), 100
    )
