"""The worker moves what it built at start (modules, workers, the SDK's sandbox) out of the
collector's reach before it serves, so the full collections that steps' allocations trigger
walk only what steps allocate (docs/engine.md, "The worker's per-target cost")."""

import gc
from collections.abc import Sequence

import pytest
from temporalio.worker import Worker

from opsconductor.config import Settings
from opsconductor.contracts.queues import TaskQueue
from opsconductor.worker import main as worker_main

pytestmark = pytest.mark.integration


async def test_the_worker_freezes_what_it_built_before_serving(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen: list[int] = []

    async def serve(workers: list[Worker], queues: Sequence[TaskQueue], _: Settings) -> None:
        # Where the worker would start polling: the count of objects the collector skips.
        frozen.append(gc.get_freeze_count())

    monkeypatch.setattr(worker_main, "_serve", serve)
    assert gc.get_freeze_count() == 0
    try:
        await worker_main.run_workers(settings, [TaskQueue.ssh])
    finally:
        gc.unfreeze()
    # Every object alive when the workers were built: the modules alone are tens of thousands.
    assert frozen[0] > 10_000
