"""`opsconductor triggers …`: list triggers and read a trigger's delivery log through the API.
Triggers themselves are written as `kind: trigger` documents and applied (`opsconductor
apply`), or through `/api/v1/triggers`."""

import typer

from opsconductor.cli.client import connect, find_listed, reports_errors
from opsconductor.cli.output import OutputFormat, OutputOption, field, short_time, show

app = typer.Typer(no_args_is_help=True, help="List triggers and read their delivery logs.")


@app.command("list")
@reports_errors
def list_triggers(output: OutputOption = OutputFormat.table) -> None:
    """List triggers with their hook URL."""
    with connect() as client:
        page = client.get("/triggers", limit=500)
    show(
        page,
        output,
        page["items"],
        [
            field("name"),
            field("source"),
            ("ENABLED", lambda row: "yes" if row["enabled"] else "no"),
            field("url"),
        ],
    )


@app.command("events")
@reports_errors
def events(
    reference: str = typer.Argument(help="The trigger's name or id."),
    limit: int = typer.Option(50, "--limit", min=1, max=500, help="How many, newest first."),
    output: OutputOption = OutputFormat.table,
) -> None:
    """The trigger's delivery log: what each event became, and the run it started."""
    with connect() as client:
        trigger = find_listed(client, "/triggers", reference, "trigger")
        page = client.get(f"/triggers/{trigger['id']}/events", limit=limit)
    show(
        page,
        output,
        page["items"],
        [
            ("RECEIVED", lambda row: short_time(row["received_at"])),
            ("FROM", lambda row: row["source_address"] or ""),
            field("decision"),
            ("TEST", lambda row: row.get("test") or ""),
            ("RUN", lambda row: row["run_id"] or ""),
            ("REASON", lambda row: row["reason"] or ""),
        ],
    )
