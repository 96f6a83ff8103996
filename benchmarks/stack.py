"""The stack the benchmarks measure, started as `opsconductor up` starts it: embedded PostgreSQL,
the Temporal dev server, then the API and one worker as separate processes (so that each one's
CPU seconds and memory can be read), plus the loopback sshd and an HTTP receiver."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import psutil

from opsconductor.api.app import API_PREFIX
from opsconductor.config import Settings
from opsconductor.embedded.postgres import EmbeddedPostgres
from opsconductor.embedded.temporal import TemporalDevServer
from opsconductor.schema import upgrade_to_head
from opsconductor.temporal.search_attributes import dev_server_search_attributes
from tests.fixtures.ports import free_port
from tests.fixtures.sshd import LoopbackSshd

ADMIN_PASSWORD = "bench-admin-password"
# Not the tests' user: the sshd fixture resets its user's password, which would break a
# concurrent test session's password logins.
SSH_USER = "opsc-bench"
# Unauthenticated connections the benchmark's sshd admits at once: B1's baselines open all N
# at once (asyncssh's gather, ansible's N forks), and B1 runs N = 1,000, where the tests' 500
# dropped the floor's connections past it.
SSH_MAX_STARTUPS = 2000
READY_TIMEOUT = 90.0


@dataclass
class Stack:
    workdir: Path
    settings: Settings
    environment: dict[str, str]
    api_url: str
    sshd: LoopbackSshd
    receiver_url: str
    processes: dict[str, psutil.Process] = field(default_factory=dict)
    token: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def api(self, path: str) -> str:
        return f"{self.api_url}{API_PREFIX}{path}"

    def cpu_seconds(self) -> dict[str, float]:
        """User + system CPU seconds of each of our processes so far, with their children's
        (the API's processes when it runs several)."""
        return {name: process_tree_cpu(process) for name, process in self.processes.items()}


def process_tree_cpu(process: psutil.Process) -> float:
    """User + system CPU seconds of `process` and its descendants, with those of the children it
    has reaped (PostgreSQL's postmaster reaps the backends of closed connections)."""
    root = process.cpu_times()
    seconds = root.user + root.system + root.children_user + root.children_system
    for child in process.children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue  # ended meanwhile: its parent's children_* time holds it once reaped
        seconds += times.user + times.system
    return seconds


def cached_bytecode_environment(workdir: Path, environment: dict[str, str]) -> dict[str, str]:
    """`environment` for a process of the stack (or the bare baseline's worker) that keeps its
    modules' compiled bytecode, in the working directory, as the Docker image ships it
    (`compileall` in the Dockerfile). The Temporal sandbox imports the workflow modules anew
    for every workflow run; with `PYTHONDONTWRITEBYTECODE` and a source checkout (this machine's
    setting) that import compiled `job_run.py` from source each time, a cost no deployment pays:
    15 % of the worker's CPU in B2 (benchmarks/README.md, "Issue #19: B2's round trips")."""
    cached = {
        name: value for name, value in environment.items() if name != "PYTHONDONTWRITEBYTECODE"
    }
    cached["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    return cached


def _spawn(
    arguments: list[str], environment: dict[str, str], log: IO[bytes]
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        arguments, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_healthy(api_url: str, children: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            raise RuntimeError("the API or the worker exited during start; see their logs")
        try:
            answer = httpx.get(f"{api_url}/health", timeout=5)
            if answer.status_code == 200 and answer.json()["status"] == "healthy":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the stack was not healthy within {READY_TIMEOUT:.0f}s")


def _postmaster(postgres: EmbeddedPostgres) -> psutil.Process:
    """PostgreSQL's postmaster: its pid is the first line of `postmaster.pid`."""
    return psutil.Process(int((postgres.pgdata / "postmaster.pid").read_text().split()[0]))


def _temporal_process(port: int) -> psutil.Process:
    for child in psutil.Process().children():
        if "start-dev" in child.cmdline() and str(port) in child.cmdline():
            return child
    raise RuntimeError("the Temporal dev server process was not found")


@contextmanager
def running_stack(workdir: Path, api_workers: int = 1) -> Iterator[Stack]:
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        postgres = EmbeddedPostgres(workdir / "postgres", port=free_port())
        stack.callback(postgres.stop)
        postgres.start()
        temporal_port = free_port()
        temporal = TemporalDevServer(
            port=temporal_port,
            log_path=workdir / "logs" / "temporal.log",
            search_attributes=dev_server_search_attributes(),
        )
        stack.callback(temporal.stop)
        temporal.start()
        upgrade_to_head(postgres.url())

        api_port = free_port()
        environment = {
            "OPSCONDUCTOR_ENV": "development",
            "OPSCONDUCTOR_DATA_DIR": str(workdir / "data"),
            "OPSCONDUCTOR_DATABASE_URL": postgres.url(),
            "OPSCONDUCTOR_TEMPORAL_ADDRESS": temporal.address,
            "OPSCONDUCTOR_API_PORT": str(api_port),
            "OPSCONDUCTOR_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
            "OPSCONDUCTOR_SECRET_KEY": secrets.token_urlsafe(32),
            "OPSCONDUCTOR_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "OPSCONDUCTOR_ACCESS_TOKEN_MINUTES": "1440",
            "OPSCONDUCTOR_PUBLIC_URL": f"http://127.0.0.1:{api_port}",
            "OPSCONDUCTOR_API_WORKERS": str(api_workers),
        }
        child_environment = cached_bytecode_environment(workdir, {**os.environ, **environment})
        logs = workdir / "logs"
        logs.mkdir(exist_ok=True)
        children: dict[str, subprocess.Popen[bytes]] = {}
        for name in ("api", "worker"):
            log = stack.enter_context((logs / f"{name}.log").open("ab"))
            children[name] = _spawn(
                [sys.executable, "-m", "opsconductor", name], child_environment, log
            )
            stack.callback(_stop, children[name])
        api_url = f"http://127.0.0.1:{api_port}"
        _wait_healthy(api_url, list(children.values()))

        receiver_file = workdir / "receiver.url"
        receiver_file.unlink(missing_ok=True)
        receiver_log = stack.enter_context((logs / "receiver.log").open("ab"))
        receiver = _spawn(
            [sys.executable, "-m", "benchmarks.receiver", str(receiver_file)],
            child_environment,
            receiver_log,
        )
        stack.callback(_stop, receiver)

        sshd = stack.enter_context(
            LoopbackSshd(workdir / "sshd", username=SSH_USER, max_startups=SSH_MAX_STARTUPS)
        )
        settings = Settings.model_validate(
            {
                "env": "development",
                "data_dir": workdir / "data",
                "database_url": postgres.url(),
                "temporal_address": temporal.address,
                "master_key": environment["OPSCONDUCTOR_MASTER_KEY"],
                "secret_key": environment["OPSCONDUCTOR_SECRET_KEY"],
            }
        )
        result = Stack(
            workdir=workdir,
            settings=settings,
            environment=environment,
            api_url=api_url,
            sshd=sshd,
            receiver_url=_wait_for_file(receiver_file),
            processes={
                "api": psutil.Process(children["api"].pid),
                "worker": psutil.Process(children["worker"].pid),
                "temporal": _temporal_process(temporal_port),
                "postgres": _postmaster(postgres),
            },
        )
        login = httpx.post(
            result.api("/auth/login"),
            json={"username": "admin", "password": ADMIN_PASSWORD},
            timeout=30,
        )
        login.raise_for_status()
        result.token = login.json()["access_token"]
        yield result


def _wait_for_file(path: Path) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if path.exists() and (text := path.read_text()):
            return text
        time.sleep(0.1)
    raise RuntimeError("the HTTP receiver did not start")
