"""Schedules: operators define them, viewers read them; pause, resume, trigger, backfill."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, status

from opsconductor.api.auth import AuditDep, authorized
from opsconductor.api.deps import PageDep, SessionDep, TemporalDep
from opsconductor.db import commit_or_undo
from opsconductor.models.page import Page
from opsconductor.models.schedule import (
    BackfillAccepted,
    BackfillRequest,
    PauseRequest,
    ScheduleCreate,
    SchedulePublic,
    ScheduleUpdate,
    TriggerRequest,
)
from opsconductor.security.rbac import Permission, Principal
from opsconductor.services import schedules
from opsconductor.services.audit import AuditEntry

router = APIRouter(prefix="/schedules", tags=["schedules"])

Reader = Annotated[Principal, authorized(Permission.schedules_read)]
Manager = Annotated[Principal, authorized(Permission.schedules_manage)]


@router.get("", name="schedule.list", response_model=Page[SchedulePublic])
async def list_schedules(
    _: Reader,
    session: SessionDep,
    temporal: TemporalDep,
    page: PageDep,
    job_id: uuid.UUID | None = None,
) -> Page[SchedulePublic]:
    return await schedules.list_schedules(session, temporal, job_id, page.limit, page.offset)


@router.post(
    "", name="schedule.create", response_model=SchedulePublic, status_code=status.HTTP_201_CREATED
)
async def create_schedule(
    body: ScheduleCreate,
    principal: Manager,
    session: SessionDep,
    temporal: TemporalDep,
    entry: AuditDep,
) -> SchedulePublic:
    change = await schedules.create_schedule(session, temporal, body, principal.user.username)
    entry.on("schedule", change.schedule.id)
    entry.detail["name"] = change.schedule.name
    return await _committed(session, temporal, change)


@router.get("/{id}", name="schedule.read", response_model=SchedulePublic)
async def get_schedule(
    id: uuid.UUID, _: Reader, session: SessionDep, temporal: TemporalDep
) -> SchedulePublic:
    (answer,) = await schedules.present(
        session, temporal, [await schedules.get_schedule(session, id)]
    )
    return answer


@router.patch("/{id}", name="schedule.update", response_model=SchedulePublic)
async def update_schedule(
    id: uuid.UUID,
    body: ScheduleUpdate,
    _: Manager,
    session: SessionDep,
    temporal: TemporalDep,
    entry: AuditDep,
) -> SchedulePublic:
    entry.detail["fields"] = sorted(body.model_fields_set)
    change = await schedules.update_schedule(session, temporal, id, body)
    return await _committed(session, temporal, change)


@router.delete("/{id}", name="schedule.delete", status_code=status.HTTP_204_NO_CONTENT)
async def delete_schedule(
    id: uuid.UUID, _: Manager, session: SessionDep, temporal: TemporalDep, entry: AuditDep
) -> None:
    undo = await schedules.delete_schedule(session, temporal, id)
    entry.on("schedule", id)
    await commit_or_undo(session, undo)


@router.post("/{id}/pause", name="schedule.pause", response_model=SchedulePublic)
async def pause_schedule(
    id: uuid.UUID,
    _: Manager,
    session: SessionDep,
    temporal: TemporalDep,
    entry: AuditDep,
    body: Annotated[PauseRequest | None, Body()] = None,
) -> SchedulePublic:
    return await _set_paused(session, temporal, entry, id, True, body)


@router.post("/{id}/resume", name="schedule.resume", response_model=SchedulePublic)
async def resume_schedule(
    id: uuid.UUID,
    _: Manager,
    session: SessionDep,
    temporal: TemporalDep,
    entry: AuditDep,
    body: Annotated[PauseRequest | None, Body()] = None,
) -> SchedulePublic:
    """The note is replaced (by an empty one if none is given)."""
    return await _set_paused(session, temporal, entry, id, False, body)


async def _set_paused(
    session: SessionDep,
    temporal: TemporalDep,
    entry: AuditEntry,
    schedule_id: uuid.UUID,
    paused: bool,
    body: PauseRequest | None,
) -> SchedulePublic:
    note = (body or PauseRequest()).note
    entry.detail["note"] = note
    change = await schedules.set_paused(session, temporal, schedule_id, paused, note)
    return await _committed(session, temporal, change)


@router.post("/{id}/trigger", name="schedule.trigger", status_code=status.HTTP_202_ACCEPTED)
async def trigger_schedule(
    id: uuid.UUID,
    _: Manager,
    session: SessionDep,
    temporal: TemporalDep,
    entry: AuditDep,
    body: Annotated[TriggerRequest | None, Body()] = None,
) -> dict[str, str]:
    """Starts a run now; it shows in `recent_runs` (and among the job's runs) once started."""
    overlap = (body or TriggerRequest()).overlap
    entry.detail["overlap"] = overlap.value
    await schedules.trigger(session, temporal, id, overlap)
    return {"status": "triggered", "overlap": overlap.value}


@router.post(
    "/{id}/backfill",
    name="schedule.backfill",
    response_model=BackfillAccepted,
    status_code=status.HTTP_202_ACCEPTED,
)
async def backfill_schedule(
    id: uuid.UUID,
    body: BackfillRequest,
    _: Manager,
    session: SessionDep,
    temporal: TemporalDep,
    entry: AuditDep,
) -> BackfillAccepted:
    """Runs every time the schedule would have fired in [start, end), at once or in turn as
    `overlap` says."""
    accepted = await schedules.backfill(session, temporal, id, body)
    entry.detail.update(start=body.start.isoformat(), end=body.end.isoformat(), runs=accepted.runs)
    return accepted


async def _committed(
    session: SessionDep, temporal: TemporalDep, change: schedules.Change
) -> SchedulePublic:
    # Committed here, not by the session dependency, so a failed commit can undo the
    # Temporal side before the error is answered.
    await commit_or_undo(session, change.undo)
    (answer,) = await schedules.present(session, temporal, [change.schedule])
    return answer
