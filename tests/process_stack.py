"""`opsconductor api` and `opsconductor worker` as real processes, for end-to-end tests.

The processes get their own data folder, keys and ports; PostgreSQL and Temporal are whatever
the caller names (the session's, or ones the test owns so that it may stop them). The worker
can be killed and started again while the API keeps running.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.test_up import Command, user_env
from tests.fixtures.ports import free_port
from tests.identity_helpers import ADMIN_PASSWORD, ADMIN_USERNAME

TERMINAL = {"succeeded", "failed", "cancelled"}


@dataclass
class ProcessStack:
    workdir: Path
    env: dict[str, str]
    url: str
    worker_metrics: str
    temporal_address: str
    api: Command
    worker: Command
    # Every worker process started so far, the killed ones too: their logs are evidence.
    workers: list[Command] = field(default_factory=list)
    api_starts: int = 1

    def report(self) -> str:
        return "\n".join(command.report() for command in (self.api, *self.workers))

    def restart_worker(self) -> Command:
        """A new worker process (after the previous one was killed or stopped), with a metrics
        port of its own: a stopping worker holds its port while it drains, as each container
        of a deploy has its own."""
        metrics_port = free_port()
        self.env = {**self.env, "OPSCONDUCTOR_WORKER_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}"}
        self.worker_metrics = f"http://127.0.0.1:{metrics_port}/metrics"
        self.worker = Command(self.workdir, f"worker-{len(self.workers)}", ["worker"], self.env)
        self.workers.append(self.worker)
        return self.worker

    def restart_api(self) -> Command:
        """A new API process (after the previous one was killed), once it is healthy."""
        self.api = Command(self.workdir, f"api-{self.api_starts}", ["api"], self.env)
        self.api_starts += 1
        self.api.wait_until(lambda: healthy(self.url), 90, f"healthy at {self.url}/health")
        return self.api

    def logs(self) -> str:
        """Everything the API and every worker printed."""
        return "\n".join(command.stdout + command.stderr for command in (self.api, *self.workers))


def healthy(url: str) -> bool:
    try:
        answer = httpx.get(f"{url}/health", timeout=5)
    except httpx.HTTPError:
        return False
    return answer.status_code == 200 and answer.json()["status"] == "healthy"


@contextmanager
def process_stack(
    workdir: Path, database_url: str, temporal_address: str, **settings: str
) -> Iterator[ProcessStack]:
    """The API and one worker serving every queue, healthy; both stopped afterwards."""
    api_port, metrics_port = free_port(), free_port()
    env = user_env(
        OPSCONDUCTOR_DATA_DIR=str(workdir / "data"),
        OPSCONDUCTOR_DATABASE_URL=database_url,
        OPSCONDUCTOR_TEMPORAL_ADDRESS=temporal_address,
        OPSCONDUCTOR_MASTER_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        OPSCONDUCTOR_SECRET_KEY=secrets.token_urlsafe(32),
        OPSCONDUCTOR_ADMIN_PASSWORD=ADMIN_PASSWORD,
        OPSCONDUCTOR_API_PORT=str(api_port),
        OPSCONDUCTOR_WORKER_METRICS_ADDRESS=f"127.0.0.1:{metrics_port}",
        OPSCONDUCTOR_LOG_FORMAT="json",
        # A stopped worker lets in-flight steps (or a fuzzer's scan) run this long, not the
        # production default of 10 minutes: teardown stops it and then waits for it.
        **{"OPSCONDUCTOR_WORKER_SHUTDOWN_GRACE": "5s", **settings},
    )
    api = Command(workdir, "api", ["api"], env)
    worker = Command(workdir, "worker", ["worker"], env)
    url = f"http://127.0.0.1:{api_port}"
    stack = ProcessStack(
        workdir,
        env,
        url,
        f"http://127.0.0.1:{metrics_port}/metrics",
        temporal_address,
        api,
        worker,
        [worker],
    )
    try:
        api.wait_until(lambda: healthy(url), 90, f"healthy at {url}/health")
        yield stack
    finally:
        # The API now serving, which `restart_api` may have replaced.
        stack.api.kill()
        for command in stack.workers:
            command.kill()


class ApiClient:
    """The admin, signed in over HTTP to a process stack."""

    def __init__(self, url: str, timeout: float = 30):
        self.http = httpx.Client(base_url=f"{url}/api/v1", timeout=timeout)
        answer = self.http.post(
            "/auth/login", json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}
        )
        assert answer.status_code == 200, answer.text
        self.token = str(answer.json()["access_token"])
        self.http.headers["Authorization"] = f"Bearer {self.token}"

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self.http.request(method, path, **kwargs)
        assert answer.status_code in (200, 201, 202), f"{method} {path}: {answer.text}"
        return answer.json()

    def start(self, document: dict[str, Any], parameters: dict[str, Any] | None = None) -> str:
        """Saves the job and starts a run of it; the run's id."""
        job = self.ok("POST", "/jobs", json=document)
        run = self.ok("POST", f"/jobs/{job['id']}/runs", json={"parameters": parameters or {}})
        return str(run["id"])
