"""The scheduled-run contract: what a Temporal schedule starts at each fire, and the activity
that stores the fire's run through the same service as the API."""

import uuid

from pydantic import BaseModel

from opsconductor.contracts import activity_contract
from opsconductor.contracts.runs import RunDisplay, RunRequest

SCHEDULED_RUN_WORKFLOW = "scheduled-run"
# Fixed, so the API can name a fire's run from the schedule's recent actions alone.
_RUN_IDS = uuid.UUID("0b5e7a52-8f0c-4f57-9d0e-2f5b8b7f3c11")


def scheduled_run_id(workflow_id: str, first_execution_run_id: str) -> uuid.UUID:
    """The run a fire creates. The execution's run id is part of it: a backfill may start a
    workflow with the same id again, and that must be a new run."""
    return uuid.uuid5(_RUN_IDS, f"{workflow_id}/{first_execution_run_id}")


# A schedule row's Temporal schedule, and the workflow id each of its fires starts with.
TEMPORAL_SCHEDULE_PREFIX = "schedule-"


def temporal_schedule_id(schedule_id: uuid.UUID) -> str:
    return f"{TEMPORAL_SCHEDULE_PREFIX}{schedule_id}"


def fire_workflow_id(schedule_id: uuid.UUID) -> str:
    return f"scheduled-run-{schedule_id}"


class ScheduledFire(BaseModel):
    """The input the Temporal schedule gives each `scheduled-run` workflow."""

    schedule_id: uuid.UUID


class ScheduledRunStart(BaseModel):
    schedule_id: uuid.UUID
    run_id: uuid.UUID


class ScheduledRunPrepared(BaseModel):
    """The run to start, or why there is none (a refusal is stored as a failed run)."""

    request: RunRequest | None = None
    reason: str | None = None
    # What the Temporal UI shows for the run; None in histories recorded before it existed.
    display: RunDisplay | None = None


@activity_contract
async def create_scheduled_run(start: ScheduledRunStart) -> ScheduledRunPrepared:
    """Stores the fire's run (idempotent by run id); activities/scheduled_runs.py."""
    raise NotImplementedError("a contract: the orchestration worker registers it")
