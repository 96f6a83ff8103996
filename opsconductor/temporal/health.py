"""Whether the Temporal frontend answers, and whether each task queue has a live poller."""

import time
from datetime import UTC, datetime, timedelta

from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue as TaskQueueRef
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, GetSystemInfoRequest
from temporalio.client import Client
from temporalio.service import RPCError

from opsconductor.contracts.queues import TaskQueue
from opsconductor.db import CheckResult

# Workers re-poll at least once a minute (long polls end after ~60 s); a poller not seen for
# longer than this has gone away, even if the server still lists it.
POLLER_FRESHNESS = timedelta(seconds=90)
RPC_TIMEOUT = timedelta(seconds=3)


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


async def check_temporal(client: Client) -> CheckResult:
    started = time.perf_counter()
    try:
        await client.workflow_service.get_system_info(GetSystemInfoRequest(), timeout=RPC_TIMEOUT)
    except (RPCError, RuntimeError, OSError) as error:
        return CheckResult("temporal", False, _elapsed_ms(started), f"unreachable: {error}")
    return CheckResult("temporal", True, _elapsed_ms(started), "ok")


async def check_queue_pollers(client: Client, queue: TaskQueue) -> CheckResult:
    name = f"worker:{queue.value}"
    started = time.perf_counter()
    kind = (
        TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
        if queue.runs_workflows
        else TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
    )
    try:
        answer = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueueRef(
                    name=queue.value, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL
                ),
                task_queue_type=kind,
            ),
            timeout=RPC_TIMEOUT,
        )
    except (RPCError, RuntimeError, OSError) as error:
        return CheckResult(name, False, _elapsed_ms(started), f"cannot describe: {error}")
    cutoff = datetime.now(UTC) - POLLER_FRESHNESS
    live = [
        poller
        for poller in answer.pollers
        if poller.last_access_time.ToDatetime(tzinfo=UTC) >= cutoff
    ]
    if not live:
        return CheckResult(name, False, _elapsed_ms(started), "no worker is polling this queue")
    return CheckResult(name, True, _elapsed_ms(started), f"{len(live)} poller(s)")
