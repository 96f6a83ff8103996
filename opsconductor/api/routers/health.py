"""GET /health: the database, Temporal, and a live worker on every task queue."""

from fastapi import APIRouter, Response

from opsconductor.api.deps import EngineDep, WorkflowsDep
from opsconductor.services.health import HealthReport, HealthStatus, report

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    responses={503: {"model": HealthReport, "description": "database or Temporal is down"}},
)
async def health(engine: EngineDep, workflows: WorkflowsDep, response: Response) -> HealthReport:
    answer = await report(engine, workflows)
    if answer.status is HealthStatus.unhealthy:
        response.status_code = 503
    return answer
