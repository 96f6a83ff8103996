"""B2's baseline: a bare Temporal workflow with one activity making the same HTTP request,
served by a worker in a process of its own on the same dev server (plain data converter, no
codec, no database)."""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    # The workflow sandbox re-imports this module; httpx is for the activity only.
    import httpx

TASK_QUEUE = "bench-bare"


class Fetcher:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    @activity.defn(name="bench-fetch")
    async def fetch(self, url: str) -> int:
        answer = await self.http.get(url)
        return answer.status_code


@workflow.defn(name="bench-bare")
class BareWorkflow:
    @workflow.run
    async def run(self, url: str) -> int:
        status: int = await workflow.execute_activity(
            "bench-fetch", url, start_to_close_timeout=timedelta(seconds=30)
        )
        return status


async def serve(address: str) -> None:
    client = await Client.connect(address)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with httpx.AsyncClient() as http:
        worker = Worker(
            client,
            task_queue=TASK_QUEUE,
            workflows=[BareWorkflow],
            activities=[Fetcher(http).fetch],
        )
        async with worker:
            await stop.wait()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
