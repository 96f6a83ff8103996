"""Plugin actions as activities: each on its plugin's queue, named `plugin:<action>`.

What a plugin returns is made as safe as a core action's output before it leaves the worker
(docs/libraries.md, "What a plugin's result becomes"): NUL and lone surrogates escaped
(opsconductor.text), each string kept to its last `MAX_OUTPUT_CHARACTERS`, and outputs of more
than `MAX_PLUGIN_OUTPUTS` characters of JSON replaced by `{"truncated": true}`. Unchecked, a
lone surrogate fails the result's encoding and megabytes exceed Temporal's 2 MB payload limit,
failing the step with an obscure error and losing its output. The result a failure carries
(an `ApplicationError`'s details) is made as safe.
"""

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from opsconductor.activities.step_output import carrying, failure_result
from opsconductor.activities.steps import MAX_OUTPUT_CHARACTERS, bounded
from opsconductor.contracts.queues import TaskQueue
from opsconductor.contracts.steps import StepRequest, StepResult, fitted
from opsconductor.jobspec.plugins import PluginAction, plugin_actions
from opsconductor.text import storable, storable_json

# A plugin's output never went to the run log: what is cut is gone.
DROPPED_TO = "not kept"
# All of a result's outputs, as JSON: with both streams, well under Temporal's 2 MB payload.
MAX_PLUGIN_OUTPUTS = 4 * MAX_OUTPUT_CHARACTERS
# The exit code column is a PostgreSQL integer.
EXIT_CODES = range(-(2**31), 2**31)


def _kept(text: str) -> str:
    return bounded(storable(text), DROPPED_TO)


def _safe(result: StepResult) -> StepResult:
    """The result as the run record and history may carry it."""
    return result.model_copy(
        update={
            "stdout": _kept(result.stdout),
            "stderr": _kept(result.stderr),
            "error": None if result.error is None else _kept(result.error),
            "outputs": fitted(storable_json(result.outputs, _kept), MAX_PLUGIN_OUTPUTS),
        }
    )


def _invalid(action: PluginAction, problem: str) -> ApplicationError:
    # Failed here, on the worker: a result the workflow could not decode (or record) would
    # fail its workflow task (and retry it for ever) instead of failing this step.
    return ApplicationError(
        f"plugin action {action.name} returned {problem}",
        type="PluginResultInvalid",
        non_retryable=True,
    )


def _validated(action: PluginAction, result: object) -> StepResult:
    if isinstance(result, StepResult):
        validated = result
    else:
        try:
            validated = StepResult.model_validate(result)
        except ValidationError as error:
            problem = f"{type(result).__name__}, not a step result: {error.errors()[0]['msg']}"
            raise _invalid(action, problem) from None
    if validated.exit_code is not None and validated.exit_code not in EXIT_CODES:
        raise _invalid(action, f"exit_code {validated.exit_code}, out of range")
    return validated


def _activity(action: PluginAction) -> Callable[[StepRequest], Any]:
    # A wrapper of our own, so the plugin's callable is registered under our name and with
    # our payload types whatever decorators it carries.
    async def run(request: StepRequest) -> StepResult:
        try:
            result = await action.run(request)
        except ApplicationError as error:
            failure = error
        except Exception as error:
            # Failed under the error's own type name (retry policies name types), with its
            # message made as safe as output: megabytes or a lone surrogate in it would fail
            # the failure's own encoding.
            raise ApplicationError(_kept(str(error)), type=type(error).__name__) from None
        else:
            return _safe(_validated(action, result))
        # The message, and the last attempt's result a failure carries, are made as safe; a
        # plugin's own details are passed on. Raised outside the handler, so the plugin's error
        # (and what it carries) is not chained on.
        failed = failure_result(failure)
        details = failure.details if failed is None else (_safe(_validated(action, failed)),)
        raise carrying(failure, *details, message=_kept(failure.message))

    return activity.defn(name=action.activity_name)(run)


def plugin_activities(queue: TaskQueue) -> list[Callable[..., Any]]:
    return [_activity(action) for action in plugin_actions().values() if action.queue is queue]
