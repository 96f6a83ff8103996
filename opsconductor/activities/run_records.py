"""The run-record writer: the workflow reports step outcomes and run status here, and the API
reads them from PostgreSQL. Run as local activities on the orchestration worker: cheap (no task
queue round trip) and retried by Temporal if the database is briefly away.
"""

import uuid

from pydantic import BaseModel
from sqlalchemy import func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from opsconductor.db import unit_of_work
from opsconductor.jobspec.runtime import RunStatus, StepOutcome
from opsconductor.models.base import utcnow
from opsconductor.models.run import RUN_ONCE_TARGET, Run, RunStep

TERMINAL_STATUSES = frozenset({RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled})


class StepRecord(BaseModel):
    run_id: uuid.UUID
    outcome: StepOutcome


class RunStatusRecord(BaseModel):
    run_id: uuid.UUID
    status: RunStatus
    reason: str | None = None


class RunRecorder:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]):
        self._sessionmaker = sessionmaker

    @activity.defn(name="record-step")
    async def record_step(self, record: StepRecord) -> None:
        outcome = record.outcome
        values = {
            "status": outcome.status.value,
            "reason": outcome.reason,
            "exit_code": outcome.exit_code,
            "stdout": outcome.stdout,
            "stderr": outcome.stderr,
            "outputs": outcome.outputs,
            "attempts": outcome.attempts,
            "tolerated": outcome.tolerated,
            "started_at": outcome.started_at,
            "finished_at": outcome.finished_at,
        }
        statement = insert(RunStep).values(
            id=uuid.uuid4(),
            run_id=record.run_id,
            target=outcome.target or RUN_ONCE_TARGET,
            step_id=outcome.step_id,
            **values,
        )
        # Idempotent: a retried or replayed record overwrites the same row.
        statement = statement.on_conflict_do_update(
            index_elements=["run_id", "target", "step_id"], set_=values
        )
        async with unit_of_work(self._sessionmaker) as session:
            await session.exec(statement)

    @activity.defn(name="record-run-status")
    async def record_run_status(self, record: RunStatusRecord) -> None:
        now = utcnow()
        values: dict[str, object] = {
            "status": record.status.value,
            "reason": record.reason,
            # The first start is kept: leaving an approval wait must not move it.
            "started_at": func.coalesce(Run.started_at, now),
        }
        if record.status in TERMINAL_STATUSES:
            values["finished_at"] = now
        statement = update(Run).where(col(Run.id) == record.run_id).values(values)
        async with unit_of_work(self._sessionmaker) as session:
            await session.exec(statement)
