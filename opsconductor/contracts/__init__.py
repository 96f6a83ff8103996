"""What crosses the Temporal boundary, one module per domain: workflow and activity inputs and
outputs, workflow-id builders, workflow/update/query names and status sets.

Workflows import only these modules, `jobspec` and `temporalio`; activities, services and the
worker import them too, so each name and shape is written once.

An activity's contract is a stub decorated with `activity_contract`: its signature (input and
result types) and its name (the function's name with `-` for `_`). Workflows call the stub by
reference (`workflow.execute_activity(record_step, ...)`), which never runs it; a worker
registers the implementation under the same name with `implements(record_step)`, and workflow
unit tests register stubs the same way.
"""

from collections.abc import Callable
from typing import Any, TypeVar

from temporalio import activity

F = TypeVar("F", bound=Callable[..., Any])


def activity_name(contract: Callable[..., Any]) -> str:
    return contract.__name__.replace("_", "-")


def activity_contract(stub: F) -> F:
    return activity.defn(name=activity_name(stub))(stub)


def implements(contract: Callable[..., Any]) -> Callable[[F], F]:
    """Registers the decorated function or method as the implementation of `contract`."""
    return activity.defn(name=activity_name(contract))
