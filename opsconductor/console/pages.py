"""The console's pages: server-rendered reads through the API, forms whose writes the browser
sends to the API itself."""

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from opsconductor import __version__
from opsconductor.api.auth import ClientDep
from opsconductor.api.deps import KeysDep, SessionDep, SessionmakerDep, SettingsDep
from opsconductor.api.middleware import CONSOLE_CONTENT_SECURITY_POLICY
from opsconductor.console.builder import (
    NODE_HEIGHT,
    NODE_WIDTH,
    STEP_SETTINGS,
    dag_of,
    dump,
    fields_of,
    form_field_of,
    pruned,
    replaced,
    step_from_form,
    values_of,
)
from opsconductor.console.forms import defaults, parameters_group, targets_group
from opsconductor.console.session import (
    ApiError,
    Console,
    ConsoleDep,
    clear_session_cookies,
    set_session_cookies,
)
from opsconductor.console.versions import version_diff
from opsconductor.contracts.runs import TERMINAL_RUN_STATUSES, RunStatus, StepStatus
from opsconductor.db import unit_of_work
from opsconductor.errors import NotAuthenticated, TooManyRequests
from opsconductor.models.audit import Outcome
from opsconductor.models.base import utcnow
from opsconductor.models.credential import GrantsPublic
from opsconductor.models.session import LoginRequest
from opsconductor.security.csrf import CSRF_HEADER, csrf_matches
from opsconductor.services import audit, auth, jobs
from opsconductor.services.audit import AuditEntry

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.globals["version"] = __version__
templates.env.globals["NODE_WIDTH"] = NODE_WIDTH
templates.env.globals["NODE_HEIGHT"] = NODE_HEIGHT


def when(value: str | None) -> str:
    """An API timestamp as people read it, in UTC: the API answers with offsets."""
    if not value:
        return "—"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def counted(answer: dict[str, Any]) -> str:
    """A list answer's total as people read it: `1,234`, or `10,000+` where the API stopped
    counting (docs/api.md "Lists")."""
    return f"{answer['total']:,}{'+' if answer['total_capped'] else ''}"


templates.env.filters["when"] = when
templates.env.filters["counted"] = counted

RUN_STATUSES = tuple(status.value for status in RunStatus)
STEP_STATUSES = tuple(status.value for status in StepStatus)
SINCE = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
PAGE = 50
UPCOMING = 10


def html(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context, status_code=status)
    response.headers["Content-Security-Policy"] = CONSOLE_CONTENT_SECURITY_POLICY
    response.headers["Cache-Control"] = "no-store"
    return response


def page(console: Console, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    response = html(console.request, template, {"console": console, **context}, status)
    if console.renewed is not None:
        set_session_cookies(response, console.request, console.renewed)
    return response


def _require_csrf(console: Console) -> None:
    """Console form posts change nothing, but are held to the API's rule all the same."""
    signing_key = console.request.app.state.keys.signing_key
    presented = console.request.headers.get(CSRF_HEADER)
    if not csrf_matches(signing_key, console.session_id, presented):
        raise ApiError(403, f"the {CSRF_HEADER} header is missing or wrong")


# --- signing in and out ---


@router.get("/login")
async def login_page(request: Request, next: str = "/") -> HTMLResponse:
    response = html(request, "login.html", {"next": _local(next), "error": None})
    clear_session_cookies(response)
    return response


@router.post("/login")
async def login(
    request: Request,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    session: SessionDep,
    sessionmaker: SessionmakerDep,
    settings: SettingsDep,
    keys: KeysDep,
    client: ClientDep,
    next: Annotated[str, Form()] = "/",
) -> Response:
    """The API's login service and audit row ("session.login"), answered with cookies."""
    entry = AuditEntry.for_action(
        "session.login",
        request_id=request.state.request_id,
        client_address=client.address,
    )
    try:
        pair = await auth.login(
            session,
            sessionmaker,
            settings,
            keys.signing_key,
            LoginRequest(username=username, password=password),
            client,
            entry,
        )
    except (NotAuthenticated, TooManyRequests) as error:
        entry.detail["status"] = error.status
        await audit.record_separately(sessionmaker, entry, Outcome.denied)
        context = {"next": _local(next), "error": error.detail}
        return html(request, "login.html", context, status=error.status)
    audit.record(session, entry, Outcome.success)
    response = RedirectResponse(_local(next), status_code=303)
    set_session_cookies(response, request, pair.model_dump())
    return response


def _local(path: str) -> str:
    # Only a path on this site: a login link must not send anyone elsewhere afterwards.
    # "//host" and "/\\host" both leave the site in browsers.
    return path if path.startswith("/") and not path.startswith(("//", "/\\")) else "/"


# --- dashboard ---


async def _dashboard(console: Console) -> dict[str, Any]:
    since = (utcnow() - SINCE["24h"]).isoformat()
    counts = {
        status: counted(await console.get("/runs", status=status, since=since, limit=1))
        for status in RUN_STATUSES
    }
    return {
        "health": await console.health(),
        "counts": counts,
        "upcoming": await _upcoming(console),
        "running": (await console.get("/runs", status="running", limit=20))["items"],
        "waiting": (await console.get("/runs", status="waiting_approval", limit=20))["items"],
        "first_steps": await _first_steps(console),
    }


@dataclass(frozen=True)
class FirstStep:
    title: str
    path: str
    done: bool


async def _first_steps(console: Console) -> list[FirstStep]:
    """Credential, target, job, run: each done once one exists. Empty once all are, so the
    dashboard shows the guide only to an install still being set up."""

    async def some(path: str) -> bool:
        return bool((await console.get(path, limit=1))["items"])

    jobs = (await console.get("/jobs", limit=1))["items"]
    steps = [
        FirstStep("Add a credential", "/credentials/new", await some("/credentials")),
        FirstStep("Add a target that uses it", "/targets/new", await some("/targets")),
        FirstStep("Write a job", "/jobs/new", bool(jobs)),
        FirstStep("Run it", f"/jobs/{jobs[0]['id']}" if jobs else "/jobs", await some("/runs")),
    ]
    return [] if all(step.done for step in steps) else steps


async def _upcoming(console: Console, job_id: str | None = None) -> list[dict[str, Any]]:
    """The next fires of the schedules, soonest first."""
    if not console.can("schedules:read"):
        return []
    schedules = (await console.get("/schedules", job_id=job_id, limit=UPCOMING))["items"]
    fires = [
        {"at": at, "schedule": schedule}
        for schedule in schedules
        for at in schedule["next_runs"][:1]
    ]
    return sorted(fires, key=lambda fire: str(fire["at"]))[:UPCOMING]


@router.get("/")
async def dashboard(console: ConsoleDep) -> HTMLResponse:
    return page(console, "dashboard.html", **await _dashboard(console))


@router.get("/partials/dashboard")
async def dashboard_partial(console: ConsoleDep) -> HTMLResponse:
    return page(console, "_dashboard.html", **await _dashboard(console))


# --- runs ---


@router.get("/runs")
async def runs_page(
    console: ConsoleDep,
    status: str = "",
    job_id: str = "",
    since: str = "",
    offset: int = 0,
) -> HTMLResponse:
    window = SINCE.get(since)
    answer = await console.get(
        "/runs",
        status=status if status in RUN_STATUSES else None,
        job_id=job_id,
        since=(utcnow() - window).isoformat() if window else None,
        limit=PAGE,
        offset=max(offset, 0),
    )
    jobs = (await console.get("/jobs", limit=500))["items"]
    filters = {"status": status, "job_id": job_id, "since": since}
    return page(
        console, "runs.html", runs=answer, jobs=jobs, filters=filters, statuses=RUN_STATUSES
    )


async def _run(console: Console, run_id: uuid.UUID, status: str, offset: int) -> dict[str, Any]:
    """The run's counts and one page of its grid, however many targets it has."""
    run = await console.get(f"/runs/{run_id}")
    status = status if status in STEP_STATUSES else ""
    grid = await console.get(
        f"/runs/{run_id}/targets", status=status or None, limit=PAGE, offset=max(offset, 0)
    )
    cells = {
        target["name"]: {step["id"]: step for step in target["steps"]} for target in grid["items"]
    }
    # While a run waits for approval, its approval step is the run-once step still running.
    pending = [
        step["id"]
        for step in run["steps"]
        if run["status"] == "waiting_approval" and step["status"] == "running"
    ]
    base = console.settings.temporal_ui_url
    temporal_link = (
        f"{base}/namespaces/{console.settings.temporal_namespace}/workflows/{run['workflow_id']}"
        if base
        else None
    )
    return {
        "run": run,
        "step_ids": [step["id"] for step in run["summary"]["steps"]],
        "grid": grid,
        "grid_status": status,
        "step_statuses": STEP_STATUSES,
        "cells": cells,
        "pending": pending,
        "terminal": run["status"] in TERMINAL_RUN_STATUSES,
        "temporal_link": temporal_link,
    }


@router.get("/runs/{run_id}")
async def run_page(
    run_id: uuid.UUID, console: ConsoleDep, status: str = "", offset: int = 0
) -> HTMLResponse:
    return page(console, "run.html", **await _run(console, run_id, status, offset))


@router.get("/partials/runs/{run_id}")
async def run_partial(
    run_id: uuid.UUID, console: ConsoleDep, status: str = "", offset: int = 0
) -> HTMLResponse:
    return page(console, "_run.html", **await _run(console, run_id, status, offset))


# --- jobs ---


@router.get("/jobs")
async def jobs_page(console: ConsoleDep, q: str = "", offset: int = 0) -> HTMLResponse:
    answer = await console.get("/jobs", q=q, limit=PAGE, offset=max(offset, 0))
    return page(console, "jobs.html", jobs=answer, q=q)


@router.get("/jobs/new")
async def new_job(console: ConsoleDep) -> HTMLResponse:
    document = {"name": "", "targets": {"names": []}, "steps": []}
    return await _builder(console, None, dump(document))


@router.get("/jobs/{job_id}/edit")
async def edit_job(job_id: uuid.UUID, console: ConsoleDep) -> HTMLResponse:
    job = await console.get(f"/jobs/{job_id}")
    return await _builder(console, job, dump(_shown(job)))


@router.get("/jobs/{job_id}")
async def job_page(
    job_id: uuid.UUID, console: ConsoleDep, diff: int | None = None, against: int | None = None
) -> HTMLResponse:
    """`diff` shows how that version differs from version `against` (the one before it unless
    given)."""
    job = await console.get(f"/jobs/{job_id}")
    versions = (await console.get(f"/jobs/{job_id}/versions", limit=100))["items"]
    runs = (await console.get("/runs", job_id=str(job_id), limit=10))["items"]
    documents = {version["version"]: dump(_shown(version)) for version in versions}
    changes = None
    if diff is not None:
        changes = version_diff(documents, diff - 1 if against is None else against, diff)
    parameters = job["document"].get("parameters") or {}
    groups = (await console.get("/target-groups", limit=500))["items"]
    return page(
        console,
        "job.html",
        job=job,
        versions=versions,
        runs=runs,
        changes=changes,
        parameter_group=parameters_group(parameters),
        parameter_defaults=defaults(parameters),
        targets=targets_group(groups, job["document"].get("targets") or {}, "the run acts"),
        document_yaml=dump(_shown(job)),
        upcoming=await _upcoming(console, str(job_id)),
    )


def _shown(version: dict[str, Any]) -> Any:
    """The document as its author wrote it (library steps unexpanded) where it was kept, less
    the unset and empty fields the stored, normalized form spells out."""
    return pruned(version.get("source") or version["document"])


# --- the builder ---


async def _catalog(console: Console) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in (await console.get("/steps"))["items"]}


async def _builder(console: Console, job: dict[str, Any] | None, text: str) -> HTMLResponse:
    return page(console, "builder.html", job=job, **await _workspace(console, text))


@dataclass
class _Parsed:
    document: Any
    error: str | None


def _parse(text: str) -> _Parsed:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        return _Parsed(None, f"not valid YAML: {error}")
    if not isinstance(document, dict):
        return _Parsed(None, "the document must be a mapping (name, targets, steps, ...)")
    return _Parsed(document, None)


async def _preview(console: Console, text: str) -> dict[str, Any]:
    parsed = _parse(text)
    if parsed.error is not None:
        return {"problems": [{"path": "document", "message": parsed.error}], "dag": dag_of([])}
    steps = parsed.document.get("steps")
    return {
        "problems": await _problems(console, parsed.document),
        "dag": dag_of(steps if isinstance(steps, list) else []),
    }


async def _problems(console: Console, document: dict[str, Any]) -> list[dict[str, str]]:
    """The job validator's problems, through the service POST /jobs/validate calls.

    Not through the route: the builder checks on every pause in typing, and the route leaves
    an audit row per call. Checking changes nothing, so it needs no row; the permission is
    the route's.
    """
    if not console.can("jobs:manage"):
        raise ApiError(403, "your role cannot edit jobs")
    async with unit_of_work(console.request.app.state.sessionmaker) as session:
        report = (await jobs.check(session, document)).report
    return [{"path": item.path, "message": item.message} for item in report.problems]


def _steps_of(document: Any) -> list[Any]:
    steps = document.get("steps") if isinstance(document, dict) else None
    return steps if isinstance(steps, list) else []


def _step_named(steps: list[Any], step_id: str) -> dict[str, Any] | None:
    return next((s for s in steps if isinstance(s, dict) and s.get("id") == step_id), None)


async def _workspace(
    console: Console,
    text: str,
    action: str = "",
    values: dict[str, str] | None = None,
    field_errors: dict[str, str] | None = None,
    editing: str = "",
    needs: list[str] | None = None,
) -> dict[str, Any]:
    """The builder's state. With `editing` (a step's id), the step form edits that step: its
    values come from the document unless the form sent its own."""
    catalog = await _catalog(console)
    steps = _steps_of(_parse(text).document)
    existing = _step_named(steps, editing) if editing else None
    if existing is None:
        editing = ""
    elif not action:
        action = str(existing.get("action", ""))
    chosen = catalog.get(action)
    fields = fields_of(chosen["with_schema"]) if chosen else []
    if existing is not None and values is None:
        values = values_of(existing, fields)
        needs = [str(n) for n in existing.get("needs") or []]
    step_ids = [
        step["id"] for step in steps if isinstance(step, dict) and isinstance(step.get("id"), str)
    ]
    return {
        "text": text,
        "catalog": catalog,
        "action": chosen,
        "fields": fields,
        "settings": STEP_SETTINGS,
        "values": values or {},
        "needs": needs or [],
        "field_errors": field_errors or {},
        "step_ids": step_ids,
        "editing": editing,
        **await _preview(console, text),
    }


@router.post("/builder/step-form")
async def step_form(
    console: ConsoleDep,
    action: Annotated[str, Form()] = "",
    document: Annotated[str, Form()] = "",
    editing: Annotated[str, Form()] = "",
) -> HTMLResponse:
    """The step form for a new step, or filled in with the step `editing`'s values."""
    _require_csrf(console)
    workspace = await _workspace(console, document, action, editing=editing)
    return page(console, "_step_form.html", **workspace)


@router.post("/builder/preview")
async def preview(console: ConsoleDep, document: Annotated[str, Form()] = "") -> HTMLResponse:
    _require_csrf(console)
    return page(console, "_preview.html", **await _preview(console, document))


@router.post("/builder/add-step")
async def add_step(request: Request, console: ConsoleDep) -> HTMLResponse:
    """Adds the step form's step to the YAML, or with `editing` replaces that step with it
    (renamed in the other steps' `needs` too), unless validating the result finds a problem
    with that step: then the form comes back with each problem at its field."""
    _require_csrf(console)
    form = await request.form()
    values = {key: str(value) for key, value in form.items()}
    text = values.pop("document", "")
    action = values.pop("action", "")
    editing = values.pop("editing", "")
    needs = [str(value) for value in form.getlist("step.needs")]
    chosen = (await _catalog(console)).get(action)
    parsed = _parse(text)
    if chosen is None or parsed.error is not None:
        problem = parsed.error or "choose an action"
        workspace = await _workspace(
            console, text, action, values, {"action": problem}, editing, needs
        )
        return page(console, "_workspace.html", **workspace)
    steps = _steps_of(parsed.document)
    step = step_from_form(chosen["name"], fields_of(chosen["with_schema"]), values, needs)
    if _step_named(steps, editing) is None:
        index, placed = len(steps), [*steps, step]
    else:
        index = steps.index(_step_named(steps, editing))
        placed = replaced(steps, editing, step)
    candidate = {**parsed.document, "steps": placed}
    field_errors: dict[str, str] = {}
    for found in await _problems(console, candidate):
        name = form_field_of(found["path"], index)
        if name is not None:
            field_errors.setdefault(name, found["message"])
    if field_errors:
        workspace = await _workspace(console, text, action, values, field_errors, editing, needs)
    else:
        workspace = await _workspace(console, dump(candidate))
    return page(console, "_workspace.html", **workspace)


@router.post("/builder/parse")
async def parse(console: ConsoleDep, document: Annotated[str, Form()] = "") -> JSONResponse:
    """YAML to the JSON document the browser then saves through the API."""
    _require_csrf(console)
    parsed = _parse(document)
    if parsed.error is not None:
        body = {"detail": parsed.error, "errors": [{"path": "document", "message": parsed.error}]}
        return JSONResponse(body, status_code=422)
    return JSONResponse(parsed.document)


# --- read-only lists ---


@dataclass(frozen=True)
class Listing:
    title: str
    api_path: str
    permission: str
    columns: tuple[str, ...]
    # Columns computed from an item rather than read from it.
    computed: Mapping[str, Callable[[dict[str, Any]], str]] = field(default_factory=dict)
    # Where an item is edited (its id appended; "new" creates one), and who may.
    edit_path: str | None = None
    manager: str | None = None


LISTINGS = {
    "targets": Listing(
        "Targets",
        "/targets",
        "targets:read",
        ("name", "address", "protocol", "port", "os", "groups", "host_key_fingerprint"),
        edit_path="/targets/",
        manager="targets:manage",
    ),
    "groups": Listing(
        "Groups",
        "/target-groups",
        "targets:read",
        ("name", "description", "member_count"),
        edit_path="/groups/",
        manager="targets:manage",
    ),
    "credentials": Listing(
        "Credentials",
        "/credentials",
        "credentials:read",
        ("name", "kind", "username", "usable_by", "public_key_fingerprint", "rotated_at"),
        {"usable_by": lambda item: GrantsPublic.model_validate(item["grants"]).summary()},
        edit_path="/credentials/",
        manager="credentials:manage",
    ),
    "discovery": Listing(
        "Discovery scans",
        "/discovery/scans",
        "discovery:read",
        ("name", "status", "hosts_found", "requested_by", "created_at", "finished_at"),
        edit_path="/discovery/",
        manager="discovery:run",
    ),
    "schedules": Listing(
        "Schedules",
        "/schedules",
        "schedules:read",
        ("name", "cron", "timezone", "paused", "overlap", "executor", "note"),
        edit_path="/schedules/",
        manager="schedules:manage",
    ),
    "triggers": Listing(
        "Triggers",
        "/triggers",
        "triggers:read",
        ("name", "source", "enabled", "when", "dedup_window", "rate_limit", "created_by"),
        edit_path="/triggers/",
        manager="triggers:manage",
    ),
    "channels": Listing(
        "Notification channels",
        "/notification-channels",
        "channels:read",
        ("name", "service", "url_redacted", "created_at"),
        edit_path="/channels/",
        manager="channels:manage",
    ),
    "users": Listing(
        "Users",
        "/users",
        "users:read",
        ("username", "display_name", "email", "role", "disabled"),
        edit_path="/users/",
        manager="users:manage",
    ),
    "audit": Listing(
        "Audit log",
        "/audit",
        "audit:read",
        ("occurred_at", "actor_username", "action", "outcome", "resource_type", "client_address"),
    ),
}


@router.get("/lists/{name}")
async def listing(name: str, console: ConsoleDep, offset: int = 0) -> HTMLResponse:
    found = LISTINGS.get(name)
    if found is None:
        raise ApiError(404, f"no list named {name!r}")
    answer = None
    if console.can(found.permission):
        answer = await console.get(found.api_path, limit=PAGE, offset=max(offset, 0))
        for item in answer["items"]:
            item.update({column: cell(item) for column, cell in found.computed.items()})
    return page(console, "listing.html", listing=found, name=name, answer=answer)
