"""Waiting on runs through the API, shared by the run and example tests."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

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
