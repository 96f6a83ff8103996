"""A worker that can no longer give a run back restarts, so the run moves on.

The Python SDK runs each workflow activation on a thread and gives it two seconds (its deadlock
limit); a run that outlasts them is evicted from the worker's cache and replayed. If the
eviction itself cannot finish (a workflow task still holding its thread, or code that keeps
running while it is torn down), the SDK retries it for as long as the process lives, logging
"continually retrying eviction" once, and keeps the run's slot: no other worker is offered that
run, so it stays `running` until this worker process ends.

A worker therefore treats that message as a request to restart. It stops polling, lets running
activities finish within its grace as on a deploy, and exits with `RESTART_EXIT_CODE`, which
`opsconductor up` answers by starting a new worker (systemd and compose restart it on any exit).
The new process replays the run from its history and it carries on.
"""

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager

# EX_TEMPFAIL (sysexits.h): "try again later"; told apart from a crash by `up`.
RESTART_EXIT_CODE = 75
# Where the SDK logs an eviction it cannot finish, and the words it uses.
SDK_WORKFLOW_LOGGER = "temporalio.worker._workflow"
STUCK_EVICTION = "continually retrying eviction"


class StuckEvictionWatch(logging.Handler):
    """Sets `stuck` when the SDK says an eviction cannot finish; keeps the run's id."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logging.ERROR)
        self.stuck = asyncio.Event()
        self.run_id = ""
        self._loop = loop

    def emit(self, record: logging.LogRecord) -> None:
        if STUCK_EVICTION not in record.getMessage():
            return
        self.run_id = str(record.args[0]) if isinstance(record.args, tuple) else ""
        # Logged from the SDK's event loop today; thread-safe in case that changes.
        self._loop.call_soon_threadsafe(self.stuck.set)


@contextmanager
def watching_evictions() -> Iterator[StuckEvictionWatch]:
    sdk_logger = logging.getLogger(SDK_WORKFLOW_LOGGER)
    watch = StuckEvictionWatch(asyncio.get_running_loop())
    sdk_logger.addHandler(watch)
    try:
        yield watch
    finally:
        sdk_logger.removeHandler(watch)
