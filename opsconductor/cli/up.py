"""`opsconductor up`: the embedded default, one command for the whole stack.

It supervises its children: PostgreSQL and the Temporal dev server (unless external ones are
configured), then the API and one worker on every queue as separate processes. Each child has
its own session so a Ctrl-C reaches only `up`, which stops them in order: API and worker first
(letting running activities finish), then Temporal, then PostgreSQL.

The terminal shows one status line per process and the banner; what the children log goes to
DATA_DIR/logs/<name>.log (JSON lines, as a file is not a terminal), and each status line says
where.
"""

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import typer

from opsconductor import __version__
from opsconductor.api.app import announce_generated_admin
from opsconductor.cli.failures import require_free_port
from opsconductor.config import Settings
from opsconductor.db import create_engine, create_sessionmaker, unit_of_work
from opsconductor.embedded.postgres import EmbeddedPostgres
from opsconductor.embedded.temporal import TemporalDevServer
from opsconductor.schema import upgrade_to_head
from opsconductor.security.keys import load_process_keys
from opsconductor.services.users import bootstrap_admin
from opsconductor.temporal.search_attributes import dev_server_search_attributes
from opsconductor.worker.health import RESTART_EXIT_CODE

READY_TIMEOUT = 60.0
CHILD_STOP_TIMEOUT = 30.0


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    # Starts the same process again (a worker that asks to be restarted).
    start_again: Callable[[], subprocess.Popen[bytes]]
    # How long a stop may take before the child is killed.
    stop_timeout: float = CHILD_STOP_TIMEOUT


def up_api_processes() -> int:
    """One API process per two cores: the worker, Temporal and PostgreSQL need the rest."""
    return max(1, (os.cpu_count() or 1) // 2)


def bring_up(settings: Settings) -> int:
    _check_ports(settings)
    data_dir = settings.resolved_data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    load_process_keys(settings)

    with ExitStack() as stack:
        environment = dict(os.environ, OPSCONDUCTOR_DATA_DIR=str(data_dir))
        postgres_line = f"external ({_redacted(settings.database_url)})"
        if settings.database_url is None:
            postgres = EmbeddedPostgres(data_dir / "postgres", settings.postgres_port)
            # Registered first: a Ctrl-C during the start must still stop it.
            stack.callback(_stop_step, "PostgreSQL", postgres.stop)
            postgres.start()
            environment["OPSCONDUCTOR_DATABASE_URL"] = postgres.url()
            postgres_line = f"127.0.0.1:{settings.postgres_port} (embedded)"
            _status("PostgreSQL", f"ready on {postgres_line}", postgres.log_path)

        temporal_line = f"{settings.temporal_address} (external)"
        ui_line = settings.temporal_ui_url or "(served by your Temporal deployment)"
        if settings.temporal_address is None:
            server = TemporalDevServer(
                port=settings.temporal_port,
                ui_port=settings.temporal_ui_port,
                db_file=data_dir / "temporal" / "temporal.db",
                log_path=data_dir / "logs" / "temporal.log",
                namespace=settings.temporal_namespace,
                search_attributes=dev_server_search_attributes(),
                ui_codec_endpoint=f"http://{settings.api_host}:{settings.api_port}/codec",
            )
            stack.callback(_stop_step, "Temporal", server.stop)
            server.start()
            _status("Temporal", f"ready on {server.address} (dev server)", server.log_path)
            environment["OPSCONDUCTOR_TEMPORAL_ADDRESS"] = server.address
            environment.update(_dev_ui_codec_access(settings))
            temporal_line = f"{server.address} (dev server, namespace {server.namespace})"
            ui_line = server.ui_url or ui_line
            if server.ui_url and settings.temporal_ui_url is None:
                # The console links each run to its workflow in this UI.
                environment["OPSCONDUCTOR_TEMPORAL_UI_URL"] = server.ui_url

        resolved = settings.model_copy(
            update={
                "database_url": environment.get("OPSCONDUCTOR_DATABASE_URL"),
                "temporal_address": environment.get("OPSCONDUCTOR_TEMPORAL_ADDRESS"),
                "data_dir": data_dir,
            }
        )
        _say("applying database migrations")
        upgrade_to_head(str(resolved.database_url))
        password = asyncio.run(_bootstrap_admin(resolved))
        if password is not None:
            announce_generated_admin(resolved.admin_username, password)

        logs = data_dir / "logs"
        api_processes = settings.api_workers or up_api_processes()
        api = _spawn("api", ["api", "--workers", str(api_processes)], environment, logs)
        worker = _spawn("worker", ["worker"], environment, logs)
        # A stopping worker lets running steps finish for its grace: not killed before that.
        worker.stop_timeout += settings.worker_shutdown_grace.total_seconds()
        children = [api, worker]
        stack.callback(_stop_children, children)

        api_url = f"http://{settings.api_host}:{settings.api_port}"
        if not _wait_until_healthy(api_url, children):
            _say("the stack did not become healthy; stopping", error=True)
            for child in children:
                _say_log_tail(child)
            return 1
        _status(
            "api",
            f"ready on {api_url} (pid {api.process.pid}, {api_processes} "
            f"process{'es' if api_processes > 1 else ''})",
            api.log_path,
        )
        _status("worker", f"ready on every queue (pid {worker.process.pid})", worker.log_path)
        _print_banner(api_url, ui_line, temporal_line, postgres_line, data_dir)
        return _supervise(children)
    return 0


def _dev_ui_codec_access(settings: Settings) -> dict[str, str]:
    """Lets the dev Web UI (which has no login) decode payloads through our codec endpoint."""
    origins = [f"http://{host}:{settings.temporal_ui_port}" for host in ("127.0.0.1", "localhost")]
    return {
        # CORS of /codec/* only: the UI may decode payloads, not call the rest of the API.
        "OPSCONDUCTOR_CODEC_CORS_ORIGINS": ",".join([*settings.codec_cors_origins, *origins]),
        "OPSCONDUCTOR_CODEC_TRUST_LOOPBACK_UI": "true",
    }


async def _bootstrap_admin(settings: Settings) -> str | None:
    engine = create_engine(settings)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            return await bootstrap_admin(session, settings)
    finally:
        await engine.dispose()


def _check_ports(settings: Settings) -> None:
    host = settings.api_host
    require_free_port(host, settings.api_port, "OPSCONDUCTOR_API_PORT")
    if settings.database_url is None:
        require_free_port("127.0.0.1", settings.postgres_port, "OPSCONDUCTOR_POSTGRES_PORT")
    if settings.temporal_address is None:
        require_free_port("127.0.0.1", settings.temporal_port, "OPSCONDUCTOR_TEMPORAL_PORT")
        require_free_port("127.0.0.1", settings.temporal_ui_port, "OPSCONDUCTOR_TEMPORAL_UI_PORT")


def _spawn(name: str, arguments: list[str], environment: dict[str, str], logs: Path) -> Child:
    logs.mkdir(parents=True, exist_ok=True)
    start = partial(_start, arguments, environment, logs / f"{name}.log")
    return Child(name, start(), logs / f"{name}.log", start)


def _start(
    arguments: list[str], environment: dict[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "opsconductor", *arguments],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_until_healthy(api_url: str, children: list[Child]) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if any(child.process.poll() is not None for child in children):
            return False
        try:
            answer = httpx.get(f"{api_url}/health", timeout=5)
            if answer.status_code == 200 and answer.json()["status"] == "healthy":
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


def _supervise(children: list[Child]) -> int:
    stop_requested = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    while not stop_requested:
        if not keep_children_running(children):
            return 1
        time.sleep(0.5)
    _say("stopping (running steps may finish first: OPSCONDUCTOR_WORKER_SHUTDOWN_GRACE)")
    return 0


def keep_children_running(children: list[Child]) -> bool:
    """Starts again a child that asked to be (a worker holding a run it could not give back,
    worker/health.py); False when one exited otherwise, which stops the stack."""
    for child in children:
        if child.process.poll() == RESTART_EXIT_CODE:
            _say(f"{child.name} asked to be restarted ({child.log_path}); starting it again")
            child.process = child.start_again()
        elif child.process.poll() is not None:
            _say(f"{child.name} exited with {child.process.returncode}; stopping", error=True)
            _say_log_tail(child)
            return False
    return True


def _stop_children(children: list[Child]) -> None:
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.process.wait(child.stop_timeout)
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()
        _say(f"{child.name} stopped")


def _stop_step(name: str, stop: Callable[[], None]) -> None:
    stop()
    _say(f"{name} stopped")


def _print_banner(
    api_url: str, ui_line: str, temporal_line: str, postgres_line: str, data_dir: Path
) -> None:
    typer.secho(f"\nOpsConductor {__version__} is up.", fg=typer.colors.GREEN, bold=True)
    for label, value in (
        ("Console", f"{api_url}/"),
        ("API", f"{api_url}/api/v1"),
        ("API docs", f"{api_url}/docs"),
        ("Health", f"{api_url}/health"),
        ("Temporal UI", ui_line),
        ("Temporal", temporal_line),
        ("PostgreSQL", postgres_line),
        ("Data", str(data_dir)),
    ):
        typer.echo(f"  {label:<12} {value}")
    typer.echo("Press Ctrl-C to stop.\n")


def _say(message: str, *, error: bool = False) -> None:
    typer.secho(f"up: {message}", err=True, fg=typer.colors.RED if error else None)


def _status(name: str, state: str, log_path: Path) -> None:
    """The one line a process gets on the terminal; its log is in the file it names."""
    _say(f"{name:<11} {state}  (log: {log_path})")


def _say_log_tail(child: Child, lines: int = 20) -> None:
    if child.process.poll() is None or not child.log_path.exists():
        return
    tail = child.log_path.read_text(errors="replace").splitlines()[-lines:]
    _say(f"the last lines of {child.log_path}:\n" + "\n".join(tail), error=True)


def _redacted(url: str | None) -> str:
    if url is None or "@" not in url:
        return str(url)
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.partition('@')[2]}"
