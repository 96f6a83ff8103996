"""The commands that run or repair the server itself: up, api, worker, migrate, check. Loaded
only when one of them runs (cli/main.py), so client commands start without the server's
imports."""

import asyncio
from typing import Annotated

import typer

from opsconductor.api.serve import serve
from opsconductor.cli.check import run_probe
from opsconductor.cli.failures import fail_on_configuration_errors, require_free_port
from opsconductor.cli.up import bring_up
from opsconductor.config import Settings
from opsconductor.contracts.queues import ALL_QUEUES, TaskQueue
from opsconductor.db import database_url
from opsconductor.logging import configure_logging
from opsconductor.processes import exit_now
from opsconductor.schema import upgrade_to_head
from opsconductor.security.keys import load_process_keys
from opsconductor.temporal.client import connect
from opsconductor.temporal.search_attributes import ensure_search_attributes
from opsconductor.worker.main import run_workers

app = typer.Typer()


@app.command()
@fail_on_configuration_errors
def up() -> None:
    """Start the whole stack on this machine: PostgreSQL, Temporal, the API and a worker."""
    raise typer.Exit(bring_up(Settings()))


@app.command()
@fail_on_configuration_errors
def api(
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="API processes sharing the port (default: OPSCONDUCTOR_API_WORKERS, else 1).",
        ),
    ] = None,
) -> None:
    """Run the REST API (uses OPSCONDUCTOR_DATABASE_URL and OPSCONDUCTOR_TEMPORAL_ADDRESS)."""
    settings = Settings()
    configure_logging(settings, service="api")
    load_process_keys(settings)
    require_free_port(settings.api_host, settings.api_port, "OPSCONDUCTOR_API_PORT")
    serve(settings, workers or settings.api_workers or 1)


@app.command()
@fail_on_configuration_errors
def worker(
    queue: Annotated[
        list[TaskQueue] | None,
        typer.Option("--queue", "-q", help="Task queue to serve; repeat for more. Default: all."),
    ] = None,
) -> None:
    """Run a Temporal worker for the chosen task queues."""
    settings = Settings()
    configure_logging(settings, service="worker")
    load_process_keys(settings)
    asyncio.run(run_workers(settings, queue or list(ALL_QUEUES)))
    exit_now(0)


@app.command()
@fail_on_configuration_errors
def migrate() -> None:
    """Bring the database schema to the newest migration."""
    settings = Settings()
    configure_logging(settings, service="migrate")
    upgrade_to_head(database_url(settings))
    typer.echo("database schema is up to date")
    if settings.temporal_address is not None:
        added = asyncio.run(_register_search_attributes(settings))
        typer.echo(f"Temporal search attributes registered: {', '.join(added) or 'none missing'}")
        exit_now(0)  # it used a Temporal client (see exit_now)


async def _register_search_attributes(settings: Settings) -> list[str]:
    return await ensure_search_attributes(await connect(settings))


@app.command()
@fail_on_configuration_errors
def check(
    wait: Annotated[float, typer.Option(help="Seconds a queue may take to answer.")] = 10.0,
) -> None:
    """Ask every task queue to run one activity; exit non-zero if any queue did not answer."""
    exit_now(asyncio.run(run_probe(Settings(), wait)))
