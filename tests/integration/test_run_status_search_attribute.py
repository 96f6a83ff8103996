"""Runs that read well in the Temporal UI: `OpsRunStatus`, kept current by the run workflow,
finds runs by status (`temporal workflow list --query 'OpsRunStatus="failed"'` as an operator
types it), and runs, batches and step activities carry summaries."""

import asyncio
import json
import subprocess
import uuid
from typing import Any

import httpx
import pytest

from opsconductor.config import Settings
from opsconductor.embedded.temporal import temporal_executable
from opsconductor.temporal.client import connect
from tests.fixtures.sshd import LoopbackSshd
from tests.identity_helpers import Account, api
from tests.integration.test_schedules import NEVER_SOON, wait_for_runs
from tests.run_helpers import TERMINAL, create_job, post, start_job_run, wait_for
from tests.vault_helpers import key_credential, post_ok, shared_credential, sshd_target

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]

LISTED_WITHIN_POLLS = 100  # visibility is eventually consistent


def listed(temporal_address: str, query: str) -> set[str]:
    answer = subprocess.run(
        [
            temporal_executable(),
            "workflow",
            "list",
            "--address",
            temporal_address,
            "--query",
            query,
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows: list[dict[str, Any]] = json.loads(answer.stdout or "[]")
    return {row["execution"]["workflowId"] for row in rows}


async def eventually_listed(temporal_address: str, query: str, expected: set[str]) -> set[str]:
    found: set[str] = set()
    for _ in range(LISTED_WITHIN_POLLS):
        found = await asyncio.to_thread(listed, temporal_address, query)
        if found == expected:
            break
        await asyncio.sleep(0.2)
    return found


async def test_runs_are_found_by_their_status(
    http: httpx.AsyncClient,
    admin: Account,
    operator: Account,
    sshd: LoopbackSshd,
    temporal_address: str,
) -> None:
    credential = await shared_credential(http, admin.headers, key_credential(sshd))
    await post_ok(http, "/targets", admin.headers, sshd_target(sshd, credential["id"]))
    job = f"status-{uuid.uuid4().hex[:8]}"

    def document(command: str) -> dict[str, Any]:
        return {
            "name": f"{job}-{uuid.uuid4().hex[:4]}",
            "targets": {"names": ["loopback"]},
            "steps": [{"id": "work", "action": "ssh.command", "with": {"command": command}}],
        }

    failing = await start_job_run(http, operator, document("exit 3"))
    passing = await start_job_run(http, operator, document("true"))
    gated = await start_job_run(
        http,
        operator,
        {
            "name": f"{job}-gated",
            "steps": [
                {
                    "id": "gate",
                    "run_once": True,
                    "action": "control.approval",
                    "with": {"message": "go?", "approvers": ["admin"]},
                }
            ],
        },
    )
    assert (await wait_for(http, operator, failing, TERMINAL))["status"] == "failed"
    assert (await wait_for(http, operator, passing, TERMINAL))["status"] == "succeeded"
    await wait_for(http, operator, gated, {"waiting_approval"})

    mine = f'OpsJobName STARTS_WITH "{job}"'
    for status, run_id in (
        ("failed", failing),
        ("succeeded", passing),
        ("waiting_approval", gated),
    ):
        query = f'OpsRunStatus="{status}" AND {mine}'
        assert await eventually_listed(temporal_address, query, {f"run-{run_id}"}) == {
            f"run-{run_id}"
        }, status


async def test_runs_batches_and_steps_carry_summaries(
    http: httpx.AsyncClient,
    admin: Account,
    operator: Account,
    sshd: LoopbackSshd,
    settings: Settings,
) -> None:
    """What the Temporal UI shows beside each workflow and activity, read back as the UI reads
    it: from the history, decoded by our codec (summaries are payloads too)."""
    credential = await shared_credential(http, admin.headers, key_credential(sshd))
    await post_ok(http, "/targets", admin.headers, sshd_target(sshd, credential["id"]))
    job = f"summary-{uuid.uuid4().hex[:8]}"
    run_id = await start_job_run(
        http,
        operator,
        {
            "name": job,
            "targets": {"names": ["loopback"]},
            "steps": [{"id": "usage", "action": "ssh.command", "with": {"command": "true"}}],
        },
    )
    assert (await wait_for(http, operator, run_id, TERMINAL))["status"] == "succeeded"

    client = await connect(settings)
    described = await client.get_workflow_handle(f"run-{run_id}").describe()
    assert await described.static_summary() == f"{job} v1 · 1 target · by {operator.username}"
    details = await described.static_details()
    assert details is not None
    assert f"**Console** [{settings.public_url}/runs/{run_id}]" in details
    assert "**Targets** (1) loopback" in details

    # One target fits in one batch, which runs in the run's own workflow (a batch child's
    # summary, `targets t1 … t2 (2)`: tests/unit/test_job_run_workflow.py).
    summaries = [
        await client.data_converter.decode([event.user_metadata.summary])
        async for event in client.get_workflow_handle(f"run-{run_id}").fetch_history_events()
        if event.HasField("activity_task_scheduled_event_attributes")
    ]
    assert summaries == [["loopback · usage · ssh.command"]]

    # A schedule's fire runs a parent whose `job.run` step runs that job again as its child:
    # both runs, started by workflow code rather than the API, read the same way.
    parent = f"parent-{uuid.uuid4().hex[:8]}"
    parent_job = await create_job(
        http,
        operator,
        {
            "name": parent,
            "steps": [{"id": "sub", "run_once": True, "action": "job.run", "with": {"job": job}}],
        },
    )
    schedule = await post(
        http, operator, "/schedules", {"job_id": parent_job, "name": parent, "cron": NEVER_SOON}
    )
    try:
        await post(http, operator, f"/schedules/{schedule['id']}/trigger", {})
        (fired,) = await wait_for_runs(http, operator, parent_job, 1, 30)
        assert (await wait_for(http, operator, fired["id"], TERMINAL))["status"] == "succeeded"
    finally:
        await http.delete(api(f"/schedules/{schedule['id']}"), headers=operator.headers)
    children = await http.get(
        api("/runs"), params={"parent_run_id": fired["id"]}, headers=operator.headers
    )
    (child,) = children.json()["items"]
    for run, expected in (
        (fired["id"], f"{parent} v1 · 0 targets · by schedule:{parent}"),
        (child["id"], f"{job} v1 · 1 target · by run:{fired['id']}"),
    ):
        shown = await client.get_workflow_handle(f"run-{run}").describe()
        assert await shown.static_summary() == expected
        assert f"**Console** [{settings.public_url}/runs/{run}]" in (
            await shown.static_details() or ""
        )
    # The fire itself, the scheduled run's parent, names its schedule.
    scheduled = await client.get_workflow_handle(f"run-{fired['id']}").describe()
    assert scheduled.parent_id is not None
    fire = await client.get_workflow_handle(scheduled.parent_id).describe()
    assert await fire.static_summary() == f"schedule {parent}"
