"""The health of the service: the database, Temporal, and a live worker on every task queue."""

import asyncio
from enum import StrEnum

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from opsconductor import __version__
from opsconductor.contracts.queues import ALL_QUEUES
from opsconductor.db import CheckResult, check_database
from opsconductor.services.workflows import Workflows
from opsconductor.temporal.health import check_queue_pollers, check_temporal


class HealthStatus(StrEnum):
    healthy = "healthy"
    degraded = "degraded"
    unhealthy = "unhealthy"


class CheckOutcome(StrEnum):
    ok = "ok"
    failing = "failing"


class HealthCheck(BaseModel):
    name: str
    status: CheckOutcome
    duration_ms: float
    message: str


class HealthReport(BaseModel):
    status: HealthStatus
    version: str
    checks: list[HealthCheck]


# Without these the service cannot do anything useful; a missing worker only delays runs.
ESSENTIAL_CHECKS = frozenset({"database", "temporal"})


def overall_status(results: list[CheckResult]) -> HealthStatus:
    failing = {result.name for result in results if not result.ok}
    if failing & ESSENTIAL_CHECKS:
        return HealthStatus.unhealthy
    return HealthStatus.degraded if failing else HealthStatus.healthy


async def report(engine: AsyncEngine, workflows: Workflows) -> HealthReport:
    temporal = workflows.client
    database, temporal_check = await asyncio.gather(
        check_database(engine), check_temporal(temporal)
    )
    results = [database, temporal_check]
    if temporal_check.ok:
        results += await asyncio.gather(
            *(check_queue_pollers(temporal, queue) for queue in ALL_QUEUES)
        )
    return HealthReport(
        status=overall_status(results),
        version=__version__,
        checks=[
            HealthCheck(
                name=result.name,
                status=CheckOutcome.ok if result.ok else CheckOutcome.failing,
                duration_ms=result.duration_ms,
                message=result.message,
            )
            for result in results
        ],
    )
