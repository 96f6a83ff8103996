"""What each task queue runs. A protocol's activities are registered on its own queue only."""

from collections.abc import Callable, Sequence
from typing import Any

from opsconductor.activities.ping import ping
from opsconductor.temporal.queues import TaskQueue
from opsconductor.workflows.probe import FleetProbeWorkflow

WORKFLOWS: Sequence[type] = (FleetProbeWorkflow,)


def activities_for(queue: TaskQueue) -> list[Callable[..., Any]]:
    # Every queue answers the probe; protocol activities join their queue as they are built.
    return [ping]


def workflows_for(queue: TaskQueue) -> Sequence[type]:
    return WORKFLOWS if queue.runs_workflows else ()
