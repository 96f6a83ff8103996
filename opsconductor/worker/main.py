"""Runs one Temporal worker per chosen queue in this process, and stops them gracefully."""

import asyncio
import importlib.util
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from opsconductor.config import Settings
from opsconductor.contracts.queues import TaskQueue
from opsconductor.db import create_engine, create_sessionmaker
from opsconductor.processes import exit_now, settle_for_serving
from opsconductor.temporal.client import connect, worker_runtime
from opsconductor.worker.health import RESTART_EXIT_CODE, watching_evictions
from opsconductor.worker.registry import WorkerResources, activities_for, workflows_for
from opsconductor.worker.shutdown import StepShutdownInterceptor

logger = logging.getLogger(__name__)

HEARTBEAT_THROTTLE = timedelta(seconds=2)
# Past the activities' grace, for the SDK to hand back their outcomes before the process goes.
SHUTDOWN_MARGIN_SECONDS = 5

# Templates are rendered in workflows; Jinja is pure computation, so it is shared with the
# sandbox rather than re-imported (and re-checked) for every workflow run.
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("jinja2", "markupsafe")
)


def build_workers(
    client: Client, queues: Sequence[TaskQueue], resources: WorkerResources
) -> list[Worker]:
    return [
        Worker(
            client,
            task_queue=queue.value,
            workflows=workflows_for(queue),
            activities=activities_for(queue, resources),
            # Told to stop, a worker polls no more at once and lets running activities go on
            # this long; a step still running then is re-run on another worker (shutdown.py).
            graceful_shutdown_timeout=resources.settings.worker_shutdown_grace,
            interceptors=[StepShutdownInterceptor()],
            workflow_runner=WORKFLOW_RUNNER,
            # Cancellation reaches an activity with its next heartbeat sent to the server;
            # a short throttle makes a cancelled run stop its remote commands within seconds.
            max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
            default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        )
        for queue in queues
    ]


def uncompiled_workflow_modules(queues: Sequence[TaskQueue]) -> list[str]:
    """The modules of the workflows served on `queues` that have no compiled bytecode next to
    (or under `sys.pycache_prefix` for) their source. The sandbox imports a workflow's module
    anew for every workflow run; without bytecode each run compiles it from source (checked
    once the worker has imported them: an import that could write the bytecode has done so)."""
    names = sorted({workflow.__module__ for queue in queues for workflow in workflows_for(queue)})
    missing = []
    for name in names:
        source = sys.modules[name].__file__
        if source is not None and not Path(importlib.util.cache_from_source(source)).exists():
            missing.append(name)
    return missing


async def run_workers(settings: Settings, queues: Sequence[TaskQueue]) -> None:
    client = await connect(settings, runtime=worker_runtime(settings))
    engine = create_engine(settings)
    resources = WorkerResources(settings, create_sessionmaker(engine))
    workers = build_workers(client, queues, resources)
    if uncompiled := uncompiled_workflow_modules(queues):
        logger.warning(
            "workflow modules without compiled bytecode: every workflow run compiles them "
            "from source; run `python -m compileall` over the package (docs/engine.md, "
            '"A run\'s round trips")',
            extra={"modules": uncompiled},
        )
    # Everything imported and built so far lives as long as the process: moved out of the
    # collector's reach, so its full collections walk what steps allocate, not the ~270,000
    # objects of the worker's modules (docs/engine.md, "The worker's per-target cost").
    settle_for_serving()
    try:
        await _serve(workers, queues, settings)
    finally:
        await engine.dispose()


async def _serve(workers: list[Worker], queues: Sequence[TaskQueue], settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    with watching_evictions() as evictions:
        logger.info("worker started", extra={"queues": [queue.value for queue in queues]})
        running = [asyncio.create_task(worker.run()) for worker in workers]
        stopped = asyncio.create_task(stop.wait())
        stuck = asyncio.create_task(evictions.stuck.wait())
        done, _ = await asyncio.wait(
            [stopped, stuck, *running], return_when=asyncio.FIRST_COMPLETED
        )
        stopped.cancel()
        stuck.cancel()
        if stuck in done:
            logger.error(
                "a workflow could not be evicted; this worker restarts so that its run moves on",
                extra={"run_id": evictions.run_id},
            )
        grace = settings.worker_shutdown_grace.total_seconds()
        logger.info(
            "worker stopping; waiting for running activities", extra={"grace_seconds": grace}
        )
        shutdown = asyncio.gather(
            *(worker.shutdown() for worker in workers), return_exceptions=True
        )
        if stuck in done:
            # The stuck eviction never completes, and the SDK's shutdown waits for it: running
            # activities get their grace, then the process goes regardless.
            # Nor can the event loop be closed around it: the process ends here.
            await asyncio.wait([shutdown], timeout=grace + SHUTDOWN_MARGIN_SECONDS)
            exit_now(RESTART_EXIT_CODE)
        await shutdown
        outcomes = await asyncio.gather(*running, return_exceptions=True)
    logger.info("worker stopped")
    if stopped not in done:
        # A worker ended on its own (it lost the server for good): fail loudly, not silently.
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        raise RuntimeError("a worker stopped unexpectedly") from (failures[0] if failures else None)
