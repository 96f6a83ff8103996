"""`opsconductor check`: runs the fleet probe workflow and prints which queues answered."""

import uuid
from datetime import timedelta

import typer
from temporalio.client import WorkflowFailureError

from opsconductor.config import Settings
from opsconductor.contracts.probe import ProbeReport, ProbeRequest
from opsconductor.contracts.queues import ALL_QUEUES, TaskQueue
from opsconductor.temporal.client import connect
from opsconductor.workflows.probe import FleetProbeWorkflow

# Beyond the queues' own wait: time for the probe workflow itself to be picked up and finish.
PROBE_MARGIN_SECONDS = 10.0


async def probe_queues(settings: Settings, wait_seconds: float) -> ProbeReport:
    client = await connect(settings)
    return await client.execute_workflow(
        FleetProbeWorkflow.run,
        ProbeRequest(queues=[queue.value for queue in ALL_QUEUES], wait_seconds=wait_seconds),
        id=f"probe-{uuid.uuid4()}",
        task_queue=TaskQueue.orchestration.value,
        # Without an orchestration worker nothing runs the probe; say so instead of waiting.
        execution_timeout=timedelta(seconds=wait_seconds + PROBE_MARGIN_SECONDS),
    )


async def run_probe(settings: Settings, wait_seconds: float) -> int:
    try:
        report = await probe_queues(settings, wait_seconds)
    except WorkflowFailureError:
        typer.secho(
            f"  {TaskQueue.orchestration.value:<14} FAILED  no worker ran the probe workflow",
            fg=typer.colors.RED,
        )
        return 1
    for answer in report.answers:
        if answer.ok and answer.reply is not None:
            where = f"{answer.reply.host} pid {answer.reply.pid} v{answer.reply.version}"
            typer.echo(f"  {answer.queue:<14} ok      {where}")
        else:
            typer.secho(f"  {answer.queue:<14} FAILED  {answer.error}", fg=typer.colors.RED)
    return 0 if report.all_ok else 1
