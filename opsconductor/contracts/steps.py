"""What a step activity receives and answers: one step on one target (or once for the run).

Every step activity (core, library body or plugin) takes a `StepRequest` and returns a
`StepResult`; the activity's name comes from the action catalog (jobspec/actions.py), since
plugins add actions at run time.
"""

import uuid
from typing import Any

from pydantic import BaseModel, Field

# The failure type of a step attempt cut off because its worker was stopping (a deploy), not
# because the step failed: the workflow runs the step again on another worker, outside the
# step's retry policy (workflows/step_execution.py, worker/shutdown.py).
WORKER_SHUTDOWN = "WorkerShutdown"


class TargetSnapshot(BaseModel):
    """A target as it was when the run started; later edits do not change a running run."""

    id: uuid.UUID
    name: str
    address: str
    port: int
    protocol: str
    credential_id: uuid.UUID | None = None
    os: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    vars: dict[str, Any] = Field(default_factory=dict)

    def context(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"credential_id"})


class StepRequest(BaseModel):
    """One step on one target (or once for the run), as sent to a protocol activity.

    `with_` is still a template: the activity renders it, so `secret('name')` is resolved on
    the worker and never enters history.
    """

    run_id: uuid.UUID
    step_id: str
    action: str
    with_: dict[str, Any]
    context: dict[str, Any]
    target: TargetSnapshot | None = None
    credential: str | None = None
    # The number of this activity's first attempt: 1, or one more than the attempt a worker
    # shutdown cut off. The run log numbers each line's attempt from it.
    first_attempt: int = Field(default=1, ge=1)

    def attempt(self, activity_attempt: int) -> int:
        """The step's attempt number, counted across shutdown re-runs, of the activity's
        own attempt `activity_attempt` (Temporal's, which starts at 1 in every re-run)."""
        return self.first_attempt + activity_attempt - 1


class StepResult(BaseModel):
    """What a step activity returns, or attaches to its failure so the last attempt's output
    is still shown."""

    attempt: int = 1
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    outputs: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
