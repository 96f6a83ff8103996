"""The run-record writer: the workflow reports step outcomes and run status here, and the API
reads them from PostgreSQL. Run as local activities on the orchestration worker: cheap (no task
queue round trip) and retried by Temporal if the database is briefly away, for at most
`RECORD_GIVE_UP` (opsconductor.contracts.runs); then the run fails with the database's error.
"""

import uuid
from typing import Any

from sqlalchemy import Table, func, or_, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.contracts import implements
from opsconductor.contracts import runs as contract
from opsconductor.contracts.runs import (
    TERMINAL_RUN_STATUSES,
    RunClosing,
    RunRecord,
    RunStatusRecord,
    StepOutcome,
    StepRecord,
    TargetBatch,
)
from opsconductor.contracts.steps import StepRequest, StepResult, TargetSnapshot
from opsconductor.db import execute_many, unit_of_work
from opsconductor.models.base import utcnow
from opsconductor.models.run import RUN_ONCE_TARGET, Run, RunStep
from opsconductor.services import run_records
from opsconductor.text import storable, storable_json, storable_or_none

_TARGET_BATCH = text(
    """
    SELECT snapshot FROM runs, jsonb_array_elements(runs.targets) WITH ORDINALITY AS t(snapshot, n)
    WHERE runs.id = :run_id AND n > :offset AND n <= :offset + :count
    ORDER BY n
    """
)


class RunRecorder:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]):
        self._sessionmaker = sessionmaker

    @implements(contract.record_step)
    async def record_step(self, record: StepRecord) -> None:
        async with unit_of_work(self._sessionmaker) as session:
            await session.exec(_step_upsert(record.run_id, record.outcome))

    @implements(contract.load_target_batch)
    async def load_target_batch(self, batch: TargetBatch) -> list[TargetSnapshot]:
        async with self._sessionmaker() as session:
            connection = await session.connection()
            rows = await connection.execute(
                _TARGET_BATCH,
                {"run_id": batch.run_id, "offset": batch.offset, "count": batch.count},
            )
            return [TargetSnapshot.model_validate(row.snapshot) for row in rows]

    @implements(contract.close_run_steps)
    async def close_run_steps(self, closing: RunClosing) -> None:
        async with unit_of_work(self._sessionmaker) as session:
            await run_records.close_steps(session, closing)

    @implements(contract.record_run_status)
    async def record_run_status(self, record: RunStatusRecord) -> None:
        async with unit_of_work(self._sessionmaker) as session:
            await session.exec(_status_update(record))

    @implements(contract.record_run)
    async def record_run(self, record: RunRecord) -> None:
        async with unit_of_work(self._sessionmaker) as session:
            for outcome in record.steps:
                await session.exec(_step_upsert(record.run_id, outcome))
            if record.closing is not None:
                await run_records.close_steps(session, record.closing)
            if record.status is not None:
                await session.exec(_status_update(record.status))


def _step_upsert(run_id: uuid.UUID, outcome: StepOutcome) -> Any:
    output = _output_columns(outcome.stdout, outcome.stderr, outcome.all_outputs())
    values = {
        "status": outcome.status.value,
        "reason": storable_or_none(outcome.reason),
        "exit_code": outcome.exit_code,
        "attempts": outcome.attempts,
        "tolerated": outcome.tolerated,
        "started_at": outcome.started_at,
        "finished_at": outcome.finished_at,
    }
    statement = insert(RunStep).values(
        id=uuid.uuid4(),
        run_id=run_id,
        target=outcome.target or RUN_ONCE_TARGET,
        step_id=outcome.step_id,
        **output,
        **values,
    )
    # Idempotent: a retried or replayed record overwrites the same row. Output the step's
    # worker stored itself is left as it wrote it (the outcome carries at most a copy).
    return statement.on_conflict_do_update(
        index_elements=["run_id", "target", "step_id"],
        set_=values if outcome.output_recorded else {**values, **output},
    )


def _status_update(record: RunStatusRecord) -> Any:
    now = utcnow()
    values: dict[str, object] = {
        "status": record.status.value,
        "reason": storable_or_none(record.reason),
        # The first start is kept: leaving an approval wait must not move it.
        "started_at": func.coalesce(Run.started_at, now),
    }
    statement = update(Run).where(col(Run.id) == record.run_id)
    if record.status in TERMINAL_RUN_STATUSES:
        values["finished_at"] = now
    else:
        # An ended run is never reopened: one cancelled before its workflow started
        # (services/runs.cancel_run) stays cancelled.
        statement = statement.where(col(Run.status).not_in(TERMINAL_RUN_STATUSES))
    return statement.values(values)


def _output_columns(stdout: str, stderr: str, outputs: dict[str, Any]) -> dict[str, Any]:
    # Whatever a command printed or a plugin returned is stored: NUL and lone surrogates,
    # which PostgreSQL refuses, are escaped (opsconductor.text), never a failed write.
    return {
        "stdout": storable(stdout),
        "stderr": storable(stderr),
        "outputs": storable_json(outputs),
    }


def _step_values(request: StepRequest, **values: Any) -> dict[str, Any]:
    target = request.target.name if request.target else RUN_ONCE_TARGET
    return {
        "id": uuid.uuid4(),
        "run_id": request.run_id,
        "target": target,
        "step_id": request.step_id,
        **values,
    }


# A worker's write never reopens a record the workflow already closed (a cancelled run's steps,
# closed while an attempt was still starting).
# (Not `in_`: its list is an "expanding" parameter, which executemany does not take.)
_STILL_OPEN = or_(col(RunStep.status) == "pending", col(RunStep.status) == "running")
_STEP_KEY = ["run_id", "target", "step_id"]
_RUN_STEPS: Table = RunStep.__table__  # type: ignore[attr-defined]


def _step_upsert_many(updated: list[str], where: Any) -> Any:
    """An upsert of run steps, run per row (`execute_many`): compiled once for the process."""
    statement = insert(_RUN_STEPS)
    return statement.on_conflict_do_update(
        index_elements=_STEP_KEY,
        set_={name: statement.excluded[name] for name in updated},
        where=where,
    )


# The first attempt's start is the step's start.
_MARK_RUNNING = _step_upsert_many(["status", "attempts"], _STILL_OPEN)
_OUTPUT_COLUMNS = ["exit_code", "stdout", "stderr", "outputs"]
_STORE_OUTPUT = _step_upsert_many(_OUTPUT_COLUMNS, None)
_STORE_FINAL = _step_upsert_many(
    [*_OUTPUT_COLUMNS, "status", "attempts", "finished_at"], _STILL_OPEN
)


async def mark_step_running(
    sessionmaker: async_sessionmaker[AsyncSession], request: StepRequest, attempt: int
) -> None:
    """Run by the step's worker as an attempt starts (`StepRequest.worker_records_state`)."""
    await mark_steps_running(sessionmaker, [(request, attempt)])


async def mark_steps_running(
    sessionmaker: async_sessionmaker[AsyncSession], steps: list[tuple[StepRequest, int]]
) -> None:
    """`mark_step_running` for several steps (a chunk's targets), in one statement."""
    if not steps:
        return
    now = utcnow()
    rows = [
        _step_values(request, status="running", attempts=attempt, started_at=now, tolerated=False)
        for request, attempt in steps
    ]
    async with unit_of_work(sessionmaker) as session:
        await execute_many(session, _MARK_RUNNING, rows)


async def store_step_output(
    sessionmaker: async_sessionmaker[AsyncSession],
    request: StepRequest,
    result: StepResult,
    succeeded: bool = False,
) -> None:
    """Run by the step's worker: its last attempt's output, on the step's record, and with
    `succeeded` (a successful step whose worker records its state) the final state too.
    Without it the step is still open: the workflow records its end."""
    await store_steps_output(sessionmaker, [(request, result)], succeeded)


async def store_steps_output(
    sessionmaker: async_sessionmaker[AsyncSession],
    steps: list[tuple[StepRequest, StepResult]],
    succeeded: bool = False,
) -> None:
    """`store_step_output` for several steps (a chunk's targets), in one statement."""
    if not steps:
        return
    now = utcnow()
    rows = []
    for request, result in steps:
        output = {
            "exit_code": result.exit_code,
            **_output_columns(result.stdout, result.stderr, result.all_outputs()),
        }
        # The step's attempt, counted across shutdown re-runs (the result counts the
        # activity's).
        attempts = request.attempt(result.attempt)
        final = {"status": "succeeded", "finished_at": now} if succeeded else {}
        inserted = {"status": "running", "attempts": attempts, "tolerated": False}
        rows.append(_step_values(request, **{**inserted, **output, **final}))
    async with unit_of_work(sessionmaker) as session:
        await execute_many(session, _STORE_FINAL if succeeded else _STORE_OUTPUT, rows)
