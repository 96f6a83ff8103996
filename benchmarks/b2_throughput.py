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
import psutil
from temporalio.client import Client

from benchmarks.bare_temporal import TASK_QUEUE, BareWorkflow
from benchmarks.fleet import Row, percentile, run_job, save_job
from benchmarks.stack import Stack, cached_bytecode_environment, process_tree_cpu

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

        bare_ids: list[str] = []

        async def bare_one() -> float:
            started = time.perf_counter()
            bare_ids.append(f"bare-{uuid.uuid4()}")
            await plain.execute_workflow(
                BareWorkflow.run, url, id=bare_ids[-1], task_queue=TASK_QUEUE
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

            workflow_ids: list[str] = []

            async def ours_one() -> float:
                run_id, seconds = await run_job(http, stack, temporal, job_id)
                workflow_ids.append(f"run-{run_id}")
                return seconds

            await _drive(WARMUP, inflight, ours_one)
            # A worker that cannot start would leave the runs waiting for ever.
            await asyncio.wait_for(_drive(WARMUP, inflight, bare_one), timeout=120)
            before = stack.cpu_seconds()
            ours = await _drive(runs, inflight, ours_one)
            after = stack.cpu_seconds()
            # The bare side's CPU: its worker, and the same shared services.
            bare_process = psutil.Process(bare_worker.pid)
            bare_before = {**stack.cpu_seconds(), "worker": process_tree_cpu(bare_process)}
            bare = await _drive(runs, inflight, bare_one)
            bare_after = {**stack.cpu_seconds(), "worker": process_tree_cpu(bare_process)}
            events = (
                await _events(temporal, workflow_ids[-1]),
                await _events(plain, bare_ids[-1]),
            )
    finally:
        bare_worker.terminate()
        await bare_worker.wait()
        log.close()
    rows = _rows(f"{runs} runs, {inflight} in flight", ours, bare)
    for name in stack.processes:
        rows.append(Row("B2", "", f"CPU s {name}", after[name] - before[name]))
    # Per run, against the bare side's (no API; PostgreSQL idles meanwhile): on a saturated
    # machine, runs/s is the cores over the sum of these.
    for name in [*stack.processes, "total"]:
        ours_ms = _per_run_ms(before, after, name, runs)
        bare_ms = _per_run_ms(bare_before, bare_after, name, runs)
        rows.append(Row("B2", "", f"CPU/run {name}", ours_ms, bare_ms, "bare Temporal", "ms"))
    rows.append(Row("B2", "", "history events/run", *events, "bare Temporal", "events"))
    ceiling = _ceiling(before, after, bare_before, bare_after, runs)
    rows.append(Row("B2", "", "ratio ceiling", ceiling, unit="ratio"))
    return rows


def _ceiling(
    before: dict[str, float],
    after: dict[str, float],
    bare_before: dict[str, float],
    bare_after: dict[str, float],
    runs: int,
) -> float:
    """The best ratio a run started through the API could reach on a machine whose cores are
    saturated (runs/s is then the cores over the CPU per run): one whose worker and Temporal
    cost exactly the bare workflow's, plus the API's request and its PostgreSQL transactions,
    measured. benchmarks/README.md, "B2's bound"."""
    bare = _per_run_ms(bare_before, bare_after, "total", runs)
    api_and_database = sum(_per_run_ms(before, after, name, runs) for name in ("api", "postgres"))
    return bare / (bare + api_and_database)


def _per_run_ms(before: dict[str, float], after: dict[str, float], name: str, runs: int) -> float:
    if name == "total":
        return sum(after[key] - before[key] for key in after) * 1000 / runs
    return (after[name] - before[name]) * 1000 / runs if name in after else 0.0


async def _events(client: Client, workflow_id: str) -> int:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return len(history.events)
