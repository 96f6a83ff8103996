"""History is bounded by targets and steps, never by output: three steps printing 1 MiB each over
50 SSH targets succeed through the API, every workflow history stays under 2 MiB, and the run
log holds every byte (docs/engine.md, "Scale: output stays out of history")."""

import uuid

import httpx
import pytest
from sqlalchemy import text

from opsconductor.config import Settings
from opsconductor.temporal.client import connect
from opsconductor.worker.registry import WorkerResources
from tests.fixtures.loud_job import (
    MIB,
    STEPS,
    line_of,
    lines_per_step,
    loud_job,
    run_workflow_ids,
    serialized_history_sizes,
)
from tests.fixtures.sshd import LoopbackSshd
from tests.identity_helpers import Account, api, bearer, login
from tests.run_helpers import start_job_run
from tests.vault_helpers import key_credential, post_ok, shared_credential, sshd_target

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]

TARGETS = 50
HISTORY_LIMIT = 2 * MIB
LINE_BYTES = 1024
LINE = line_of(LINE_BYTES)


async def test_megabytes_of_output_on_fifty_targets_keep_every_history_small(
    http: httpx.AsyncClient,
    admin: Account,
    operator: Account,
    viewer: Account,
    sshd: LoopbackSshd,
    settings: Settings,
    worker_resources: WorkerResources,
) -> None:
    credential = await shared_credential(http, admin.headers, key_credential(sshd))
    fleet = f"loud-{uuid.uuid4().hex[:6]}"
    for index in range(TARGETS):
        body = sshd_target(sshd, credential["id"], name=f"{fleet}-{index:02d}")
        await post_ok(http, "/targets", admin.headers, {**body, "tags": {"fleet": fleet}})

    run_id = await start_job_run(
        http, operator, loud_job(fleet, {"tags": {"fleet": fleet}}, LINE_BYTES)
    )
    temporal = await connect(settings)
    # Waiting on the workflow: polling a run detail of 150 steps with 64 KiB outputs each
    # would load the process that hosts the workers it measures.
    await temporal.get_workflow_handle(f"run-{run_id}").result()
    # Signed in again: on a busy machine the run may outlast the first access token.
    reader = bearer((await login(http, viewer.username, viewer.password))["access_token"])
    answer = await http.get(api(f"/runs/{run_id}"), params={"include": "targets"}, headers=reader)
    assert answer.status_code == 200, answer.text[:500]
    run = answer.json()
    workflows = run_workflow_ids(run_id, TARGETS, settings.run_batch_size)
    sizes = await serialized_history_sizes(temporal, workflows)
    print(f"\nhistory sizes (bytes, serialized): {sizes}")
    unsuccessful = [
        (target["name"], step["id"], step["status"], step["reason"])
        for target in run["targets"]
        for step in target["steps"]
        if step["status"] != "succeeded"
    ]
    assert run["status"] == "succeeded", unsuccessful[:5]
    assert max(sizes.values()) < HISTORY_LIMIT, sizes
    assert len(run["targets"]) == TARGETS
    for target in run["targets"]:
        for step in target["steps"]:
            assert step["status"] == "succeeded", (target["name"], step)
            # The record keeps the 64 KiB tail the worker stored, and its outputs as documented.
            assert f"{LINE}\n[… " in step["stdout"]
            assert len(step["stdout"]) < 66 * 1024
            assert step["outputs"]["stdout"] == step["stdout"]
            assert step["outputs"]["exit_code"] == 0

    # The run log has every line of every step on every target.
    page = await http.get(api(f"/runs/{run_id}/logs"), headers=reader)
    assert page.status_code == 200
    assert page.json()[0]["line"] == LINE
    async with worker_resources.sessionmaker() as session:
        rows = await session.execute(
            text(
                "SELECT target, step_id, count(*) AS lines, sum(length(line) + 1) AS bytes "
                "FROM run_logs WHERE run_id = :run_id GROUP BY target, step_id"
            ),
            {"run_id": run_id},
        )
        logged = {(row.target, row.step_id): (row.lines, row.bytes) for row in rows}
    assert len(logged) == TARGETS * len(STEPS)
    assert set(logged.values()) == {(lines_per_step(LINE_BYTES), MIB)}
