"""GET /steps: the action catalog a job document may use (services/steps.py)."""

from fastapi import APIRouter

from opsconductor.api.deps import SessionDep
from opsconductor.api.permissions import JobReader
from opsconductor.services import steps
from opsconductor.services.steps import StepCatalog

router = APIRouter(tags=["steps"])


@router.get("/steps", name="step.list")
async def list_steps(principal: JobReader, session: SessionDep) -> StepCatalog:
    return await steps.catalog(session)
