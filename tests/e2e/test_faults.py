"""Faults in the middle of a run: the worker killed, the worker stopped for a deploy, Temporal
restarted, PostgreSQL stopped.

The module owns its PostgreSQL and its Temporal dev server (with state on disk), so it may stop
them without disturbing other tests; `opsconductor api` and `opsconductor worker` run as real
processes. Every step appends a line to a file on the loopback sshd host, so the file counts
how often each step's remote command really ran.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from opsconductor.embedded.postgres import EmbeddedPostgres
from opsconductor.embedded.temporal import TemporalDevServer
from opsconductor.schema import upgrade_to_head
from opsconductor.temporal.search_attributes import dev_server_search_attributes
from tests.fixtures.ports import free_port
from tests.fixtures.sshd import LoopbackSshd
from tests.identity_helpers import PROBLEM
from tests.process_stack import TERMINAL, ApiClient, ProcessStack, process_stack
from tests.vault_helpers import key_credential, sshd_target

pytestmark = [pytest.mark.slow, pytest.mark.integration]

# A worker that dies is noticed by the step's heartbeat timeout (30 s; 10 s for a chunked
# `ssh.command`), then the step retries.
RUN_ENDS_WITHIN = 150.0
# The workers' shutdown grace, standing in for the production 10 minutes: a step that outlasts
# it is cut off at a deploy, one that ends within it finishes on the stopping worker.
SHUTDOWN_GRACE_SECONDS = 5


@dataclass
class FaultStack:
    processes: ProcessStack
    postgres: EmbeddedPostgres
    temporal: TemporalDevServer
    admin: ApiClient


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory, sshd: LoopbackSshd) -> Iterator[FaultStack]:
    workdir = tmp_path_factory.mktemp("faults")
    postgres = EmbeddedPostgres(workdir / "postgres", port=free_port())
    postgres.start()
    temporal = TemporalDevServer(
        port=free_port(),
        log_path=workdir / "temporal.log",
        db_file=workdir / "temporal" / "temporal.db",
        search_attributes=dev_server_search_attributes(),
    )
    try:
        upgrade_to_head(postgres.url())
        temporal.start()
        with process_stack(
            workdir,
            postgres.url(),
            temporal.address,
            OPSCONDUCTOR_WORKER_SHUTDOWN_GRACE=f"{SHUTDOWN_GRACE_SECONDS}s",
        ) as processes:
            admin = ApiClient(processes.url)
            credential = admin.ok("POST", "/credentials", json=key_credential(sshd))
            admin.ok("POST", "/targets", json=sshd_target(sshd, credential["id"]))
            yield FaultStack(processes, postgres, temporal, admin)
    finally:
        temporal.stop()
        postgres.stop()


@pytest.fixture
def tally() -> Iterator[Path]:
    """The file on the sshd host that the steps append to (the host is this machine)."""
    path = Path(f"/tmp/opsc-faults-{uuid.uuid4().hex}")
    yield path
    path.unlink(missing_ok=True)


def appending(step_id: str, tally: Path, *, needs: str | None = None, sleep: int = 0) -> Any:
    """A step that appends its id when it starts and `<id>-done` when it ends."""
    command = f"echo {step_id} >> {tally}"
    if sleep:
        command += f"; sleep {sleep}; echo {step_id}-done >> {tally}"
    step: dict[str, Any] = {
        "id": step_id,
        "action": "ssh.command",
        "with": {"command": command},
        "retry": {"attempts": 2, "interval": "1s"},
    }
    if needs:
        step["needs"] = [needs]
    return step


def three_steps(tally: Path, sleep: int) -> dict[str, Any]:
    return {
        "name": f"faults-{uuid.uuid4().hex[:8]}",
        "targets": {"names": ["loopback"]},
        "steps": [
            appending("a", tally),
            appending("b", tally, needs="a", sleep=sleep),
            appending("c", tally, needs="b"),
        ],
    }


def lines(tally: Path) -> Counter[str]:
    return Counter(tally.read_text().split()) if tally.exists() else Counter()


def wait_for_line(tally: Path, line: str, stack: ProcessStack, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while lines(tally)[line] == 0:
        assert time.monotonic() < deadline, f"{line!r} never written\n{stack.report()}"
        time.sleep(0.1)


def finished(admin: ApiClient, run_id: str, stack: ProcessStack) -> dict[str, Any]:
    deadline = time.monotonic() + RUN_ENDS_WITHIN
    while True:
        try:
            answer = admin.http.get(f"/runs/{run_id}", params={"include": "targets"})
        except httpx.HTTPError:
            answer = None
        if answer is not None and answer.status_code == 200:
            run: dict[str, Any] = answer.json()
            if run["status"] in TERMINAL:
                return run
        assert time.monotonic() < deadline, f"run {run_id} not over\n{stack.report()}"
        time.sleep(0.5)


def steps_of(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (target,) = run["targets"]
    return {step["id"]: step for step in target["steps"]}


def test_a_worker_killed_mid_step_is_replaced_and_the_run_completes(
    faults: FaultStack, tally: Path
) -> None:
    stack = faults.processes
    run_id = faults.admin.start(three_steps(tally, sleep=4))
    # A slow scan of an unroutable network, so the worker has an nmap child when it dies.
    faults.admin.ok("POST", "/discovery/scans", json={"hosts": "192.0.2.0/28", "timing": "T1"})
    worker = psutil.Process(stack.worker.process.pid)
    nmap = stack.worker.wait_until(
        lambda: [child for child in worker.children() if child.name() == "nmap"],
        30,
        "an nmap child of the worker",
    )
    wait_for_line(tally, "b", stack)
    stack.worker.process.kill()  # SIGKILL: no drain, no goodbye to Temporal
    stack.worker.process.wait(10)
    # nmap ends with the worker that started it (the kernel's parent-death signal).
    _, alive = psutil.wait_procs(nmap, timeout=10)
    assert alive == [], alive
    stack.restart_worker()

    run = finished(faults.admin, run_id, stack)
    assert run["status"] == "succeeded", f"{run}\n{stack.report()}"
    counted = lines(tally)
    # a and c ran exactly once. b was in flight when the worker died: Temporal noticed the
    # missing heartbeats and ran it again, its second and last allowed attempt.
    assert (counted["a"], counted["b"], counted["c"]) == (1, 2, 1), counted
    steps = steps_of(run)
    assert [steps[step]["attempts"] for step in "abc"] == [1, 2, 1], steps


def test_a_deploy_lets_short_steps_finish_and_re_runs_a_cut_off_step_on_the_new_worker(
    faults: FaultStack, tally: Path
) -> None:
    stack = faults.processes
    # Side by side on one target, with the default retry (one attempt): one step ends within
    # the grace, the other outlasts it.
    short = f"echo short >> {tally}; sleep 1; echo short-done >> {tally}"
    long = (
        f"echo long >> {tally}; echo long started; sleep {2 * SHUTDOWN_GRACE_SECONDS}; "
        f"echo long-done >> {tally}; echo long finished"
    )
    document = {
        "name": f"deploy-{uuid.uuid4().hex[:8]}",
        "targets": {"names": ["loopback"]},
        "steps": [
            {"id": "short", "action": "ssh.command", "with": {"command": short}},
            {"id": "long", "action": "ssh.command", "with": {"command": long}},
        ],
    }
    run_id = faults.admin.start(document)
    wait_for_line(tally, "short", stack)
    wait_for_line(tally, "long", stack)
    stopping = stack.worker
    stopping.process.send_signal(signal.SIGTERM)  # what a deploy (docker stop) sends
    stack.restart_worker()

    # The old worker finished the short step, cut off the long one when the grace ended, and
    # left cleanly before the long step's re-run could end: that one ran on the new worker.
    assert stopping.process.wait(SHUTDOWN_GRACE_SECONDS + 60) == 0, stack.report()
    assert lines(tally)["short-done"] == 1
    assert lines(tally)["long-done"] == 0

    run = finished(faults.admin, run_id, stack)
    assert run["status"] == "succeeded", f"{run}\n{stack.report()}"
    # The long command ran twice, never more, and only the second run finished.
    assert lines(tally) == Counter({"short": 1, "short-done": 1, "long": 2, "long-done": 1})
    steps = steps_of(run)
    assert (steps["short"]["attempts"], steps["long"]["attempts"]) == (1, 2), steps
    # The run log tells the attempts apart.
    logged = faults.admin.ok("GET", f"/runs/{run_id}/logs")
    by_attempt = sorted(
        (line["step_id"], line["attempt"], line["line"])
        for line in logged
        if line["step_id"] == "long"
    )
    assert by_attempt == [
        ("long", 1, "long started"),
        ("long", 2, "long finished"),
        ("long", 2, "long started"),
    ], logged


def test_temporal_restarted_mid_run_resumes_the_run(faults: FaultStack, tally: Path) -> None:
    stack = faults.processes
    run_id = faults.admin.start(three_steps(tally, sleep=3))
    wait_for_line(tally, "b", stack)
    faults.temporal.stop()
    # The API keeps answering from the database while Temporal is away.
    during = faults.admin.http.get(f"/runs/{run_id}")
    assert during.status_code == 200, during.text
    assert httpx.get(f"{stack.url}/health", timeout=10).status_code == 503
    time.sleep(2)
    faults.temporal.start()

    run = finished(faults.admin, run_id, stack)
    assert run["status"] == "succeeded", f"{run}\n{stack.report()}"
    counted = lines(tally)
    assert (counted["a"], counted["c"]) == (1, 1), counted
    assert 1 <= counted["b"] <= 2, counted
    # Nothing was restarted by hand: the same API and worker start the next run.
    again = faults.admin.start(three_steps(tally.with_suffix(".again"), sleep=0))
    assert finished(faults.admin, again, stack)["status"] == "succeeded"
    tally.with_suffix(".again").unlink(missing_ok=True)


def test_postgres_stopped_mid_run_gives_503_and_the_records_catch_up(
    faults: FaultStack, tally: Path
) -> None:
    stack = faults.processes
    run_id = faults.admin.start(three_steps(tally, sleep=4))
    wait_for_line(tally, "b", stack)
    faults.postgres.stop()
    try:
        down = faults.admin.http.get(f"/runs/{run_id}")
        assert down.status_code == 503, down.text
        assert down.headers["content-type"] == PROBLEM
        assert down.json()["detail"] == "the database is unreachable; retry shortly"
        assert httpx.get(f"{stack.url}/health", timeout=10).status_code == 503
        # b ends on the host while nothing can be recorded; the worker keeps retrying.
        wait_for_line(tally, "b-done", stack)
        time.sleep(2)
        assert lines(tally)["c"] == 0
    finally:
        faults.postgres.start()

    run = finished(faults.admin, run_id, stack)
    assert run["status"] == "succeeded", f"{run}\n{stack.report()}"
    assert lines(tally) == Counter({"a": 1, "b": 1, "b-done": 1, "c": 1})
    steps = steps_of(run)
    assert [steps[step]["status"] for step in "abc"] == ["succeeded"] * 3, steps
    assert stack.api.process.poll() is None
    assert stack.worker.process.poll() is None
