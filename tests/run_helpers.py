"""Waiting on runs through the API, shared by the run and example tests."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.identity_helpers import Account, api

TERMINAL = {"succeeded", "failed", "cancelled"}


async def post(client: httpx.AsyncClient, who: Account, path: str, body: Any) -> dict[str, Any]:
    answer = await client.post(api(path), json=body, headers=who.headers)
    assert answer.status_code in (200, 201, 202), answer.text
    created: dict[str, Any] = answer.json()
    return created


async def wait_for(
    client: httpx.AsyncClient, who: Account, run_id: str, statuses: set[str], polls: int = 600
) -> dict[str, Any]:
    for _ in range(polls):
        run: dict[str, Any] = (await client.get(api(f"/runs/{run_id}"), headers=who.headers)).json()
        if run["status"] in statuses:
            return run
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run_id} stayed {run['status']}")
