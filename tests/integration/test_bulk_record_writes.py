"""A chunk's bulk writes (its steps' `running` and final records, its run log, its credential
access rows) are one executemany of a statement compiled once per process, whatever the number
of rows: SQLAlchemy's multi-row `VALUES` built a bind parameter per value and compiled again
for every new row count (benchmarks/README.md, "Issue #19: the run's fixed cost")."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlmodel import col, select

from opsconductor.activities.run_log import RunLogStream, RunLogWriter
from opsconductor.activities.run_records import mark_steps_running, store_steps_output
from opsconductor.contracts.steps import StepRequest, StepResult, TargetSnapshot
from opsconductor.db import unit_of_work
from opsconductor.models.base import utcnow
from opsconductor.models.credential import AccessOutcome, AccessPurpose
from opsconductor.models.run import RunLogLine, RunStep
from opsconductor.services.vault import AccessRow, record_accesses
from tests.fixtures.http_receiver import HttpReceiver
from tests.identity_helpers import Account
from tests.run_helpers import create_job, notify_job, plant_run
from tests.sql_helpers import each_statement

pytestmark = pytest.mark.integration


@contextmanager
def inserts_into(app: FastAPI, table: str) -> Iterator[list[tuple[int, bool]]]:
    """Per INSERT into `table`: how many rows it carried, and whether its compiled form came
    from SQLAlchemy's cache."""
    seen: list[tuple[int, bool]] = []

    def note(_: Any, __: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.startswith(f"INSERT INTO {table} "):
            assert isinstance(context, DefaultExecutionContext)
            rows = len(parameters) if many else 1
            seen.append((rows, context.cache_hit == context.dialect.CACHE_HIT))

    with each_statement(app, note):
        yield seen


def _requests(run_id: uuid.UUID, names: list[str], step_id: str) -> list[StepRequest]:
    return [
        StepRequest(
            run_id=run_id,
            step_id=step_id,
            action="ssh.command",
            with_={},
            context={},
            target=TargetSnapshot(
                id=uuid.uuid4(), name=name, address="192.0.2.1", port=22, protocol="ssh"
            ),
        )
        for name in names
    ]


async def test_bulk_writes_are_one_executemany_compiled_once_whatever_their_row_count(
    app: FastAPI, http: httpx.AsyncClient, operator: Account, http_receiver: HttpReceiver
) -> None:
    job_id = await create_job(http, operator, notify_job(http_receiver))
    run_id = uuid.UUID(await plant_run(app, job_id, 12))
    sessionmaker = app.state.sessionmaker
    names = [f"t{index:03}" for index in range(12)]
    step_ids = [f"bulk-{uuid.uuid4().hex[:8]}" for _ in range(4)]

    # A warm-up of each (two rows: one row is a plain execute, compiled apart), so the first
    # compilation in this process is out of the count.
    warm = _requests(run_id, names[:2], step_ids[0])
    await mark_steps_running(sessionmaker, [(request, 1) for request in warm])
    await store_steps_output(
        sessionmaker, [(request, StepResult(exit_code=0)) for request in warm], succeeded=True
    )
    with inserts_into(app, "run_steps") as steps:
        for step_id, count in zip(step_ids[1:], (2, 5, 11), strict=True):
            requests = _requests(run_id, names[:count], step_id)
            await mark_steps_running(sessionmaker, [(request, 1) for request in requests])
            results = [(request, StepResult(exit_code=0, stdout="ok")) for request in requests]
            await store_steps_output(sessionmaker, results, succeeded=True)
    # One statement per call, its rows all in it, and never compiled again.
    assert steps == [(2, True), (2, True), (5, True), (5, True), (11, True), (11, True)]

    async with sessionmaker() as session:
        stored = (
            await session.exec(
                select(RunStep.status).where(
                    RunStep.run_id == run_id, RunStep.step_id == step_ids[3]
                )
            )
        ).all()
    assert list(stored) == ["succeeded"] * 11

    log_lines: list[list[tuple[int, bool]]] = []
    for lines in (2, 3, 7):
        with inserts_into(app, "run_logs") as inserted:
            async with (
                RunLogWriter(sessionmaker, run_id) as writer,
                RunLogStream(
                    sessionmaker, run_id, step_ids[1], names[0], 1, writer=writer
                ) as stream,
            ):
                stream.write("stdout", "".join(f"line {n}\n" for n in range(lines)))
        log_lines.append(inserted)
    assert [[rows for rows, _ in inserts] for inserts in log_lines] == [[2], [3], [7]]
    assert [hit for inserts in log_lines[1:] for _, hit in inserts] == [True, True]
    async with sessionmaker() as session:
        logged = await session.exec(
            select(RunLogLine.line)
            .where(RunLogLine.run_id == run_id, RunLogLine.step_id == step_ids[1])
            .order_by(col(RunLogLine.id))
        )
        assert list(logged)[-7:] == [f"line {n}" for n in range(7)]

    def accesses(count: int) -> list[AccessRow]:
        return [
            {
                "id": uuid.uuid4(),
                "credential_id": uuid.uuid4(),
                "credential_name": "bulk",
                "purpose": AccessPurpose.run_step,
                "run_id": run_id,
                "step_id": None,
                "target": name,
                "worker_host": "test",
                "accessed_at": utcnow(),
                "outcome": AccessOutcome.revealed,
                "requester": None,
            }
            for name in names[:count]
        ]

    async with unit_of_work(sessionmaker) as session:
        await record_accesses(session, accesses(2))
    with inserts_into(app, "credential_access") as access_rows:
        for count in (4, 9):
            async with unit_of_work(sessionmaker) as session:
                await record_accesses(session, accesses(count))
    assert access_rows == [(4, True), (9, True)]
