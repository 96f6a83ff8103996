"""Schedules: operators define them, viewers read them; pause, resume, trigger, backfill."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Query, status

from opsconductor.api.auth import AuditDep
from opsconductor.api.deps import PageDep, SessionDep, WorkflowsDep
from opsconductor.api.permissions import ScheduleManager, ScheduleReader
from opsconductor.models.page import Page
from opsconductor.models.schedule import (
    BackfillAccepted,
    BackfillRange,
    BackfillRequest,
    FirePreview,
    FirePreviewQuery,
    PauseRequest,
    ScheduleCreate,
    SchedulePublic,
    ScheduleUpdate,
    TriggerRequest,
)
from opsconductor.services import schedules

router = APIRouter(prefix="/schedules", tags=["schedules"])


@router.get("", name="schedule.list")
async def list_schedules(
    _: ScheduleReader,
    session: SessionDep,
    workflows: WorkflowsDep,
    page: PageDep,
    job_id: uuid.UUID | None = None,
) -> Page[SchedulePublic]:
    return await schedules.list_schedules(session, workflows, job_id, page)


@router.post("", name="schedule.create", status_code=status.HTTP_201_CREATED)
async def create_schedule(
    body: ScheduleCreate,
    principal: ScheduleManager,
    session: SessionDep,
    workflows: WorkflowsDep,
    entry: AuditDep,
) -> SchedulePublic:
    return await schedules.add_schedule(session, workflows, body, principal.user.username, entry)


@router.get("/preview", name="schedule.preview")
async def preview_schedule(
    query: Annotated[FirePreviewQuery, Query()], _: ScheduleReader
) -> FirePreview:
    """The cron expression in words and its next five fires in the time zone, computed before
    the schedule exists (a bad expression or zone is a 422 naming `query.cron` or
    `query.timezone`)."""
    return schedules.preview_fires(query)


@router.get("/{id}", name="schedule.read")
async def get_schedule(
    id: uuid.UUID, _: ScheduleReader, session: SessionDep, workflows: WorkflowsDep
) -> SchedulePublic:
    return await schedules.read_schedule(session, workflows, id)


@router.patch("/{id}", name="schedule.update")
async def update_schedule(
    id: uuid.UUID,
    body: ScheduleUpdate,
    principal: ScheduleManager,
    session: SessionDep,
    workflows: WorkflowsDep,
    entry: AuditDep,
) -> SchedulePublic:
    entry.detail["fields"] = sorted(body.model_fields_set)
    return await schedules.edit_schedule(session, workflows, id, body, principal.user.username)


@router.delete("/{id}", name="schedule.delete", status_code=status.HTTP_204_NO_CONTENT)
async def delete_schedule(
    id: uuid.UUID, _: ScheduleManager, session: SessionDep, workflows: WorkflowsDep, entry: AuditDep
) -> None:
    await schedules.remove_schedule(session, workflows, id, entry)


@router.post("/{id}/pause", name="schedule.pause")
async def pause_schedule(
    id: uuid.UUID,
    _: ScheduleManager,
    session: SessionDep,
    workflows: WorkflowsDep,
    entry: AuditDep,
    body: Annotated[PauseRequest | None, Body()] = None,
) -> SchedulePublic:
    entry.detail["note"] = note = (body or PauseRequest()).note
    return await schedules.pause_schedule(session, workflows, id, True, note)


@router.post("/{id}/resume", name="schedule.resume")
async def resume_schedule(
    id: uuid.UUID,
    _: ScheduleManager,
    session: SessionDep,
    workflows: WorkflowsDep,
    entry: AuditDep,
    body: Annotated[PauseRequest | None, Body()] = None,
) -> SchedulePublic:
    """The note is replaced (by an empty one if none is given)."""
    entry.detail["note"] = note = (body or PauseRequest()).note
    return await schedules.pause_schedule(session, workflows, id, False, note)


@router.post("/{id}/trigger", name="schedule.trigger", status_code=status.HTTP_202_ACCEPTED)
async def trigger_schedule(
    id: uuid.UUID,
    _: ScheduleManager,
    session: SessionDep,
    workflows: WorkflowsDep,
    entry: AuditDep,
    body: Annotated[TriggerRequest | None, Body()] = None,
) -> dict[str, str]:
    """Starts a run now; it shows in `recent_runs` (and among the job's runs) once started."""
    overlap = (body or TriggerRequest()).overlap
    entry.detail["overlap"] = overlap.value
    await schedules.trigger(session, workflows, id, overlap)
    return {"status": "triggered", "overlap": overlap.value}


@router.get("/{id}/backfill", name="schedule.backfill_preview")
async def preview_backfill(
    id: uuid.UUID,
    span: Annotated[BackfillRange, Query()],
    _: ScheduleReader,
    session: SessionDep,
    workflows: WorkflowsDep,
) -> BackfillAccepted:
    """The runs `POST` with the same range would start, starting none."""
    return await schedules.backfill_times(session, workflows, id, span)


@router.post("/{id}/backfill", name="schedule.backfill", status_code=status.HTTP_202_ACCEPTED)
async def backfill_schedule(
    id: uuid.UUID,
    body: BackfillRequest,
    _: ScheduleManager,
    session: SessionDep,
    workflows: WorkflowsDep,
    entry: AuditDep,
) -> BackfillAccepted:
    """Runs every time the schedule would have fired in [start, end), at once or in turn as
    `overlap` says."""
    accepted = await schedules.backfill(session, workflows, id, body)
    entry.detail.update(start=body.start.isoformat(), end=body.end.isoformat(), runs=accepted.runs)
    return accepted
