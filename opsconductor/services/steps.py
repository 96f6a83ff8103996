"""The action catalog: every action a job step may use, with the JSON Schema of its `with`:
the core actions, the steps of enabled libraries (newest enabled version) and plugin actions."""

from typing import Any, Literal

from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.jobspec.actions import ActionSpec
from opsconductor.jobspec.document import job_document_schema
from opsconductor.jobspec.library import library_document_schema, parameters_schema
from opsconductor.jobspec.plugins import known_actions, plugin_actions
from opsconductor.services import libraries


class ActionDescription(BaseModel):
    name: str
    kind: Literal["core", "library", "plugin"]
    description: str
    # Where it runs; a library step runs where its body's actions run.
    queue: str | None
    needs_target: bool
    outputs: list[str]
    with_schema: dict[str, Any]
    # Library steps: the version `library/step` means now, and every enabled version.
    version: str | None = None
    versions: list[str] = []


class StepCatalog(BaseModel):
    items: list[ActionDescription]
    job_document_schema: dict[str, Any]
    library_document_schema: dict[str, Any]


def _described(spec: ActionSpec, kind: Literal["core", "plugin"]) -> ActionDescription:
    return ActionDescription(
        name=spec.name,
        kind=kind,
        description=spec.description,
        queue=spec.queue.value if spec.queue else None,
        needs_target=spec.needs_target,
        outputs=list(spec.outputs),
        with_schema=spec.with_schema(),
    )


async def catalog(session: AsyncSession) -> StepCatalog:
    actions = known_actions()
    plugins = plugin_actions()
    items = [
        _described(spec, "plugin" if name in plugins else "core")
        for name, spec in actions.items()
        if spec.available
    ]
    for entry in await libraries.catalog(session):
        for step_name, step in entry.document.steps.items():
            body = [actions[item.action] for item in step.body if item.action in actions]
            queues = sorted({spec.queue.value for spec in body if spec.queue})
            items.append(
                ActionDescription(
                    name=f"{entry.document.name}/{step_name}",
                    kind="library",
                    description=step.description,
                    queue=", ".join(queues) or None,
                    needs_target=any(spec.needs_target for spec in body),
                    outputs=list(step.outputs),
                    with_schema=parameters_schema(step.parameters),
                    version=entry.version,
                    versions=entry.versions,
                )
            )
    return StepCatalog(
        items=items,
        job_document_schema=job_document_schema(),
        library_document_schema=library_document_schema(),
    )
