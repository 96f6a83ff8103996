"""The action catalog: every action a job step may use, with the JSON Schema of its `with`."""

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel

from opsconductor.api.auth import authorized
from opsconductor.jobspec.actions import CORE_ACTIONS
from opsconductor.jobspec.document import job_document_schema
from opsconductor.security.rbac import Permission, Principal

router = APIRouter(tags=["steps"])

Reader = Annotated[Principal, authorized(Permission.jobs_read)]


class ActionDescription(BaseModel):
    name: str
    kind: str
    description: str
    queue: str | None
    needs_target: bool
    outputs: list[str]
    with_schema: dict[str, Any]


class StepCatalog(BaseModel):
    items: list[ActionDescription]
    job_document_schema: dict[str, Any]


@router.get("/steps", name="step.list", response_model=StepCatalog)
async def list_steps(principal: Reader) -> StepCatalog:
    return StepCatalog(
        items=[
            ActionDescription(
                name=spec.name,
                kind="core",
                description=spec.description,
                queue=spec.queue.value if spec.queue else None,
                needs_target=spec.needs_target,
                outputs=list(spec.outputs),
                with_schema=spec.with_schema(),
            )
            for spec in CORE_ACTIONS.values()
            if spec.available
        ],
        job_document_schema=job_document_schema(),
    )
