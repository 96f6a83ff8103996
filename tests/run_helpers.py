"""Waiting on runs through the API, and planting run records to read, shared by the run tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from opsconductor.contracts.runs import RunStatus, StepStatus
from opsconductor.db import unit_of_work
from opsconductor.models.base import utcnow
from opsconductor.models.run import RUN_ONCE_TARGET, Run, RunStep
from tests.fixtures.http_receiver import HttpReceiver
from tests.identity_helpers import Account, api

TERMINAL = {"succeeded", "failed", "cancelled"}


async def post(client: httpx.AsyncClient, who: Account, path: str, body: Any) -> dict[str, Any]:
    answer = await client.post(api(path), json=body, headers=who.headers)
    assert answer.status_code in (200, 201, 202), answer.text
    created: dict[str, Any] = answer.json()
    return created


async def create_job(client: httpx.AsyncClient, who: Account, document: dict[str, Any]) -> str:
    job_id: str = (await post(client, who, "/jobs", document))["id"]
    return job_id


def notify_job(receiver: HttpReceiver, name: str = "ping-hook") -> dict[str, Any]:
    """A job of one run-once webhook to the receiver, with a `level` parameter."""
    return {
        "name": name,
        "parameters": {"level": {"type": "string", "default": "info", "enum": ["info", "warn"]}},
        "steps": [
            {
                "id": "hook",
                "run_once": True,
                "action": "http.request",
                "with": {
                    "url": receiver.url + "/hook",
                    "method": "POST",
                    "json": {"level": "{{ params.level }}", "run": "{{ run.id }}"},
                },
            }
        ],
    }


async def wait_for(
    client: httpx.AsyncClient, who: Account, run_id: str, statuses: set[str], polls: int = 600
) -> dict[str, Any]:
    # The whole grid (`?include=targets`): these runs are small, and tests read their steps.
    for _ in range(polls):
        answer = await client.get(
            api(f"/runs/{run_id}"), params={"include": "targets"}, headers=who.headers
        )
        run: dict[str, Any] = answer.json()
        if run["status"] in statuses:
            return run
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run_id} stayed {run['status']}")


async def start_job_run(
    client: httpx.AsyncClient,
    who: Account,
    document: dict[str, Any],
    parameters: dict[str, Any] | None = None,
) -> str:
    """Saves the document as a new job and starts a run of it; the run's id."""
    job = await post(client, who, "/jobs", document)
    run = await post(client, who, f"/jobs/{job['id']}/runs", {"parameters": parameters or {}})
    run_id: str = run["id"]
    return run_id


async def run_on_target(
    client: httpx.AsyncClient,
    who: Account,
    target: str,
    *steps: dict[str, Any],
    parameters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Runs the steps on one target through the API, to the run's end."""
    document = {
        "name": f"job-{uuid.uuid4().hex[:8]}",
        "targets": {"names": [target]},
        "steps": list(steps),
    }
    if parameters:
        document["parameters"] = {name: {"type": "string"} for name in parameters}
    run_id = await start_job_run(client, who, document, parameters)
    return await wait_for(client, who, run_id, TERMINAL)


def target_steps(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The steps of a run's only target, by id."""
    (target,) = run["targets"]
    return {step["id"]: step for step in target["steps"]}


def planted_steps(run_id: uuid.UUID, names: list[str]) -> Iterator[RunStep]:
    """`prepare` then `say` on every target but the last 10 (not reached: pending). `say`
    fails on every 50th target, and fails tolerated (the target still succeeds) on t001."""
    began = utcnow()
    yield RunStep(
        run_id=run_id, target=RUN_ONCE_TARGET, step_id="announce",
        status=StepStatus.succeeded, started_at=began,
    )  # fmt: skip
    for index, name in enumerate(names[: max(len(names) - 10, 2)]):
        yield RunStep(
            run_id=run_id, target=name, step_id="prepare",
            status=StepStatus.succeeded, started_at=began + timedelta(seconds=1),
        )  # fmt: skip
        failed = index % 50 == 0 or name == "t001"
        yield RunStep(
            run_id=run_id, target=name, step_id="say",
            status=StepStatus.failed if failed else StepStatus.succeeded,
            exit_code=1 if failed else 0, tolerated=name == "t001",
            started_at=began + timedelta(seconds=2),
        )  # fmt: skip


async def plant_run(app: FastAPI, job_id: str, targets: int) -> str:
    """A failed run of `targets` targets (t000, t001, …) written straight to the database,
    with the steps of `planted_steps`: for tests of reading runs, without workers."""
    names = [f"t{index:03}" for index in range(targets)]
    run_id = uuid.uuid4()
    async with unit_of_work(app.state.sessionmaker) as session:
        job = uuid.UUID(job_id)
        session.add(
            Run(
                id=run_id, job_id=job, job_name="ping-hook", job_version=1,
                status=RunStatus.failed, triggered_by="test", workflow_id=f"run-{run_id}",
                targets=[{"name": name, "address": "192.0.2.1"} for name in names],
            )
        )  # fmt: skip
        await session.flush()
        session.add_all(planted_steps(run_id, names))
    return str(run_id)
