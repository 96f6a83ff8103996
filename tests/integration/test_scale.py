"""A run over 2,000 targets, through the API, completes with every history far below Temporal's
limits (51,200 events, 50 MB), because per-target work runs in batch children. A history is
bounded by the batch size, not by the fleet, so twenty batches prove what a hundred would (the
benchmarks' B3 runs 10,000 targets; this test stays within CI's time)."""

from urllib.parse import urlsplit

import httpx
import pytest
from temporalio.client import Client

from opsconductor.config import Settings
from opsconductor.db import unit_of_work
from opsconductor.models.target import Target
from opsconductor.temporal.client import connect
from opsconductor.worker.registry import WorkerResources
from tests.fixtures.http_receiver import HttpReceiver
from tests.identity_helpers import Account, api

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]

FLEET = 2_000
EVENT_LIMIT = 51_200
SIZE_LIMIT = 50 * 1024 * 1024


async def plant_fleet(resources: WorkerResources, port: int) -> None:
    # The inventory is only the setup here; one insert keeps it quick.
    async with unit_of_work(resources.sessionmaker) as session:
        session.add_all(
            Target(
                name=f"node-{index:05d}",
                address="127.0.0.1",
                port=port,
                tags={"fleet": "scale"},
            )
            for index in range(FLEET)
        )


async def history_sizes(temporal: Client, workflow_ids: list[str]) -> dict[str, tuple[int, int]]:
    sizes = {}
    for workflow_id in workflow_ids:
        info = (await temporal.get_workflow_handle(workflow_id).describe()).raw_description
        execution = info.workflow_execution_info
        sizes[workflow_id] = (execution.history_length, execution.history_size_bytes)
    return sizes


async def test_two_thousand_targets_complete_with_bounded_histories(
    http: httpx.AsyncClient,
    operator: Account,
    viewer: Account,
    settings: Settings,
    worker_resources: WorkerResources,
    http_receiver: HttpReceiver,
) -> None:
    await plant_fleet(worker_resources, urlsplit(http_receiver.url).port or 80)
    created = await http.post(
        api("/jobs"),
        json={
            "name": "fleet-ping",
            "targets": {"tags": {"fleet": "scale"}},
            "strategy": {"concurrency": 200},
            "steps": [
                {
                    "id": "ping",
                    "action": "http.request",
                    "with": {"url": "http://{{ target.address }}:{{ target.port }}/p"},
                }
            ],
        },
        headers=operator.headers,
    )
    assert created.status_code == 201, created.text
    started = await http.post(
        api(f"/jobs/{created.json()['id']}/runs"), json={}, headers=operator.headers
    )
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]

    temporal = await connect(settings)
    parent = f"run-{run_id}"
    # Waiting on the workflow, not by polling a 2,000-target run detail every 100 ms: this
    # process also hosts the workers, and the test must measure them, not its own polling.
    await temporal.get_workflow_handle(parent).result()
    run = (await http.get(api(f"/runs/{run_id}"), headers=viewer.headers)).json()
    assert run["status"] == "succeeded", run["reason"]
    assert run["summary"]["by_status"] == {"succeeded": FLEET}
    assert len(http_receiver.requests) == FLEET

    progress = await temporal.get_workflow_handle(parent).query("progress")
    batches = FLEET // settings.run_batch_size
    assert progress["batches"] == {"total": batches, "running": 0, "done": batches}
    children = [f"{parent}-s1-b{offset}" for offset in range(0, FLEET, settings.run_batch_size)]
    sizes = await history_sizes(temporal, [parent, *children])
    largest_events = max(sizes.items(), key=lambda item: item[1][0])
    largest_bytes = max(sizes.items(), key=lambda item: item[1][1])
    print(
        f"\n{FLEET} targets in {len(children)} batches: parent history "
        f"{sizes[parent][0]} events / {sizes[parent][1]} bytes; most events "
        f"{largest_events[1][0]} ({largest_events[0]}); largest "
        f"{largest_bytes[1][1]} bytes ({largest_bytes[0]})"
    )
    # Far below, not merely below: a tenth of each limit.
    assert largest_events[1][0] < EVENT_LIMIT / 10
    assert largest_bytes[1][1] < SIZE_LIMIT / 10
