"""GET /health reports the database, Temporal and a live worker on every task queue."""

from pathlib import Path

import httpx
import pytest

from opsconductor.api.app import create_app
from opsconductor.contracts.queues import ALL_QUEUES
from tests.conftest import make_settings
from tests.fixtures.services import UNSERVED_NAMESPACE

pytestmark = pytest.mark.integration

QUEUE_CHECKS = {f"worker:{queue.value}" for queue in ALL_QUEUES}


def checks_by_name(report: dict[str, object]) -> dict[str, dict[str, object]]:
    checks = report["checks"]
    assert isinstance(checks, list)
    return {check["name"]: check for check in checks}


@pytest.mark.usefixtures("workers")
async def test_healthy_when_database_temporal_and_every_queue_answer(
    http: httpx.AsyncClient,
) -> None:
    answer = await http.get("/health")
    assert answer.status_code == 200
    report = answer.json()
    assert report["status"] == "healthy"
    checks = checks_by_name(report)
    assert set(checks) == {"database", "temporal", *QUEUE_CHECKS}
    assert all(check["status"] == "ok" for check in checks.values())
    assert all(isinstance(check["duration_ms"], float) for check in checks.values())


async def test_degraded_when_no_worker_polls(
    tmp_path: Path, database_url: str, temporal_address: str
) -> None:
    settings = make_settings(
        tmp_path,
        database_url=database_url,
        temporal_address=temporal_address,
        temporal_namespace=UNSERVED_NAMESPACE,
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        answer = await http.get("/health")
    assert answer.status_code == 200
    report = answer.json()
    assert report["status"] == "degraded"
    checks = checks_by_name(report)
    assert checks["database"]["status"] == "ok"
    assert checks["temporal"]["status"] == "ok"
    for name in QUEUE_CHECKS:
        assert checks[name]["status"] == "failing"
        assert checks[name]["message"] == "no worker is polling this queue"


async def test_unhealthy_503_when_temporal_is_unreachable(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path, database_url=database_url, temporal_address="127.0.0.1:9")
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        answer = await http.get("/health")
    assert answer.status_code == 503
    report = answer.json()
    assert report["status"] == "unhealthy"
    checks = checks_by_name(report)
    assert checks["database"]["status"] == "ok"
    assert checks["temporal"]["status"] == "failing"
    assert str(checks["temporal"]["message"]).startswith("unreachable")
