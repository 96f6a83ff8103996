"""Notifications never hold a run open: with workers on every queue but `notify`, a run with a
rule ends on time, its delivery is in the log `pending`, and a delivery no notify worker picks
up within its bound is recorded `failed` with that reason.

The API and the workers use the `partial` namespace, which no session-wide worker serves.
"""

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import timedelta

import httpx
import pytest

from opsconductor.config import Settings
from opsconductor.contracts.notifications import (
    DeliveryEvent,
    DeliveryOrder,
    DeliveryRequest,
    DeliveryRetry,
    DeliveryStatus,
    delivery_workflow_id,
)
from opsconductor.contracts.queues import ALL_QUEUES, TaskQueue
from opsconductor.contracts.runs import run_workflow_id
from opsconductor.temporal.client import connect
from opsconductor.worker.main import build_workers
from opsconductor.worker.registry import WorkerResources
from opsconductor.workflows.notifications import DeliveryWorkflow
from tests.fixtures.services import PARTIAL_NAMESPACE
from tests.identity_helpers import Account, api
from tests.run_helpers import TERMINAL, post, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"temporal_namespace": PARTIAL_NAMESPACE}


@pytest.fixture
async def all_but_notify(
    settings: Settings, worker_resources: WorkerResources
) -> AsyncIterator[None]:
    client = await connect(settings)
    served = [queue for queue in ALL_QUEUES if queue is not TaskQueue.notify]
    async with AsyncExitStack() as stack:
        for worker in build_workers(client, served, worker_resources):
            await stack.enter_async_context(worker)
        yield


@pytest.mark.usefixtures("all_but_notify")
async def test_a_run_ends_on_time_without_a_notify_worker(
    http: httpx.AsyncClient, admin: Account, operator: Account, settings: Settings
) -> None:
    await post(
        http, admin, "/notification-channels", {"name": "ops", "url": "json://127.0.0.1:9/x"}
    )
    document = {
        "name": "told-nobody",
        "notify": [{"on": ["start", "success"], "channel": "ops"}],
        "steps": [
            {"id": "nap", "run_once": True, "action": "control.sleep", "with": {"duration": "10ms"}}
        ],
    }
    job = await post(http, operator, "/jobs", document)
    accepted = await post(http, operator, f"/jobs/{job['id']}/runs", {})
    # The run's own workflow ends: nothing it waits for needs a notify worker.
    client = await connect(settings)
    summary = await client.get_workflow_handle(run_workflow_id(uuid.UUID(accepted["id"]))).result()
    assert summary["status"] == "succeeded"
    run = await wait_for(http, operator, accepted["id"], TERMINAL)
    assert run["status"] == "succeeded"

    answer = await http.get(
        api("/notifications"), params={"run_id": accepted["id"]}, headers=operator.headers
    )
    logged = answer.json()["items"]
    assert sorted(item["event"] for item in logged) == ["start", "success"]
    assert {item["status"] for item in logged} == {"pending"}
    assert {item["attempts"] for item in logged} == {0}
    # Each waits in a delivery workflow of its own, bounded by the worker wait.
    for item in logged:
        description = await client.get_workflow_handle(
            delivery_workflow_id(uuid.UUID(item["id"]))
        ).describe()
        assert description.workflow_type == "notification-delivery"


@pytest.mark.usefixtures("all_but_notify")
async def test_a_delivery_no_worker_picks_up_is_recorded_failed_with_why(
    http: httpx.AsyncClient, operator: Account, settings: Settings
) -> None:
    delivery_id = uuid.uuid4()
    order = DeliveryOrder(
        request=DeliveryRequest(
            delivery_id=delivery_id, channel="ops", event=DeliveryEvent.success
        ),
        retry=DeliveryRetry(attempts=3, interval=timedelta(seconds=1), backoff=2.0),
        worker_wait=timedelta(seconds=2),
    )
    client = await connect(settings)
    outcome = await client.execute_workflow(
        DeliveryWorkflow.run,
        order,
        id=delivery_workflow_id(delivery_id),
        task_queue=TaskQueue.orchestration.value,
    )
    assert outcome.status is DeliveryStatus.failed
    answer = await http.get(api("/notifications"), headers=operator.headers)
    (logged,) = [item for item in answer.json()["items"] if item["id"] == str(delivery_id)]
    assert logged["status"] == "failed"
    assert logged["last_error"] == (
        "no notify worker picked the delivery up within 2s: is a worker serving the notify queue?"
    )
