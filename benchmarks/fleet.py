"""Setup and measurement shared by the benchmarks: targets planted in SQL, jobs saved and runs
started through the API, a run awaited on its workflow, percentiles."""

from __future__ import annotations

import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import insert
from temporalio.client import Client

from benchmarks.stack import Stack
from opsconductor.db import create_engine, create_sessionmaker, unit_of_work
from opsconductor.models.target import Protocol, Target


async def plant_targets(
    stack: Stack,
    prefix: str,
    count: int,
    port: int,
    *,
    credential_id: str | None = None,
    host_key_fingerprint: str | None = None,
) -> None:
    """`count` targets on 127.0.0.1:port tagged {"fleet": prefix}, in one insert: the inventory
    is setup, not what is measured."""
    rows = [
        {
            "id": uuid.uuid4(),
            "name": f"{prefix}-{index:05d}",
            "address": "127.0.0.1",
            "protocol": Protocol.ssh,
            "port": port,
            "credential_id": None if credential_id is None else uuid.UUID(credential_id),
            "tags": {"fleet": prefix},
            "vars": {},
            "description": "",
            "host_key_fingerprint": host_key_fingerprint,
        }
        for index in range(count)
    ]
    engine = create_engine(stack.settings)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            for start in range(0, count, 5000):
                await session.execute(insert(Target), rows[start : start + 5000])
    finally:
        await engine.dispose()


async def ssh_key_credential(http: httpx.AsyncClient, stack: Stack, name: str) -> str:
    """A credential for the loopback sshd's user, made through the API; its id."""
    answer = await http.post(
        stack.api("/credentials"),
        headers=stack.headers,
        json={
            "name": name,
            "kind": "ssh_key",
            "username": stack.sshd.username,
            "secret": {"private_key": stack.sshd.client_key_text},
        },
    )
    answer.raise_for_status()
    credential_id: str = answer.json()["id"]
    return credential_id


async def save_job(http: httpx.AsyncClient, stack: Stack, document: dict[str, Any]) -> str:
    answer = await http.post(stack.api("/jobs"), json=document, headers=stack.headers)
    answer.raise_for_status()
    job_id: str = answer.json()["id"]
    return job_id


async def run_job(
    http: httpx.AsyncClient, stack: Stack, temporal: Client, job_id: str
) -> tuple[str, float]:
    """Starts a run through the API and waits for its workflow to end; the run id and the
    seconds from the request to the end."""
    started = time.perf_counter()
    answer = await http.post(
        stack.api(f"/jobs/{job_id}/runs"), json={}, headers=stack.headers, timeout=60
    )
    answer.raise_for_status()
    accepted = answer.json()
    summary = await temporal.get_workflow_handle(accepted["workflow_id"]).result()
    seconds = time.perf_counter() - started
    if summary["status"] != "succeeded":
        raise RuntimeError(f"run {accepted['id']} ended {summary['status']}: {summary['reason']}")
    return accepted["id"], seconds


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Row:
    """One line of the results table."""

    benchmark: str
    case: str
    measure: str
    ours: float
    baseline: float | None = None
    baseline_name: str = ""
    unit: str = "s"
    aim: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        assert self.baseline is not None
        return self.ours / self.baseline


def median(values: list[float]) -> float:
    return statistics.median(values)
