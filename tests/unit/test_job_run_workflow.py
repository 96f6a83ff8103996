"""smoke"""
from collections.abc import AsyncIterator

import pytest

from tests.workflow_stubs import RunStatus, StubWorld, stub_world


@pytest.fixture(scope="module")
async def world(temporal_address: str) -> AsyncIterator[StubWorld]:
    async with stub_world(temporal_address) as world:
        yield world


def ssh(step_id: str, **extra):
    return {"id": step_id, "action": "ssh.command", "with": {"command": f"echo {step_id}"}, **extra}


async def test_smoke(world: StubWorld) -> None:
    handle, book = await world.start({"name": "smoke", "steps": [ssh("a"), ssh("b", needs=["a"])]}, 3)
    summary = await handle.result()
    assert summary.status is RunStatus.succeeded, summary
    print(book.table())
