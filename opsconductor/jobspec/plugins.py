"""Actions added by Python plugins through the `opsconductor.actions` entry point.

The contract (docs/libraries.md): a distribution declares

    [project.entry-points."opsconductor.actions"]
    acme = "acme_ops:ACTIONS"

where the object is a `PluginAction` or a list of them. Each names its action (dotted, e.g.
`acme.ping`, never a core name), a pydantic model of its `with` block, the task queue whose
workers run it, and an async callable taking a `StepRequest` and returning a `StepResult`. The
callable is registered as the activity `plugin:<name>` on that queue when a worker starts; the
API loads the same entry points to validate jobs and to list the actions at GET /steps.

Plugins are loaded once per process. One that fails to load, or breaks the contract, is logged
and left out: a broken plugin must not keep the API or a worker from starting.
"""

import inspect
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points

from pydantic import BaseModel

from opsconductor.contracts.queues import TaskQueue
from opsconductor.contracts.steps import StepRequest, StepResult
from opsconductor.jobspec.actions import CORE_ACTIONS, ActionSpec

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "opsconductor.actions"
# Dotted, so a plugin action can never be taken for a library step (`library/step`) and
# reads as namespaced by its vendor.
PLUGIN_ACTION_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
ACTIVITY_PREFIX = "plugin:"

StepActivity = Callable[[StepRequest], Awaitable[StepResult]]


@dataclass(frozen=True, slots=True)
class PluginAction:
    name: str
    description: str
    input_model: type[BaseModel]
    queue: TaskQueue
    run: StepActivity
    outputs: tuple[str, ...] = ()
    needs_target: bool = False

    @property
    def activity_name(self) -> str:
        return ACTIVITY_PREFIX + self.name

    def spec(self) -> ActionSpec:
        return ActionSpec(
            self.name,
            self.description,
            self.input_model,
            self.outputs,
            self.queue,
            needs_target=self.needs_target,
            activity=self.activity_name,
        )


def _contract_problem(item: object, taken: dict[str, PluginAction]) -> str | None:
    if not isinstance(item, PluginAction):
        return f"{item!r} is not an opsconductor PluginAction"
    if not PLUGIN_ACTION_NAME.match(item.name):
        return f"{item.name!r} is not a dotted lowercase action name (e.g. acme.ping)"
    if item.name in CORE_ACTIONS or item.name in taken:
        return f"{item.name!r} is already an action"
    if not (isinstance(item.input_model, type) and issubclass(item.input_model, BaseModel)):
        return f"{item.name}: input_model is not a pydantic model"
    if not isinstance(item.queue, TaskQueue) or item.queue.runs_workflows:
        return f"{item.name}: queue must be one of the protocol task queues"
    if not inspect.iscoroutinefunction(item.run):
        return f"{item.name}: run is not an async callable"
    return None


@cache
def plugin_actions() -> dict[str, PluginAction]:
    """Every valid plugin action of the installed distributions, by name."""
    found: dict[str, PluginAction] = {}
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry_point.load()
        except Exception:
            logger.exception("plugin failed to load", extra={"entry_point": entry_point.value})
            continue
        for item in loaded if isinstance(loaded, list | tuple) else [loaded]:
            problem = _contract_problem(item, found)
            if problem is not None:
                logger.error(
                    "plugin action left out: %s",
                    problem,
                    extra={"entry_point": entry_point.value},
                )
                continue
            found[item.name] = item
    if found:
        logger.info("plugin actions loaded", extra={"actions": sorted(found)})
    return found


def known_actions() -> dict[str, ActionSpec]:
    """The core catalog and every plugin action."""
    return {**CORE_ACTIONS, **{name: item.spec() for name, item in plugin_actions().items()}}
