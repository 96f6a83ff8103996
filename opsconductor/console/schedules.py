"""Schedule pages: create and edit with the expression in words and the next fires shown as
you type, pause with a note, resume, trigger now, and backfill a range after seeing the runs
it would start. Every change is the browser's call to /api/v1/schedules."""

import json
import uuid
import zoneinfo
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from opsconductor.console.forms import (
    Choice,
    Field,
    Form,
    Kind,
    parameters_group,
    targets_group,
)
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


def schedule_form(
    job: Mapping[str, Any], groups: Sequence[Mapping[str, Any]], item: Mapping[str, Any] | None
) -> Form:
    """Create a schedule of `job` (item None) or edit `item`, with the job's parameters and a
    target selector of its own (each left empty: the job's defaults and its own targets)."""
    document = job["document"]
    # On the edit form, emptying them all clears them: no parameters, the job's own targets.
    cleared = (None, None) if item is None else ("{}", "null")
    sections = (
        parameters_group(document.get("parameters") or {}, cleared[0]),
        targets_group(groups, document.get("targets") or {}, "its runs act", cleared[1]),
    )
    if item is None:
        chosen = Field("job_id", "Job", Kind.select, choices=(Choice(str(job["id"]), job["name"]),))
        return Form(
            "schedule-form",
            API,
            "Create schedule",
            [chosen, *_schedule_fields()],
            next="/schedules/{id}",
            live=FIRES,
            groups=sections,
        )
    return Form(
        "schedule-form",
        f"{API}/{item['id']}",
        "Save",
        _schedule_fields(),
        "PATCH",
        legend="Edit",
        item=item,
        live=FIRES,
        groups=sections,
    )


def _job_picker(jobs: Sequence[Mapping[str, Any]]) -> Field:
    """Chooses the job first (a plain GET form): the schedule form's parameters are its."""
    choices = tuple(Choice(str(job["id"]), job["name"]) for job in jobs)
    return Field("job_id", "Job", Kind.select, choices=choices, required=True)


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


async def _groups(console: Console) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = (await console.get("/target-groups", limit=CHOICES))["items"]
    return groups


@router.get("/schedules/new")
async def new_schedule(console: ConsoleDep, job_id: uuid.UUID | None = None) -> HTMLResponse:
    """First the job, then the schedule with that job's parameters."""
    back = ("Schedules", "/lists/schedules")
    if job_id is None:
        jobs = (await console.get("/jobs", limit=CHOICES))["items"]
        picker = _job_picker(jobs)
        return page(
            console,
            "schedule_new.html",
            title="New schedule",
            manager=MANAGER,
            picker=picker,
            back=back,
        )
    job = await console.get(f"/jobs/{job_id}")
    form = schedule_form(job, await _groups(console), None)
    return page(
        console,
        "schedule_new.html",
        title=f"New schedule of {job['name']}",
        manager=MANAGER,
        forms=[form],
        back=back,
        another="/schedules/new",
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
        "parameters": json.dumps(item["parameters"]) if item["parameters"] else "",
        "targets": json.dumps(item["targets"]) if item["targets"] else "the job's own",
        "runs as": item["run_as"],
        "temporal schedule": item["executor"],
        "next fires": ", ".join(when(fire) for fire in item["next_runs"]),
    }
    forms = [*_acting_forms(item), schedule_form(job, await _groups(console), item)]
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
