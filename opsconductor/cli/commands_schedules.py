"""`opsconductor schedules list | pause | resume | trigger`: schedules through the API."""

from typing import Annotated, Any

import typer

from opsconductor.cli.client import ApiClient, CliError, connect, reports_errors
from opsconductor.cli.output import OutputFormat, OutputOption, print_json, short_time, show

ScheduleRef = Annotated[str, typer.Argument(help="The schedule's name or id.")]
Note = Annotated[str, typer.Option("--note", help="Why (shown on the schedule).")]


def schedule_of(client: ApiClient, reference: str) -> dict[str, Any]:
    """A schedule by id, or by name among the listed ones."""
    for item in client.get("/schedules", limit=500)["items"]:
        if reference in (item["id"], item["name"]):
            found: dict[str, Any] = item
            return found
    raise CliError(f"no schedule named {reference!r}")


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
            ("NAME", lambda row: row["name"]),
            ("CRON", lambda row: f"{row['cron']} ({row['timezone']})"),
            ("PAUSED", lambda row: (row["note"] or "yes") if row["paused"] else ""),
            ("NEXT", lambda row: short_time(next(iter(row["next_runs"]), None))),
            ("OVERLAP", lambda row: row["overlap"]),
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


@reports_errors
def pause(
    reference: ScheduleRef, note: Note = "", output: OutputOption = OutputFormat.table
) -> None:
    """Stop a schedule from firing until it is resumed."""
    _change(reference, "pause", {"note": note}, output)


@reports_errors
def resume(
    reference: ScheduleRef, note: Note = "", output: OutputOption = OutputFormat.table
) -> None:
    """Let a paused schedule fire again."""
    _change(reference, "resume", {"note": note}, output)


@reports_errors
def trigger(reference: ScheduleRef, output: OutputOption = OutputFormat.table) -> None:
    """Start a run of the schedule now; it appears in the schedule's recent runs."""
    _change(reference, "trigger", {}, output)


def register(app: typer.Typer) -> None:
    app.command("list")(list_schedules)
    app.command("pause")(pause)
    app.command("resume")(resume)
    app.command("trigger")(trigger)
