"""What a step activity receives and answers: one step on one target (or once for the run).

Every step activity (core, library body or plugin) takes a `StepRequest` and returns a
`StepResult`; the activity's name comes from the action catalog (jobspec/actions.py), since
plugins add actions at run time.
"""

import uuid
from typing import Any

from pydantic import BaseModel, Field


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


class StepResult(BaseModel):
    """What a step activity returns, or attaches to its failure so the last attempt's output
    is still shown."""

    attempt: int = 1
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    outputs: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
