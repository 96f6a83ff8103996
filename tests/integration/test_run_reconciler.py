"""Runs and their workflows kept in step (services/run_reconciler.py) through the API, workers
and the Temporal CLI; and `POST /jobs/{id}/runs` with an Idempotency-Key.

A workflow terminated from outside (an operator's `temporal workflow terminate`) never writes
its end: its run row is settled from Temporal, by a cancel (which answers 409, not 503) or by
the reconciler's pass. The pass run here is the one the API runs at start and every interval
(api/background.py), called directly with no grace so the test need not wait for it.
"""

import asyncio
import subprocess
from datetime import timedelta
from typing import Any

import httpx
import pytest

from opsconductor.api.background import reconcile_runs_once
from opsconductor.config import Settings
from opsconductor.db import create_engine, create_sessionmaker
from opsconductor.embedded.temporal import temporal_executable
from opsconductor.temporal.client import connect
from tests.identity_helpers import Account, api, assert_problem, execute_sql
from tests.run_helpers import TERMINAL, post, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


def napping(name: str, duration: str = "10m") -> dict[str, Any]:
    return {
        "name": name,
        "steps": [
            {
                "id": "nap",
                "run_once": True,
                "action": "control.sleep",
                "with": {"duration": duration},
            },
            {
                "id": "after",
                "run_once": True,
                "needs": ["nap"],
                "action": "control.sleep",
                "with": {"duration": "1ms"},
            },
        ],
    }


async def terminate(settings: Settings, workflow_id: str, reason: str) -> None:
    assert settings.temporal_address is not None
    done = await asyncio.to_thread(
        subprocess.run,
        [
            temporal_executable(),
            "workflow",
            "terminate",
            "--workflow-id",
            workflow_id,
            "--reason",
            reason,
            "--address",
            settings.temporal_address,
            "--namespace",
            settings.temporal_namespace,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


async def running_run(http: httpx.AsyncClient, who: Account, name: str) -> dict[str, Any]:
    job = await post(http, who, "/jobs", napping(name))
    accepted = await post(http, who, f"/jobs/{job['id']}/runs", {})
    return await wait_for(http, who, accepted["id"], {"running"})


async def test_cancel_of_a_terminated_run_settles_it_and_answers_409(
    http: httpx.AsyncClient, operator: Account, settings: Settings
) -> None:
    run = await running_run(http, operator, "terminated-then-cancelled")
    await terminate(settings, run["workflow_id"], "operator stopped it")

    answer = await http.post(api(f"/runs/{run['id']}/cancel"), headers=operator.headers)
    problem = assert_problem(answer, 409)
    assert problem["detail"] == f"run {run['id']} already ended (failed)"

    settled = (await http.get(api(f"/runs/{run['id']}"), headers=operator.headers)).json()
    assert settled["status"] == "failed"
    assert settled["reason"] == "the workflow was terminated: operator stopped it"
    assert settled["finished_at"] is not None
    steps = {step["id"]: step for step in settled["steps"]}
    assert steps["nap"]["status"] == "cancelled"
    assert steps["after"]["status"] == "skipped"
    again = await http.post(api(f"/runs/{run['id']}/cancel"), headers=operator.headers)
    assert_problem(again, 409)


async def test_the_reconcile_pass_settles_terminated_runs_and_starts_unstarted_ones(
    http: httpx.AsyncClient, operator: Account, settings: Settings, database_url: str
) -> None:
    terminated = await running_run(http, operator, "terminated-left-running")
    await terminate(settings, terminated["workflow_id"], "wedged host")
    # Rows whose workflow never started (the API died in between): one to start, one of a job
    # version that is gone, a child run whose parent ended; and one that had started but whose
    # workflow is gone.
    job = await post(http, operator, "/jobs", napping("never-started", "1ms"))
    rows = await execute_sql(
        database_url,
        """
        INSERT INTO runs (id, job_id, job_name, job_version, status, parameters, targets,
                          triggered_by, workflow_id, batch_size, created_at, started_at,
                          parent_run_id)
        SELECT ids.id, :job_id, 'never-started', ids.version, ids.status, '{}', '[]', ids.what,
               'run-' || ids.id, 100, now(), ids.started_at, ids.parent
        FROM (VALUES
            (gen_random_uuid(), 'queued', 1, NULL::timestamptz, 'unstarted', NULL::uuid),
            (gen_random_uuid(), 'queued', 99, NULL, 'no-version', NULL),
            (gen_random_uuid(), 'queued', 1, NULL, 'orphan-child', CAST(:parent AS uuid)),
            (gen_random_uuid(), 'running', 1, now(), 'vanished', NULL)
        ) AS ids (id, status, version, started_at, what, parent)
        RETURNING id, triggered_by
        """,
        job_id=job["id"],
        parent=terminated["id"],
    )
    ids = {row.triggered_by: str(row.id) for row in rows}
    unstarted = ids["unstarted"]
    await execute_sql(
        database_url,
        "UPDATE runs SET created_at = now() - interval '1 minute' WHERE id = :id",
        id=terminated["id"],
    )

    engine = create_engine(settings)
    try:
        report = await reconcile_runs_once(
            create_sessionmaker(engine), await connect(settings), timedelta(0), settings.public_url
        )
    finally:
        await engine.dispose()
    assert not report.skipped, report
    assert [str(run_id) for run_id in report.started] == [unstarted]

    settled = (await http.get(api(f"/runs/{terminated['id']}"), headers=operator.headers)).json()
    assert (settled["status"], settled["reason"]) == (
        "failed",
        "the workflow was terminated: wedged host",
    )
    assert (await wait_for(http, operator, unstarted, TERMINAL))["status"] == "succeeded"
    reasons = {}
    for what in ("no-version", "orphan-child", "vanished"):
        row = (await http.get(api(f"/runs/{ids[what]}"), headers=operator.headers)).json()
        assert row["status"] == "failed", row
        reasons[what] = row["reason"]
    assert reasons["no-version"] == (
        f"the run could not be started: job {job['id']} has no version 99"
    )
    assert reasons["orphan-child"] == "its parent run ended before starting it"
    assert reasons["vanished"].startswith("its workflow is gone from Temporal")


async def test_cancel_of_a_run_never_started_cancels_it_before_it_starts(
    http: httpx.AsyncClient, operator: Account, database_url: str
) -> None:
    job = await post(http, operator, "/jobs", napping("cancel-before-start", "1ms"))
    (row,) = await execute_sql(
        database_url,
        """
        INSERT INTO runs (id, job_id, job_name, job_version, status, parameters, targets,
                          triggered_by, workflow_id, batch_size, created_at)
        SELECT id, :job_id, 'cancel-before-start', 1, 'queued', '{}', '[]', 'operator',
               'run-' || id, 100, now()
        FROM (SELECT gen_random_uuid() AS id) AS fresh
        RETURNING id
        """,
        job_id=job["id"],
    )
    answer = await http.post(api(f"/runs/{row.id}/cancel"), headers=operator.headers)
    assert answer.status_code == 202, answer.text
    run = (await http.get(api(f"/runs/{row.id}"), headers=operator.headers)).json()
    assert (run["status"], run["reason"]) == (
        "cancelled",
        "the run was cancelled before it started",
    )


async def test_an_idempotency_key_answers_the_same_run(
    http: httpx.AsyncClient, operator: Account, admin: Account
) -> None:
    job = await post(http, operator, "/jobs", napping("idempotent", "1ms"))
    path = api(f"/jobs/{job['id']}/runs")

    async def start(who: Account, key: str) -> httpx.Response:
        return await http.post(path, json={}, headers={**who.headers, "Idempotency-Key": key})

    first = await start(operator, "deploy-2026-11-28")
    second = await start(operator, "deploy-2026-11-28")
    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json()["id"] == second.json()["id"]
    assert first.json()["workflow_id"] == second.json()["workflow_id"]
    other = await start(operator, "deploy-2026-11-29")
    assert other.status_code == 202
    assert other.json()["id"] != first.json()["id"]
    # Per user: another user's same key is another run.
    theirs = await start(admin, "deploy-2026-11-28")
    assert theirs.json()["id"] not in {first.json()["id"], other.json()["id"]}
    await wait_for(http, operator, first.json()["id"], TERMINAL)
    after_end = await start(operator, "deploy-2026-11-28")
    assert after_end.json()["id"] == first.json()["id"]

    listed = await http.get(api("/runs"), params={"job_id": job["id"]}, headers=operator.headers)
    assert listed.json()["total"] == 3

    bad_keys = [b"", b" padded ", b"x" * 129, b"tab\there", "é".encode()]
    for bad in bad_keys:
        headers = {key.encode(): value.encode() for key, value in operator.headers.items()}
        headers[b"Idempotency-Key"] = bad
        answer = await http.post(path, json={}, headers=headers)
        problem = assert_problem(answer, 422)
        assert [item["path"] for item in problem["errors"]] == ["header.Idempotency-Key"], problem
