"""Pages for event triggers: create, edit, disable and delete one, copy its hook URL, page its
delivery log and send it a test event. As on the other pages, the browser sends every change
to the API (`/api/v1/triggers`, `/api/v1/triggers/{id}/test`); these pages only read."""

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from opsconductor.console.forms import Choice, Field, Form, Kind
from opsconductor.console.pages import PAGE, page
from opsconductor.console.session import Console, ConsoleDep
from opsconductor.models.trigger import SAMPLE_GITHUB_EVENT, SAMPLE_PAYLOADS, TriggerSource

router = APIRouter(include_in_schema=False)

MANAGER = "triggers:manage"
BACK = ("Triggers", "/lists/triggers")
# Enough for the job choice; a trigger of a job beyond these is made through the API or CLI.
JOB_CHOICES = 500
# What the create form starts with: the API's defaults, shown so they can be changed.
DEFAULTS = {"enabled": True, "on_resolved": False, "rate_limit": 60, "dedup_window": "10m"}


def _fields(jobs: Sequence[Mapping[str, Any]], creating: bool) -> list[Field]:
    job = Field(
        "job_id",
        "Job",
        Kind.select,
        choices=tuple(Choice(str(item["id"]), item["name"]) for item in jobs),
        required=True,
    )
    sources = tuple(Choice(source.value, source.value) for source in TriggerSource)
    secret_hint = (
        "16 or more characters: Alertmanager's bearer token or the HMAC key; write-only"
        if creating
        else "write-only: leave empty to keep the stored one"
    )
    return [
        Field("name", "Name", required=True),
        job,
        *([Field("source", "Source", Kind.select, choices=sources)] if creating else []),
        Field("secret", "Secret" if creating else "New secret", Kind.password, secret_hint),
        Field(
            "parameters",
            "Parameters",
            Kind.json,
            'a JSON object; strings are templates, e.g. {"mount": "{{ alert.labels.mountpoint }}"}',
            cleared="{}",
        ),
        Field(
            "targets",
            "Targets",
            Kind.json,
            'a target selector in JSON whose strings are templates, e.g. {"names": '
            '["{{ alert.labels.instance }}"]}; empty: the job\'s own targets',
            cleared="null",
        ),
        Field(
            "when",
            "When",
            hint="a condition template; false: the event is filtered",
            cleared="null",
        ),
        Field(
            "dedup_key",
            "Dedup key",
            hint="a template, e.g. {{ alert.fingerprint }}",
            cleared="null",
        ),
        Field("dedup_window", "Dedup window", hint="1s to 7d, e.g. 10m"),
        Field("rate_limit", "Rate limit", Kind.integer, "deliveries a minute"),
        Field("on_resolved", "Resolved alerts are events too (alertmanager)", Kind.checkbox),
        Field("enabled", "Enabled", Kind.checkbox),
    ]


def trigger_form(jobs: Sequence[Mapping[str, Any]], item: Mapping[str, Any] | None) -> Form:
    if item is None:
        return Form(
            "trigger-form",
            "/api/v1/triggers",
            "Create trigger",
            _fields(jobs, creating=True),
            next="/triggers/{id}",
            item=DEFAULTS,
            notes=("The secret is write-only: nobody can read it back, here or through the API.",),
        )
    return Form(
        "trigger-form",
        f"/api/v1/triggers/{item['id']}",
        "Save",
        _fields(jobs, creating=False),
        method="PATCH",
        legend="Edit",
        item=item,
    )


async def _jobs(console: Console) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await console.get("/jobs", limit=JOB_CHOICES))["items"]
    return items


@router.get("/triggers/new")
async def new_trigger(console: ConsoleDep) -> HTMLResponse:
    form = trigger_form(await _jobs(console), None)
    return page(
        console, "manage.html", title="New trigger", manager=MANAGER, forms=[form], back=BACK
    )


@router.get("/triggers/{trigger_id}")
async def trigger_page(trigger_id: uuid.UUID, console: ConsoleDep, offset: int = 0) -> HTMLResponse:
    item = await console.get(f"/triggers/{trigger_id}")
    log = await console.get(f"/triggers/{trigger_id}/events", limit=PAGE, offset=max(offset, 0))
    jobs = await _jobs(console)
    job_names = {str(job["id"]): job["name"] for job in jobs}
    source = TriggerSource(item["source"])
    return page(
        console,
        "trigger.html",
        title=f"Trigger {item['name']}",
        item=item,
        hook_url=console.settings.public_url.rstrip("/") + item["url"],
        job_name=job_names.get(str(item["job_id"]), str(item["job_id"])),
        form=trigger_form(jobs, item),
        sample=json.dumps(SAMPLE_PAYLOADS[source], indent=2),
        github=source is TriggerSource.github,
        github_event=SAMPLE_GITHUB_EVENT,
        log=log,
        manager=MANAGER,
        back=BACK,
    )
