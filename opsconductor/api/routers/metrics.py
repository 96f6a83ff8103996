"""GET /metrics: Prometheus text format, without authentication (like /health).

It reveals route names and how many runs and steps there are, nothing of their content.
Keep it off the public side of a proxy (docs/observability.md).
"""

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from opsconductor.api.deps import SessionmakerDep
from opsconductor.api.metrics import ApiMetrics, count_records

router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, sessionmaker: SessionmakerDep) -> Response:
    registry: ApiMetrics = request.app.state.metrics
    await count_records(registry, sessionmaker)
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
