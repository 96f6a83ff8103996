"""Plugin actions as activities: each on its plugin's queue, named `plugin:<action>`."""

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from opsconductor.contracts.queues import TaskQueue
from opsconductor.contracts.steps import StepRequest, StepResult
from opsconductor.jobspec.plugins import PluginAction, plugin_actions


def _activity(action: PluginAction) -> Callable[[StepRequest], Any]:
    # A wrapper of our own, so the plugin's callable is registered under our name and with
    # our payload types whatever decorators it carries.
    async def run(request: StepRequest) -> StepResult:
        result = await action.run(request)
        if isinstance(result, StepResult):
            return result
        # Checked here, on the worker: a result the workflow could not decode would fail its
        # workflow task (and retry it for ever) instead of failing this step.
        try:
            return StepResult.model_validate(result)
        except ValidationError as error:
            raise ApplicationError(
                f"plugin action {action.name} returned {type(result).__name__}, "
                f"not a step result: {error.errors()[0]['msg']}",
                type="PluginResultInvalid",
                non_retryable=True,
            ) from None

    return activity.defn(name=action.activity_name)(run)


def plugin_activities(queue: TaskQueue) -> list[Callable[..., Any]]:
    return [_activity(action) for action in plugin_actions().values() if action.queue is queue]
