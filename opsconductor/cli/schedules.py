"""`opsconductor schedules …`: list, pause, resume and trigger schedules through the API, and
`reconcile`, which works straight on PostgreSQL and Temporal (a server-side repair command)."""

import asyncio
from typing import Annotated, Any

import typer

from opsconductor.cli.client import ApiClient, connect, find_listed, reports_errors
from opsconductor.cli.output import OutputFormat, OutputOption, field, print_json, short_time, show

app = typer.Typer(
    no_args_is_help=True,
    help="List, pause, resume and trigger schedules; keep Temporal's schedules in step.",
)

ScheduleRef = Annotated[str, typer.Argument(help="The schedule's name or id.")]
Note = Annotated[str, typer.Option("--note", help="Why (shown on the schedule).")]


def schedule_of(client: ApiClient, reference: str) -> dict[str, Any]:
    """A schedule by id, or by name among the listed ones."""
    return find_listed(client, "/schedules", reference, "schedule")


@app.command("list")
@reports_errors
def list_schedules(output: OutputOption = OutputFormat.table) -> None:
    """List schedules with their next run."""
    with connect() as client:
        page = client.get("/schedules", limit=500)
    show(
        page,
        output,
        page["items"],
        [
            field("name"),
            ("CRON", lambda row: f"{row['cron']} ({row['timezone']})"),
            ("PAUSED", lambda row: (row["note"] or "yes") if row["paused"] else ""),
            ("NEXT", lambda row: short_time(next(iter(row["next_runs"]), None))),
            field("overlap"),
        ],
    )


def _change(reference: str, action: str, body: dict[str, Any], output: OutputFormat) -> None:
    with connect() as client:
        schedule = schedule_of(client, reference)
        answer = client.post(f"/schedules/{schedule['id']}/{action}", body)
    if output is OutputFormat.json:
        print_json(answer)
    else:
        typer.echo(f"schedule {schedule['name']}: {action} done")


@app.command("pause")
@reports_errors
def pause(
    reference: ScheduleRef, note: Note = "", output: OutputOption = OutputFormat.table
) -> None:
    """Stop a schedule from firing until it is resumed."""
    _change(reference, "pause", {"note": note}, output)


@app.command("resume")
@reports_errors
def resume(
    reference: ScheduleRef, note: Note = "", output: OutputOption = OutputFormat.table
) -> None:
    """Let a paused schedule fire again."""
    _change(reference, "resume", {"note": note}, output)


@app.command("trigger")
@reports_errors
def trigger(reference: ScheduleRef, output: OutputOption = OutputFormat.table) -> None:
    """Start a run of the schedule now; it appears in the schedule's recent runs."""
    _change(reference, "trigger", {}, output)


@app.command("reconcile")
def reconcile_command() -> None:
    """Create missing, fix changed and delete extra Temporal schedules (idempotent)."""
    # The server's modules, imported here so the client commands above start without them.
    from opsconductor.cli.failures import fail_on_configuration_errors

    fail_on_configuration_errors(_reconcile)()


def _reconcile() -> None:
    from sqlalchemy.exc import DBAPIError

    from opsconductor.api.background import reconcile
    from opsconductor.cli.failures import fail
    from opsconductor.config import Settings
    from opsconductor.db import create_engine, create_sessionmaker
    from opsconductor.errors import DependencyUnavailable
    from opsconductor.processes import exit_now
    from opsconductor.services.schedule_reconciler import ReconcileReport
    from opsconductor.temporal.client import connect as connect_temporal

    settings = Settings()

    async def main() -> ReconcileReport:
        engine = create_engine(settings)
        try:
            return await reconcile(create_sessionmaker(engine), await connect_temporal(settings))
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
    # It used a Temporal client: the SDK's threads may abort the interpreter's teardown.
    exit_now(0)
