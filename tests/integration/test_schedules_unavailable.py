"""With Temporal unreachable: the API still starts, and a schedule change is refused whole."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from opsconductor.config import Settings
from tests.conftest import make_settings
from tests.fixtures.ports import free_port
from tests.identity_helpers import Account, api, assert_problem
from tests.run_helpers import create_job

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    # Nothing listens there: every Temporal call is refused at once.
    return make_settings(
        tmp_path, database_url=database_url, temporal_address=f"127.0.0.1:{free_port()}"
    )


async def test_a_schedule_is_not_stored_when_temporal_refuses_it(
    http: httpx.AsyncClient, operator: Account
) -> None:
    job = {
        "name": "lonely",
        "steps": [
            {"id": "wait", "run_once": True, "action": "control.sleep", "with": {"duration": "1s"}}
        ],
    }
    job_id = await create_job(http, operator, job)
    answer = await http.post(
        api("/schedules"), json={"job_id": job_id, "cron": "@daily"}, headers=operator.headers
    )
    problem = assert_problem(answer, 503)
    assert problem["detail"].startswith("Temporal did not accept the schedule")
    assert answer.headers["Retry-After"]
    listed = await http.get(api("/schedules"), headers=operator.headers)
    assert listed.status_code == 200
    assert listed.json()["total"] == 0
