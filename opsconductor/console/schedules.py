"""Schedule pages: create and edit with the expression in words and the next fires shown as
you type, pause with a note, resume, trigger now, and backfill a range after seeing the runs
it would start. Every change is the browser's call to /api/v1/schedules."""

import uuid
import zoneinfo
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from opsconductor.console.forms import Choice, Field, Form, Kind
from opsconductor.console.live import checked
from opsconductor.console.manage import CHOICES
from opsconductor.console.pages import page, when
from opsconductor.console.session import Console, ConsoleDep
from opsconductor.models.schedule import OverlapPolicy

router = APIRouter(include_in_schema=False)
MANAGER = "schedules:manage"
API = "/api/v1/schedules"
FIRES = "/partials/schedule-fires"


@cache
def _zones() -> tuple[Choice, ...]:
    # UTC first: it is the API's default, so a new form starts on it.
    names = sorted(zoneinfo.available_timezones() - {"UTC"})
    return tuple(Choice(name, name) for name in ["UTC", *names])


CRON = Field(
    "cron",
    "Cron expression",
    hint="minute hour day-of-month month day-of-week, e.g. 30 2 * * *, or @daily",
    required=True,
)
TIMEZONE = Field("timezone", "Time zone", Kind.select, choices=_zones())
START = Field("start", "From (UTC)", Kind.datetime, required=True)
END = Field("end", "Until (UTC, not included)", Kind.datetime, required=True)


def _schedule_fields() -> list[Field]:
    overlaps = tuple(Choice(policy.value, policy.value) for policy in OverlapPolicy)
    return [
        Field("name", "Name", hint="default: the job's name and part of the schedule's id"),
        CRON,
        TIMEZONE,
        Field("overlap", "While the previous run is going", Kind.select, choices=overlaps),
        Field(
            "catchup_window",
            "Catch-up window",
            hint="how late a fire missed while Temporal was down may still start, e.g. 1m",
        ),
    ]


def schedule_form(jobs: Sequence[Mapping[str, Any]], item: Mapping[str, Any] | None) -> Form:
    notes = ("Parameters and a target selector of its own are set through the API or the CLI.",)
    if item is None:
        job = Field(
            "job_id",
            "Job",
            Kind.select,
            choices=tuple(Choice(str(job["id"]), job["name"]) for job in jobs),
            required=True,
        )
        fields = [job, *_schedule_fields()]
        return Form(
            "schedule-form",
            API,
            "Create schedule",
            fields,
            next="/schedules/{id}",
            notes=notes,
            live=FIRES,
        )
    api = f"{API}/{item['id']}"
    return Form(
        "schedule-form",
        api,
        "Save",
        _schedule_fields(),
        "PATCH",
        legend="Edit",
        item=item,
        live=FIRES,
    )


def _pausing_form(item: Mapping[str, Any]) -> Form:
    api = f"{API}/{item['id']}"
    if item["paused"]:
        return Form("resume-form", f"{api}/resume", "Resume", [], legend="Paused: resume it")
    note = Field("note", "Note", Kind.textarea, "why it is paused, shown on its page and list")
    return Form("pause-form", f"{api}/pause", "Pause", [note], legend="Pause")


def _acting_forms(item: Mapping[str, Any]) -> list[Form]:
    api = f"{API}/{item['id']}"
    trigger = Form(
        "trigger-form",
        f"{api}/trigger",
        "Trigger now",
        [],
        legend="Run now",
        notes=("Starts a run at once, even while another run of this schedule is going.",),
    )
    backfill = Form(
        "backfill-form",
        f"{api}/backfill",
        "Backfill",
        [START, END],
        legend="Backfill",
        notes=("Starts a run for every time the schedule would have fired in the range.",),
        live=f"/partials/schedules/{item['id']}/backfill",
        confirm="Start the runs listed for this range?",
    )
    return [_pausing_form(item), trigger, backfill]


async def _jobs(console: Console) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = (await console.get("/jobs", limit=CHOICES))["items"]
    return jobs


@router.get("/schedules/new")
async def new_schedule(console: ConsoleDep) -> HTMLResponse:
    form = schedule_form(await _jobs(console), None)
    back = ("Schedules", "/lists/schedules")
    return page(
        console, "manage.html", title="New schedule", manager=MANAGER, forms=[form], back=back
    )


@router.get(FIRES)
async def fires(console: ConsoleDep, cron: str = "", timezone: str = "UTC") -> HTMLResponse:
    query = {"cron": cron, "timezone": timezone}
    return await checked(console, "/schedules/preview", query, [CRON, TIMEZONE], "_fires.html")


@router.get("/schedules/{schedule_id}")
async def schedule_page(schedule_id: uuid.UUID, console: ConsoleDep) -> HTMLResponse:
    item = await console.get(f"/schedules/{schedule_id}")
    job = await console.get(f"/jobs/{item['job_id']}")
    said = await console.get("/schedules/preview", cron=item["cron"], timezone=item["timezone"])
    facts = {
        "job": job["name"],
        "cron": f"{item['cron']} ({item['timezone']})",
        "in words": said["description"],
        "overlap": item["overlap"],
        "catch-up window": item["catchup_window"],
        "paused": f"yes: {item['note']}" if item["paused"] else "no",
        "runs as": item["run_as"],
        "temporal schedule": item["executor"],
        "next fires": ", ".join(when(fire) for fire in item["next_runs"]),
    }
    forms = [*_acting_forms(item), schedule_form([], item)]
    return page(
        console,
        "schedule.html",
        title=f"Schedule {item['name']}",
        manager=MANAGER,
        item=item,
        facts=facts,
        forms=forms,
        delete=f"{API}/{schedule_id}",
        back=("Schedules", "/lists/schedules"),
    )


@router.get("/partials/schedules/{schedule_id}/runs")
async def recent_runs(schedule_id: uuid.UUID, console: ConsoleDep) -> HTMLResponse:
    item = await console.get(f"/schedules/{schedule_id}")
    return page(console, "_schedule_runs.html", item=item)


@router.get("/partials/schedules/{schedule_id}/backfill")
async def backfill_preview(
    schedule_id: uuid.UUID, console: ConsoleDep, start: str = "", end: str = ""
) -> HTMLResponse:
    api = f"/schedules/{schedule_id}/backfill"
    return await checked(console, api, {"start": start, "end": end}, [START, END], "_backfill.html")
