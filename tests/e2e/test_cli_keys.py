"""`opsconductor keys check-retired` as a real process against PostgreSQL and Temporal: a retired
master key stays needed while an open workflow's history was sealed with it."""

import asyncio
import base64
import secrets
import subprocess
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client

from opsconductor.contracts.queues import TaskQueue
from opsconductor.security.envelope import key_id
from opsconductor.security.keys import ProcessKeys
from opsconductor.temporal.client import data_converter
from tests.e2e.test_cli import opsconductor
from tests.e2e.test_up import user_env

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def check_retired(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return opsconductor(env, "keys", "check-retired")


async def listed_open(client: Client, workflow_id: str) -> bool:
    query = f'WorkflowId="{workflow_id}" AND ExecutionStatus="Running"'
    return (await client.count_workflows(query)).count > 0


async def until_listed(client: Client, workflow_id: str, open_: bool) -> None:
    # Visibility trails the history by a moment.
    for _ in range(100):
        if await listed_open(client, workflow_id) == open_:
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"{workflow_id} never listed as {'open' if open_ else 'closed'}")


async def test_an_open_workflow_sealed_with_a_retired_key_blocks_dropping_it(
    database_url: str, temporal_address: str, fresh_namespace: str, tmp_path: Path
) -> None:
    key_a, key_b = secrets.token_bytes(32), secrets.token_bytes(32)
    # A run started while A was the master key: its history is sealed under A. Nobody polls
    # this namespace, so the workflow stays open.
    sealed_by_a = await Client.connect(
        temporal_address,
        namespace=fresh_namespace,
        data_converter=data_converter(ProcessKeys(key_a, (), b"signing")),
    )
    workflow_id = f"run-{uuid.uuid4()}"
    handle = await sealed_by_a.start_workflow(
        "job-run", "started under key A", id=workflow_id, task_queue=TaskQueue.orchestration
    )
    await until_listed(sealed_by_a, workflow_id, open_=True)
    # Now B is the master key and A is retired.
    env = user_env(
        OPSCONDUCTOR_DATA_DIR=str(tmp_path / "data"),
        OPSCONDUCTOR_DATABASE_URL=database_url,
        OPSCONDUCTOR_TEMPORAL_ADDRESS=temporal_address,
        OPSCONDUCTOR_TEMPORAL_NAMESPACE=fresh_namespace,
        OPSCONDUCTOR_MASTER_KEY=base64.b64encode(key_b).decode(),
        OPSCONDUCTOR_MASTER_KEYS_OLD=base64.b64encode(key_a).decode(),
        OPSCONDUCTOR_SECRET_KEY=secrets.token_urlsafe(32),
    )

    blocked = check_retired(env)
    assert blocked.returncode == 1, blocked
    assert blocked.stdout.splitlines() == [
        f"master key {key_id(key_a)}: still needed by 1 open workflow(s): {workflow_id}"
    ], blocked
    assert "keep the keys still needed" in blocked.stderr, blocked

    await handle.terminate("the run ended")
    await until_listed(sealed_by_a, workflow_id, open_=False)
    allowed = check_retired(env)
    assert allowed.returncode == 0, allowed
    assert allowed.stdout.splitlines() == [f"master key {key_id(key_a)}: can be dropped"], allowed
