"""B2: runs of a one-step job (http.request to the loopback receiver), started through the API,
against a bare Temporal workflow with one activity on the same dev server. Both are driven the
same way: a fixed number of runs in flight, each timed from its request to its end."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

import httpx
from temporalio.client import Client

from benchmarks.bare_temporal import TASK_QUEUE, BareWorkflow
from benchmarks.fleet import Row, percentile, run_job, save_job
from benchmarks.stack import Stack, cached_bytecode_environment

WARMUP = 10


async def _drive(
    count: int, inflight: int, one: Callable[[], Awaitable[float]]
) -> tuple[float, list[float]]:
    """Total seconds and each run's latency, `inflight` runs at a time."""
    latencies: list[float] = []
    remaining = iter(range(count))

    async def lane() -> None:
        for _ in remaining:
            latencies.append(await one())

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(inflight)))
    return time.perf_counter() - started, latencies


def _rows(case: str, ours: tuple[float, list[float]], bare: tuple[float, list[float]]) -> list[Row]:
    count = len(ours[1])
    return [
        Row(
            "B2",
            case,
            "runs/s",
            count / ours[0],
            count / bare[0],
            "bare Temporal",
            "runs/s",
            "≥ 0.8",
        ),
        Row("B2", case, "p50", percentile(ours[1], 0.5), percentile(bare[1], 0.5), "bare Temporal"),
        Row(
            "B2", case, "p99", percentile(ours[1], 0.99), percentile(bare[1], 0.99), "bare Temporal"
        ),
    ]


async def bench_b2(stack: Stack, temporal: Client, runs: int, inflight: int) -> list[Row]:
    url = f"{stack.receiver_url}/b2"
    bare_address = stack.settings.temporal_address
    assert bare_address is not None
    log = (stack.workdir / "logs" / "bare-worker.log").open("ab")
    bare_worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.bare_temporal",
        bare_address,
        stdout=log,
        stderr=log,
        env=cached_bytecode_environment(stack.workdir, dict(os.environ)),
    )
    try:
        plain = await Client.connect(bare_address)

        async def bare_one() -> float:
            started = time.perf_counter()
            await plain.execute_workflow(
                BareWorkflow.run, url, id=f"bare-{uuid.uuid4()}", task_queue=TASK_QUEUE
            )
            return time.perf_counter() - started

        async with httpx.AsyncClient(
            timeout=60, limits=httpx.Limits(max_connections=inflight)
        ) as http:
            job_id = await save_job(
                http,
                stack,
                {
                    "name": "b2-ping",
                    "steps": [
                        {
                            "id": "ping",
                            "action": "http.request",
                            "run_once": True,
                            "with": {"url": url},
                        }
                    ],
                },
            )

            async def ours_one() -> float:
                _, seconds = await run_job(http, stack, temporal, job_id)
                return seconds

            await _drive(WARMUP, inflight, ours_one)
            # A worker that cannot start would leave the runs waiting for ever.
            await asyncio.wait_for(_drive(WARMUP, inflight, bare_one), timeout=120)
            before = stack.cpu_seconds()
            ours = await _drive(runs, inflight, ours_one)
            after = stack.cpu_seconds()
            bare = await _drive(runs, inflight, bare_one)
    finally:
        bare_worker.terminate()
        await bare_worker.wait()
        log.close()
    rows = _rows(f"{runs} runs, {inflight} in flight", ours, bare)
    for name in stack.processes:
        rows.append(Row("B2", "", f"CPU s {name}", after[name] - before[name]))
    return rows
