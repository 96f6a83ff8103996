"""`opsconductor check`: runs the fleet probe workflow and prints which queues answered."""

import uuid

import typer

from opsconductor.config import Settings
from opsconductor.temporal.client import connect
from opsconductor.temporal.queues import ALL_QUEUES, TaskQueue
from opsconductor.workflows.probe import FleetProbeWorkflow, ProbeReport, ProbeRequest


async def probe_queues(settings: Settings, wait_seconds: float) -> ProbeReport:
    client = await connect(settings)
    return await client.execute_workflow(
        FleetProbeWorkflow.run,
        ProbeRequest(queues=[queue.value for queue in ALL_QUEUES], wait_seconds=wait_seconds),
        id=f"probe-{uuid.uuid4()}",
        task_queue=TaskQueue.orchestration.value,
    )


async def run_probe(settings: Settings, wait_seconds: float) -> int:
    report = await probe_queues(settings, wait_seconds)
    for answer in report.answers:
        if answer.ok and answer.reply is not None:
            where = f"{answer.reply.host} pid {answer.reply.pid} v{answer.reply.version}"
            typer.echo(f"  {answer.queue:<14} ok      {where}")
        else:
            typer.secho(f"  {answer.queue:<14} FAILED  {answer.error}", fg=typer.colors.RED)
    return 0 if report.all_ok else 1
