"""B5: output stays out of history. Three `ssh.command` steps, each printing 1 MiB, over 200
targets on the loopback sshd (`tests/fixtures/loud_job.py`, as the 50-target integration test
`tests/integration/test_bounded_history.py`): the run succeeds, and its largest workflow history
(fetch_history, serialized) stays small whatever the commands print."""

from __future__ import annotations

import httpx
from sqlalchemy import text
from temporalio.client import Client

from benchmarks.fleet import Row, plant_targets, run_job, save_job, ssh_key_credential
from benchmarks.stack import Stack
from opsconductor.db import create_engine, create_sessionmaker
from tests.fixtures.loud_job import loud_job, run_workflow_ids, serialized_history_sizes

_LOGGED = text(
    "SELECT count(*), coalesce(sum(length(line) + 1), 0) FROM run_logs WHERE run_id = :id"
)


async def _logged(stack: Stack, run_id: str) -> tuple[int, int]:
    """Lines and bytes (newlines included) of the run's log."""
    engine = create_engine(stack.settings)
    try:
        async with create_sessionmaker(engine)() as session:
            lines, size = (await session.execute(_LOGGED, {"id": run_id})).one()
            return int(lines), int(size)
    finally:
        await engine.dispose()


async def bench_b5(stack: Stack, temporal: Client, sizes: list[int]) -> list[Row]:
    rows: list[Row] = []
    async with httpx.AsyncClient(timeout=60) as http:
        credential_id = await ssh_key_credential(http, stack, "bench-b5-key")
        for size in sizes:
            fleet = f"b5-{size}"
            await plant_targets(
                stack,
                fleet,
                size,
                stack.sshd.port,
                credential_id=credential_id,
                host_key_fingerprint=stack.sshd.host_key_fingerprint,
            )
            job_id = await save_job(
                http, stack, loud_job(f"b5-loud-{size}", {"tags": {"fleet": fleet}})
            )
            run_id, seconds = await run_job(http, stack, temporal, job_id)
            workflows = run_workflow_ids(run_id, size, stack.settings.run_batch_size)
            histories = await serialized_history_sizes(temporal, workflows)
            lines, logged = await _logged(stack, run_id)
            case = f"{size} targets x 3 steps x 1 MiB"
            rows += [
                Row("B5", case, "wall", seconds, aim="completes"),
                Row(
                    "B5",
                    case,
                    "largest history",
                    max(histories.values()) / 2**10,
                    unit="KiB",
                    aim="< 2 MiB",
                ),
                Row("B5", case, "run log", logged / 2**20, unit="MiB"),
                Row("B5", case, "run log lines", lines, unit="lines"),
            ]
    return rows
