"""`opsconductor run JOB -p k=v [--follow]`, `run show | cancel | approve ID`, and `runs`.

Exit codes of `run --follow`: 0 when the run succeeded, 3 when it failed, 4 when it was
cancelled; 1 when the CLI could not do what was asked (an API error, no connection).
"""

import json
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
import yaml

# typer vendors its own click; its Context is the one TyperGroup's methods take.
from typer._click.core import Context
from typer.core import TyperGroup

from opsconductor.cli.apply import find_job_id
from opsconductor.cli.client import (
    ApiClient,
    CliError,
    StreamBroken,
    connect,
    counted,
    listed,
    reports_errors,
)
from opsconductor.cli.output import (
    OutputFormat,
    OutputOption,
    field,
    print_json,
    print_json_line,
    print_table,
    progress,
    short_time,
    show,
)

EXIT_RUN_FAILED = 3
EXIT_RUN_CANCELLED = 4
EXIT_BY_STATUS = {"succeeded": 0, "failed": EXIT_RUN_FAILED, "cancelled": EXIT_RUN_CANCELLED}
RUN_STATUSES = ("queued", "running", "waiting_approval", "succeeded", "failed", "cancelled")
# A stream that breaks (a restarted API, a proxy's idle cut) is resumed from the last line.
STREAM_RETRIES = 5
STREAM_RETRY_SECONDS = 1.0
# Targets per request when `run show` lists a run's grid (the API's largest page).
GRID_PAGE = 500
_RELATIVE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class RunGroup(TyperGroup):
    """`run JOB …` starts a run; `run show|cancel|approve ID` act on one. A first argument that
    is not a subcommand is the job, as if `run start` had been typed."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["start", *args]
        return super().parse_args(ctx, args)


RunId = Annotated[uuid.UUID, typer.Argument(metavar="ID", help="The run's id.")]

run_app = typer.Typer(
    cls=RunGroup,
    no_args_is_help=True,
    help="Start a run of a job (`run JOB -p k=v --follow`), or show, cancel or approve one.",
)


def job_of(client: ApiClient, job: str) -> dict[str, Any]:
    """A job by id or by name."""
    try:
        return dict(client.get(f"/jobs/{uuid.UUID(job)}"))
    except ValueError:
        pass
    found = find_job_id(client, job)
    if found is None:
        raise CliError(f"no job named {job!r}")
    return dict(client.get(f"/jobs/{found}"))


def parse_parameters(pairs: Sequence[str], declared: dict[str, Any]) -> dict[str, Any]:
    """`k=v` pairs, each value read as the type the job declares for k."""
    parameters: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise CliError(f"-p {pair!r}: expected NAME=VALUE")
        kind = (declared.get(name) or {}).get("type", "string")
        try:
            parameters[name] = _typed(text, kind)
        except ValueError:
            raise CliError(f"-p {name}: {text!r} is not a valid {kind}") from None
    return parameters


def _typed(text: str, kind: str) -> Any:
    if kind == "integer":
        return int(text)
    if kind == "number":
        number = float(text)
        return int(number) if number.is_integer() and "." not in text else number
    if kind == "boolean":
        lowered = text.lower()
        if lowered in {"true", "yes", "1", "on"}:
            return True
        if lowered in {"false", "no", "0", "off"}:
            return False
        raise ValueError(text)
    if kind in {"array", "object"}:
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ValueError(text) from None
        if not isinstance(value, list if kind == "array" else dict):
            raise ValueError(text)
        return value
    return text


def print_line(line: dict[str, Any], output: OutputFormat) -> None:
    if output is OutputFormat.json:
        print_json_line({"event": "line", **line})
        return
    where = " ".join(part for part in (line.get("target"), line.get("step_id")) if part)
    attempt = line.get("attempt", 1)
    if isinstance(attempt, int) and attempt > 1:
        # A retried step, or one run again after its worker shut down, prints anew.
        where += f" (try {attempt})"
    marker = "!" if line.get("stream") == "stderr" else "|"
    typer.echo(f"{where} {marker} {line.get('line', '')}")


def follow_run(client: ApiClient, run_id: str, output: OutputFormat) -> str:
    """Prints the run's output lines as they arrive; answers its final status."""
    cursor: int | None = None
    broken = 0
    with progress(f"following run {run_id} (Ctrl-C stops following; the run goes on)"):
        while True:
            try:
                for event, data, identifier in client.stream_events(
                    f"/runs/{run_id}/logs", {"follow": "true"}, cursor
                ):
                    if event == "line":
                        line = json.loads(data)
                        cursor = identifier or line.get("id") or cursor
                        print_line(line, output)
                        broken = 0
                    elif event == "end":
                        return str(json.loads(data)["status"])
                problem = StreamBroken("the server closed the stream before the run ended")
            except StreamBroken as error:
                problem = error
            broken += 1
            if broken > STREAM_RETRIES:
                raise problem
            time.sleep(STREAM_RETRY_SECONDS)


def summarize(run: dict[str, Any], output: OutputFormat) -> None:
    if output is OutputFormat.json:
        print_json_line({"event": "end", "run": run})
        return
    reason = f" ({run['reason']})" if run.get("reason") else ""
    typer.echo(f"run {run['id']} {run['status']}{reason}", err=run["status"] != "succeeded")


@run_app.command("start")
@reports_errors
def start(
    job: Annotated[str, typer.Argument(help="The job's name or id.")],
    parameter: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="NAME=VALUE, read as the parameter's type; repeat."),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Stream the output until the run ends.")
    ] = False,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Start a run; with --follow, print its output as it arrives and exit with its outcome."""
    with connect() as client:
        found = job_of(client, job)
        declared = found["document"].get("parameters") or {}
        body = {"parameters": parse_parameters(parameter or [], declared)}
        accepted = client.post(f"/jobs/{found['id']}/runs", body)
        if not follow:
            if output is OutputFormat.json:
                print_json(accepted)
            else:
                typer.echo(f"run {accepted['id']} {accepted['status']}")
            return
        if output is OutputFormat.table:
            typer.echo(f"run {accepted['id']} of {found['name']} v{found['version']}", err=True)
        status = follow_run(client, str(accepted["id"]), output)
        summarize(client.get(f"/runs/{accepted['id']}"), output)
    raise typer.Exit(EXIT_BY_STATUS.get(status, EXIT_RUN_FAILED))


@run_app.command("show")
@reports_errors
def show_run(
    run_id: RunId,
    targets: Annotated[
        bool, typer.Option("--targets", help="Also list every target's steps.")
    ] = False,
    failed: Annotated[
        bool, typer.Option("--failed", help="Also list the failed targets' steps.")
    ] = False,
    step: Annotated[
        str | None,
        typer.Option(help="With --failed: the targets on which this step failed."),
    ] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """A run: its counts by status and run-once steps; the targets' steps when asked."""
    if step and not failed:
        raise CliError("--step goes with --failed")
    with connect() as client:
        run = client.get(f"/runs/{run_id}")
        if targets or failed:
            filters = {"status": "failed", "step": step} if failed else {}
            run["targets"] = list(_grid(client, str(run_id), filters))
    if output is OutputFormat.json:
        print_json(run)
        return
    typer.echo(
        f"run {run['id']}  {run['job_name']} v{run['job_version']}  {run['status']}"
        + (f" ({run['reason']})" if run.get("reason") else "")
    )
    typer.echo(
        f"triggered by {run['triggered_by']}, created {short_time(run['created_at'])}, "
        f"finished {short_time(run['finished_at']) or '-'}"
    )
    if run.get("parameters"):
        typer.echo("parameters: " + json.dumps(run["parameters"]))
    summary = run["summary"]
    typer.echo(f"targets: {summary['total']}  {_counted(summary['by_status'])}")
    rows = [
        {"target": "(all)", "id": counted["id"], "status": _counted(counted["by_status"])}
        for counted in summary["steps"]
    ] + [{"target": "(once)", **once} for once in run["steps"]]
    rows += [
        {"target": target["name"], **step_row}
        for target in run["targets"] or []
        for step_row in target["steps"] or [{"id": "-", "status": target["status"]}]
    ]
    print_table(
        rows,
        [
            field("target"),
            field("id", "STEP"),
            field("status"),
            ("REASON", lambda row: row.get("reason")),
            ("EXIT", lambda row: row.get("exit_code")),
            ("ATTEMPTS", lambda row: row.get("attempts")),
            ("FINISHED", lambda row: short_time(row.get("finished_at"))),
        ],
    )


def _grid(client: ApiClient, run_id: str, filters: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every target matching the filters, a page at a time from `GET /runs/{id}/targets`."""
    yield from listed(client, f"/runs/{run_id}/targets", GRID_PAGE, **filters)


def _counted(by_status: dict[str, int]) -> str:
    """`succeeded 186, failed 4`: counts by status as people read them."""
    return ", ".join(f"{status} {count}" for status, count in by_status.items())


@run_app.command("cancel")
@reports_errors
def cancel(
    run_id: RunId,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Cancel a run; running remote commands are stopped."""
    with connect() as client:
        answer = client.post(f"/runs/{run_id}/cancel")
    if output is OutputFormat.json:
        print_json({"id": str(run_id), **answer})
    else:
        typer.echo(f"run {run_id} {answer['status']}")


def waiting_step(run: dict[str, Any]) -> str:
    """The one step of a run that waits for a decision."""
    if run["status"] != "waiting_approval":
        raise CliError(f"run {run['id']} is {run['status']}, not waiting for an approval")
    running = sorted(
        {step["id"] for step in run["steps"] if step["status"] == "running"}
        | {step["id"] for step in run["summary"]["steps"] if step["by_status"].get("running")}
    )
    if len(running) != 1:
        raise CliError("more than one step is running: name the one to decide with --step")
    return str(running[0])


@run_app.command("approve")
@reports_errors
def approve(
    run_id: RunId,
    step: Annotated[
        str | None, typer.Option(help="The approval step; found by itself when only one waits.")
    ] = None,
    reject: Annotated[bool, typer.Option("--reject", help="Reject instead of approving.")] = False,
    comment: Annotated[str, typer.Option(help="Kept with the decision.")] = "",
    output: OutputOption = OutputFormat.table,
) -> None:
    """Approve (or --reject) the step a run waits on."""
    with connect() as client:
        chosen = step or waiting_step(client.get(f"/runs/{run_id}"))
        decision = "reject" if reject else "approve"
        answer = client.post(
            f"/runs/{run_id}/approvals", {"step": chosen, "decision": decision, "comment": comment}
        )
    if output is OutputFormat.json:
        print_json(answer)
    else:
        typer.echo(f"run {run_id}: step {answer['step']} {answer['decision']}")


def since_time(text: str) -> str:
    """An ISO date/time, or a span back from now such as 30m, 12h, 7d."""
    relative = _RELATIVE.match(text.strip())
    if relative:
        span = timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
        return (datetime.now(UTC) - span).isoformat()
    try:
        return datetime.fromisoformat(text).isoformat()
    except ValueError:
        raise CliError(
            f"--since {text!r}: give an ISO date/time or a span like 30m, 12h, 7d"
        ) from None


@reports_errors
def runs(
    job: Annotated[str | None, typer.Option(help="Only runs of this job (name or id).")] = None,
    status: Annotated[
        str | None, typer.Option(help=f"Only runs in this status: {', '.join(RUN_STATUSES)}.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only runs created since: ISO time, or 30m, 12h, 7d.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    output: OutputOption = OutputFormat.table,
) -> None:
    """List runs, newest first."""
    if status is not None and status not in RUN_STATUSES:
        raise CliError(f"--status {status!r}: one of {', '.join(RUN_STATUSES)}")
    with connect() as client:
        job_id = job_of(client, job)["id"] if job else None
        page = client.get(
            "/runs",
            job_id=job_id,
            status=status,
            since=since_time(since) if since else None,
            limit=limit,
            offset=offset,
        )
    show(
        page,
        output,
        page["items"],
        [
            field("id"),
            ("JOB", lambda row: f"{row['job_name']} v{row['job_version']}"),
            field("status"),
            field("triggered_by", "BY"),
            ("CREATED", lambda row: short_time(row["created_at"])),
            ("FINISHED", lambda row: short_time(row["finished_at"])),
        ],
    )
    if output is OutputFormat.table and page["next"] is not None:
        typer.echo(f"{counted(page)} runs in all; see more with --offset", err=True)


app = typer.Typer()
app.command()(runs)
