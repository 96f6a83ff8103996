"""A serving process (a worker, an API process) moves what it built at start (modules, the
app or the workers, the SDK's sandbox) out of the collector's reach before it serves, and
raises the collector's thresholds, so the collections that requests' and steps' allocations
trigger are rare and walk only what those allocated (docs/engine.md, "The worker's per-target
cost"; docs/deployment.md, "API processes")."""

import gc
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import uvicorn
from temporalio.worker import Worker

from opsconductor.api import serve as api_serve
from opsconductor.config import Settings
from opsconductor.contracts.queues import TaskQueue
from opsconductor.processes import SERVING_GC_THRESHOLDS
from opsconductor.worker import main as worker_main

pytestmark = pytest.mark.integration


@pytest.fixture
def collector_restored() -> Iterator[list[tuple[int, tuple[int, int, int]]]]:
    """Where each test records (frozen objects, thresholds) as the process would start serving;
    the test process's collector is put back afterwards."""
    assert gc.get_freeze_count() == 0
    thresholds = gc.get_threshold()
    seen: list[tuple[int, tuple[int, int, int]]] = []
    try:
        yield seen
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


async def test_the_worker_settles_its_collector_before_serving(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    collector_restored: list[tuple[int, tuple[int, int, int]]],
) -> None:
    async def serve(workers: list[Worker], queues: Sequence[TaskQueue], _: Settings) -> None:
        # Where the worker would start polling.
        collector_restored.append((gc.get_freeze_count(), gc.get_threshold()))

    monkeypatch.setattr(worker_main, "_serve", serve)
    await worker_main.run_workers(settings, [TaskQueue.ssh])
    # Every object alive when the workers were built: the modules alone are tens of thousands.
    [(frozen, thresholds)] = collector_restored
    assert frozen > 10_000
    assert thresholds == SERVING_GC_THRESHOLDS


@pytest.mark.parametrize("processes", [1, 2])
def test_an_api_process_settles_its_collector_before_serving(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    collector_restored: list[tuple[int, tuple[int, int, int]]],
    processes: int,
) -> None:
    def run(app: Any, **_: Any) -> None:
        if processes > 1:
            # Each of uvicorn's serving processes builds its app from the environment.
            assert app == f"{api_serve.__name__}:worker_app"
            monkeypatch.setattr(api_serve, "end_with_parent", lambda: None)
            monkeypatch.setattr(api_serve, "Settings", lambda: settings)
            monkeypatch.setattr(api_serve, "configure_logging", lambda *_, **__: None)
            api_serve.worker_app()
        collector_restored.append((gc.get_freeze_count(), gc.get_threshold()))

    monkeypatch.setattr(uvicorn, "run", run)
    api_serve.serve(settings, processes)
    [(frozen, thresholds)] = collector_restored
    assert frozen > 10_000
    assert thresholds == SERVING_GC_THRESHOLDS
