"""An API killed after committing a run and before starting its workflow: the run ends after
the next API start, through real `opsconductor api` and `opsconductor worker` processes.

The API is killed with SIGKILL (nothing of it runs after), and the run row it had committed is
written as it would have been: `queued`, older than the reconciler's grace, with no workflow.
The next API start's reconcile pass starts it from what the row holds.
"""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

import pytest

from tests.identity_helpers import execute_sql
from tests.process_stack import TERMINAL, ApiClient, process_stack

pytestmark = [pytest.mark.slow, pytest.mark.integration]

# The promise: terminal within a minute of the next API start.
ENDS_WITHIN = 60.0


async def test_a_run_whose_api_died_before_its_start_ends_after_the_next_api_start(
    tmp_path: Path, database_url: str, temporal_address: str
) -> None:
    with process_stack(tmp_path, database_url, temporal_address) as stack:
        admin = ApiClient(stack.url)
        job = admin.ok(
            "POST",
            "/jobs",
            json={
                "name": "orphaned",
                "steps": [
                    {
                        "id": "nap",
                        "run_once": True,
                        "action": "control.sleep",
                        "with": {"duration": "10ms"},
                    }
                ],
            },
        )
        stack.api.stop(signal.SIGKILL, 10)
        run_id = uuid.uuid4()
        await execute_sql(
            database_url,
            """
            INSERT INTO runs (id, job_id, job_name, job_version, status, parameters, targets,
                              triggered_by, workflow_id, batch_size, created_at)
            VALUES (:id, :job_id, 'orphaned', 1, 'queued', '{}', '[]', 'admin', :workflow_id,
                    100, now() - interval '2 minutes')
            """,
            id=run_id,
            job_id=uuid.UUID(job["id"]),
            workflow_id=f"run-{run_id}",
        )

        api = stack.restart_api()
        admin = ApiClient(stack.url)
        run = api.wait_until(
            lambda: (found := admin.ok("GET", f"/runs/{run_id}"))["status"] in TERMINAL and found,
            ENDS_WITHIN,
            "the orphaned run ended",
        )
        assert run["status"] == "succeeded", run
        assert "run started by the reconciler" in api.stdout + api.stderr
