"""Starting job-run workflows straight from a document, for tests of the engine's semantics.

The API's run service does the same with targets resolved from the inventory; these tests give
the targets directly so each semantic of docs/jobs.md can be shown on its own.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import ActivityTaskScheduledEventAttributes
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import ActivityEnvironment

from opsconductor.contracts.queues import TaskQueue
from opsconductor.contracts.runs import (
    DEFAULT_BATCHES_PER_HISTORY,
    RunRequest,
    RunStatus,
    RunSummary,
    batch_workflow_id,
)
from opsconductor.contracts.steps import (
    DEFAULT_CHUNK_SIZE,
    ChunkMember,
    ChunkProgress,
    ChunkRequest,
    ChunkRetry,
    MemberResult,
    TargetSnapshot,
)
from opsconductor.db import unit_of_work
from opsconductor.jobspec.plan import compile_plan
from opsconductor.jobspec.validation import validate_document
from opsconductor.models.job import Job, JobVersion
from opsconductor.models.run import Run, RunStep
from opsconductor.workflows.job_run import JobRunWorkflow
from tests.identity_helpers import ADMIN_USERNAME


def web_targets(base_url: str, count: int) -> list[TargetSnapshot]:
    """Targets whose address is the HTTP receiver, so `{{ target.address }}` reaches it."""
    return [
        TargetSnapshot(
            id=uuid.uuid4(),
            name=f"web-{index}",
            address=base_url,
            port=80,
            protocol="ssh",
            tags={"index": str(index)},
        )
        for index in range(1, count + 1)
    ]


async def start_run(
    client: Client,
    sessionmaker: async_sessionmaker[AsyncSession],
    document: dict[str, Any],
    targets: list[TargetSnapshot],
    parameters: dict[str, Any] | None = None,
    batch_size: int = 2,
    max_batches_per_history: int = DEFAULT_BATCHES_PER_HISTORY,
) -> WorkflowHandle[JobRunWorkflow, RunSummary]:
    """Small batches by default, so the semantics are shown across batch boundaries too."""
    report = validate_document(document)
    assert report.document is not None, report.problems
    assert report.valid, report.problems
    run_id = uuid.uuid4()
    async with unit_of_work(sessionmaker) as session:
        existing = await session.exec(select(Job).where(Job.name == report.document.name))
        job = existing.first()
        if job is None:
            job = Job(name=report.document.name, created_by="test")
            session.add(job)
            await session.flush()
            session.add(JobVersion(job_id=job.id, version=1, document=document, created_by="test"))
        session.add(
            Run(
                id=run_id,
                job_id=job.id,
                job_name=job.name,
                job_version=1,
                status=RunStatus.queued,
                triggered_by="test",
                # Acts for the bootstrapped admin, who may use every credential.
                run_as=ADMIN_USERNAME,
                workflow_id=f"run-{run_id}",
                targets=[target.model_dump(mode="json") for target in targets],
            )
        )
    return await client.start_workflow(
        JobRunWorkflow.run,
        RunRequest(
            run_id=run_id,
            job_id=job.id,
            job_name=job.name,
            job_version=1,
            plan=compile_plan(report.document),
            parameters=parameters or {},
            target_names=[target.name for target in targets],
            triggered_by="test",
            batch_size=batch_size,
            max_batches_per_history=max_batches_per_history,
            chunk_size=DEFAULT_CHUNK_SIZE,
        ),
        id=f"run-{run_id}",
        task_queue=TaskQueue.orchestration.value,
    )


async def recorded_steps(
    sessionmaker: async_sessionmaker[AsyncSession], run_id: uuid.UUID
) -> dict[tuple[str, str], RunStep]:
    async with sessionmaker() as session:
        rows = (await session.exec(select(RunStep).where(RunStep.run_id == run_id))).all()
    return {(row.target, row.step_id): row for row in rows}


async def recorded_run(sessionmaker: async_sessionmaker[AsyncSession], run_id: uuid.UUID) -> Run:
    async with sessionmaker() as session:
        run = await session.get(Run, run_id)
    assert run is not None
    return run


async def scheduled_activities(
    temporal: Client, run_id: uuid.UUID
) -> list[ActivityTaskScheduledEventAttributes]:
    """The activities a run's first batch scheduled, in order: in its `job-run-batch` child, or
    in the run's own workflow when its targets fit in one batch (then with its run-once
    steps' activities, if it has any)."""
    workflow_id = await batch_history_id(temporal, run_id)
    history = await temporal.get_workflow_handle(workflow_id).fetch_history()
    return [
        event.activity_task_scheduled_event_attributes
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


async def batch_history_id(temporal: Client, run_id: uuid.UUID) -> str:
    """The workflow whose history holds a run's first batch: its child `run-<id>-s1-b0`, or
    the run's own workflow, which runs a batch that holds all its targets itself."""
    run = f"run-{run_id}"
    child = batch_workflow_id(run, 1, 0)
    async for event in temporal.get_workflow_handle(run).fetch_history_events():
        started = event.start_child_workflow_execution_initiated_event_attributes
        if started.workflow_id == child:
            return child
    return run


def chunk_request(
    run_id: uuid.UUID,
    step_id: str,
    action: str,
    with_: dict[str, Any],
    targets: list[TargetSnapshot],
) -> ChunkRequest:
    """A chunk activity's request over `targets`, one attempt each, as a batch would send it."""
    return ChunkRequest(
        run_id=run_id,
        step_id=step_id,
        action=action,
        with_=with_,
        retry=ChunkRetry(interval_seconds=0.01, backoff=1),
        timeout_seconds=30,
        concurrency=len(targets),
        members=[
            ChunkMember(target=target, context={"target": target.context()}) for target in targets
        ],
    )


def second_try(finished: MemberResult, started: dict[str, int]) -> ActivityEnvironment:
    """Where a chunk activity runs as its second try after its worker was lost: the first
    try's last heartbeat said `finished` was done and each of `started` on that attempt."""
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(
        environment.info,
        attempt=2,
        heartbeat_details=[
            ChunkProgress(finished=[finished], started=started).model_dump(mode="json")
        ],
    )
    return environment
