"""A worker holding a run it cannot evict restarts itself, and the run carries on on the next
worker (docs/reliability.md, "A worker that cannot give a run back")."""

import subprocess
import sys
import uuid
from pathlib import Path

from temporalio.client import Client

from opsconductor.worker.health import RESTART_EXIT_CODE
from tests.fixtures.stuck_worker import HeldOnEviction, held_worker


async def test_a_worker_stuck_evicting_a_run_exits_to_restart_and_the_run_moves_on(
    temporal_address: str, tmp_path: Path
) -> None:
    client = await Client.connect(temporal_address)
    queue = f"stuck-{uuid.uuid4().hex[:8]}"
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        stuck = subprocess.Popen(
            [sys.executable, "-m", "tests.fixtures.stuck_worker", temporal_address, queue],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    run = await client.start_workflow(HeldOnEviction.run, id=f"held-{queue}", task_queue=queue)
    try:
        exit_code = stuck.wait(timeout=60)
    finally:
        stuck.kill()
    said = log_path.read_text(errors="replace")
    assert exit_code == RESTART_EXIT_CODE, said
    assert "continually retrying eviction" in said
    assert "this worker restarts so that its run moves on" in said
    assert str(run.result_run_id) in said

    async with held_worker(client, queue, cached=True):
        await run.signal(HeldOnEviction.release)
        assert await run.result() == "released"
