"""`opsconductor schedules …`: the Temporal side of schedules."""

import asyncio

import typer
from sqlalchemy.exc import DBAPIError

from opsconductor.api.background import reconcile
from opsconductor.cli.console import fail, fail_on_configuration_errors
from opsconductor.config import Settings
from opsconductor.db import create_engine, create_sessionmaker
from opsconductor.errors import DependencyUnavailable
from opsconductor.services.schedule_reconciler import ReconcileReport
from opsconductor.temporal.client import connect

app = typer.Typer(no_args_is_help=True, help="Keep Temporal's schedules in step.")


@app.command("reconcile")
@fail_on_configuration_errors
def reconcile_command() -> None:
    """Create missing, fix changed and delete extra Temporal schedules (idempotent)."""
    settings = Settings()

    async def main() -> ReconcileReport:
        engine = create_engine(settings)
        try:
            return await reconcile(create_sessionmaker(engine), await connect(settings))
        finally:
            await engine.dispose()

    try:
        report = asyncio.run(main())
    except (DependencyUnavailable, RuntimeError, DBAPIError) as error:
        # Temporal or PostgreSQL away, or another reconcile held the lock for too long.
        raise fail(f"schedules not reconciled: {error}") from None
    for label, ids in (
        ("created", report.created),
        ("updated", report.updated),
        ("deleted", report.deleted),
    ):
        for schedule_id in ids:
            typer.echo(f"{label} {schedule_id}")
    typer.echo(
        f"schedules reconciled: {len(report.created)} created, {len(report.updated)} updated, "
        f"{len(report.deleted)} deleted, {report.unchanged} unchanged"
    )
