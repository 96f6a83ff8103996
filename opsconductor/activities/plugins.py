"""Plugin actions as activities: each on its plugin's queue, named `plugin:<action>`."""

from collections.abc import Callable
from typing import Any

from temporalio import activity

from opsconductor.contracts.queues import TaskQueue
from opsconductor.contracts.steps import StepRequest, StepResult
from opsconductor.jobspec.plugins import PluginAction, plugin_actions


def _activity(action: PluginAction) -> Callable[[StepRequest], Any]:
    # A wrapper of our own, so the plugin's callable is registered under our name and with
    # our payload types whatever decorators it carries.
    async def run(request: StepRequest) -> StepResult:
        return await action.run(request)

    return activity.defn(name=action.activity_name)(run)


def plugin_activities(queue: TaskQueue) -> list[Callable[..., Any]]:
    return [_activity(action) for action in plugin_actions().values() if action.queue is queue]
