"""A worker serves every task queue: the fleet probe runs one activity on each, for real."""

import uuid

import pytest
from temporalio.client import Client

from opsconductor.config import Settings
from opsconductor.contracts.probe import ProbeReport, ProbeRequest
from opsconductor.contracts.queues import ALL_QUEUES, TaskQueue
from opsconductor.temporal.client import connect
from opsconductor.worker.main import build_workers
from opsconductor.worker.registry import WorkerResources
from opsconductor.workflows.probe import FleetProbeWorkflow
from tests.fixtures.services import PARTIAL_NAMESPACE

pytestmark = pytest.mark.integration


async def probe(client: Client, wait_seconds: float) -> ProbeReport:
    return await client.execute_workflow(
        FleetProbeWorkflow.run,
        ProbeRequest(queues=[queue.value for queue in ALL_QUEUES], wait_seconds=wait_seconds),
        id=f"probe-{uuid.uuid4()}",
        task_queue=TaskQueue.orchestration.value,
    )


@pytest.mark.usefixtures("workers")
async def test_every_queue_runs_an_activity(settings: Settings) -> None:
    report = await probe(await connect(settings), wait_seconds=10)
    assert report.all_ok
    assert [answer.queue for answer in report.answers] == [queue.value for queue in ALL_QUEUES]
    for answer in report.answers:
        assert answer.reply is not None
        assert answer.reply.queue == answer.queue


async def test_a_queue_without_a_worker_is_reported_not_waited_on(
    settings: Settings, worker_resources: WorkerResources
) -> None:
    isolated = settings.model_copy(update={"temporal_namespace": PARTIAL_NAMESPACE})
    client = await connect(isolated)
    served = [TaskQueue.orchestration, TaskQueue.ssh]
    workers = build_workers(client, served, worker_resources)
    async with workers[0], workers[1]:
        report = await probe(client, wait_seconds=1)
    outcome = {answer.queue: answer.ok for answer in report.answers}
    assert outcome == {queue.value: queue in served for queue in ALL_QUEUES}
    failed = [answer for answer in report.answers if not answer.ok]
    assert all(answer.error == "no worker took the task within 1s" for answer in failed), failed
