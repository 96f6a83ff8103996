"""B3: one http.request over 1,000 and 10,000 targets: time, the worker's peak memory, and the
largest workflow history (the run and its batch children `run-<id>-s<segment>-b<offset>`)."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

import httpx
import psutil
from temporalio.client import Client

from benchmarks.fleet import Row, plant_targets, run_job, save_job
from benchmarks.stack import Stack


class PeakMemory:
    """Samples a process's resident memory every 100 ms in a thread; the highest seen."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.peak = process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


async def largest_history(
    temporal: Client, run_id: str, targets: int, batch: int
) -> tuple[int, int]:
    """Most events and most bytes of any one history of the run (its segment is 1: one step)."""
    parent = f"run-{run_id}"
    ids = [parent, *(f"{parent}-s1-b{offset}" for offset in range(0, targets, batch))]
    events = size = 0
    for workflow_id in ids:
        info = (await temporal.get_workflow_handle(workflow_id).describe()).raw_description
        execution = info.workflow_execution_info
        events = max(events, execution.history_length)
        size = max(size, execution.history_size_bytes)
    return events, size


async def bench_b3(stack: Stack, temporal: Client, sizes: list[int]) -> list[Row]:
    rows: list[Row] = []
    port = urlsplit(stack.receiver_url).port or 80
    async with httpx.AsyncClient(timeout=300) as http:
        for size in sizes:
            prefix = f"b3-{size}"
            await plant_targets(stack, prefix, size, port)
            job_id = await save_job(
                http,
                stack,
                {
                    "name": f"b3-ping-{size}",
                    "targets": {"tags": {"fleet": prefix}},
                    "strategy": {"concurrency": 200},
                    "steps": [
                        {
                            "id": "ping",
                            "action": "http.request",
                            "with": {"url": "http://{{ target.address }}:{{ target.port }}/b3"},
                        }
                    ],
                },
            )
            before = stack.cpu_seconds()
            with PeakMemory(stack.processes["worker"]) as memory:
                run_id, seconds = await run_job(http, stack, temporal, job_id)
            after = stack.cpu_seconds()
            events, size_bytes = await largest_history(
                temporal, run_id, size, stack.settings.run_batch_size
            )
            started = time.perf_counter()
            detail = await http.get(stack.api(f"/runs/{run_id}"), headers=stack.headers)
            detail_seconds = time.perf_counter() - started
            detail.raise_for_status()
            case = f"{size} targets"
            rows += [
                Row("B3", case, "wall", seconds, aim="completes"),
                Row("B3", case, "targets/s", size / seconds, unit="1/s"),
                Row("B3", case, "peak worker RSS", memory.peak / 2**20, unit="MiB"),
                Row("B3", case, "largest history events", events, unit="events"),
                Row("B3", case, "largest history size", size_bytes / 2**10, unit="KiB"),
                Row("B3", case, "GET /runs/{id}", detail_seconds),
                Row("B3", case, "GET /runs/{id} body", len(detail.content) / 2**20, unit="MiB"),
            ]
            for name in stack.processes:
                rows.append(Row("B3", case, f"CPU s {name}", after[name] - before[name]))
    return rows
