"""The template context of a job document (docs/jobs.md), built from what a run knows so far.

Pure functions over plain data: the workflow uses them to decide `when` conditions, and sends
their result to activities, which render `with` blocks against it.
"""

import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from opsconductor.contracts.runs import RunRequest, StepOutcome, StepStatus
from opsconductor.contracts.steps import TargetSnapshot
from opsconductor.jobspec.document import JobDocument, Step


def _templates(step: Step) -> str:
    return json.dumps([step.with_, step.when, step.credential])


def mentions(step: Step, word: str) -> bool:
    """Whether any template of the step contains `word`. Cheap and conservative: it lets a run
    over thousands of targets leave lists out of the contexts of steps that cannot read them."""
    return word in _templates(step)


# What a template may read of a step without its output: the step's state.
STATE_FIELDS = ("status", "failed", "succeeded", "skipped", "exit_code")


def reads_output(step: Step, step_id: str) -> bool:
    """Whether the step's templates may read `step_id`'s stdout, stderr or outputs: they
    mention it other than as `steps.<id>.<state field>`. Conservative like `mentions`:
    `steps.deploy.exit_code == 0` reads only state, `steps.deploy.stdout` or `steps['deploy']`
    read output."""
    state_only = re.compile(rf"steps\.{re.escape(step_id)}\.(?:{'|'.join(STATE_FIELDS)})\b")
    return step_id in state_only.sub("", _templates(step))


def read_later(document: JobDocument) -> frozenset[str]:
    """The steps whose output must reach the workflow: those whose output another step's
    templates read, and run-once steps (their outputs are the run's, which a parent `job.run`
    step reads). Every other step's output stays on its record and in the run log, out of
    history."""
    return frozenset(
        step.id
        for step in document.steps
        if step.run_once
        or any(reads_output(other, step.id) for other in document.steps if other is not step)
    )


def run_summary(succeeded: list[str], failed: list[str], total: int) -> str:
    text = f"{total} target(s): {len(succeeded)} succeeded, {len(failed)} failed"
    if failed:
        shown = ", ".join(failed[:10]) + (" …" if len(failed) > 10 else "")
        text += f" ({shown})"
    return text


def base_context(
    request: RunRequest,
    started_at: datetime,
    succeeded: list[str],
    failed: list[str],
    *,
    target_lists: bool = True,
) -> dict[str, Any]:
    """The run-wide context. Without `target_lists` the three name lists are left out (the
    summary and counts stay): they are the only parts that grow with the fleet."""
    names = request.target_names
    run: dict[str, Any] = {
        "id": str(request.run_id),
        "started_at": started_at.isoformat(),
        "target_count": len(names),
        "summary": run_summary(succeeded, failed, len(names)),
    }
    if target_lists:
        run.update(targets=names, succeeded_targets=list(succeeded), failed_targets=list(failed))
    return {
        "params": request.parameters,
        "job": {"name": request.job_name, "version": request.job_version},
        "run": run,
    }


def target_context(
    base: Mapping[str, Any],
    step: Step,
    target: TargetSnapshot,
    own_steps: Iterable[StepOutcome],
    run_once_steps: Iterable[StepOutcome],
) -> dict[str, Any]:
    """A per-target step's context holds only the steps its templates mention, with their
    output only where they read it: a step's input grows with what it reads, not with
    everything that ran before it."""
    steps = {
        outcome.step_id: (
            outcome if reads_output(step, outcome.step_id) else outcome.without_output()
        ).context()
        for outcome in (*run_once_steps, *own_steps)
        if mentions(step, outcome.step_id)
    }
    return {**base, "target": target.context(), "steps": steps}


def run_once_context(
    base: Mapping[str, Any],
    per_target: Mapping[str, Iterable[StepOutcome]],
    run_once_steps: Iterable[StepOutcome],
) -> dict[str, Any]:
    """For a run-once step, a per-target step reads as `results` keyed by target name, with
    `failed` true when it failed anywhere."""
    steps: dict[str, Any] = {}
    for target_name, outcomes in per_target.items():
        for outcome in outcomes:
            entry = steps.setdefault(
                outcome.step_id,
                {"results": {}, "failed": False, "status": StepStatus.succeeded.value},
            )
            entry["results"][target_name] = outcome.context()
            if outcome.failed:
                entry["failed"] = True
                entry["status"] = StepStatus.failed.value
    steps.update({outcome.step_id: outcome.context() for outcome in run_once_steps})
    return {**base, "steps": steps}
