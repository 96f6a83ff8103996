"""Runs: list, inspect, follow the log, cancel, and decide approvals."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, status
from fastapi.responses import StreamingResponse
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from opsconductor.api.auth import AuditDep, authorized
from opsconductor.api.deps import PageDep, SessionDep, SessionmakerDep, TemporalDep
from opsconductor.contracts.runs import (
    APPROVAL_NOT_PENDING,
    APPROVAL_NOT_PERMITTED,
    TERMINAL_RUN_STATUSES,
    ApprovalDecision,
    RunStatus,
)
from opsconductor.errors import Conflict, DependencyUnavailable, PermissionDenied
from opsconductor.models.page import Page
from opsconductor.models.run import (
    ApprovalCreate,
    RunDetail,
    RunListItem,
    RunLogLine,
    RunLogLinePublic,
)
from opsconductor.security.rbac import Permission, Principal
from opsconductor.services import runs

router = APIRouter(prefix="/runs", tags=["runs"])

Reader = Annotated[Principal, authorized(Permission.runs_read)]
Canceller = Annotated[Principal, authorized(Permission.runs_cancel)]
Approver = Annotated[Principal, authorized(Permission.runs_approve)]

FOLLOW_POLL_SECONDS = 0.5
LOG_PAGE = 1000


@router.get("", name="run.list", response_model=Page[RunListItem])
async def list_runs(
    principal: Reader,
    session: SessionDep,
    page: PageDep,
    job_id: uuid.UUID | None = None,
    status: RunStatus | None = None,
    since: datetime | None = None,
    parent_run_id: uuid.UUID | None = None,
) -> Page[RunListItem]:
    return await runs.list_runs(
        session,
        job_id=job_id,
        status=status,
        since=since,
        parent_run_id=parent_run_id,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/{id}", name="run.get", response_model=RunDetail)
async def get_run(id: uuid.UUID, principal: Reader, session: SessionDep) -> RunDetail:
    return await runs.get_run(session, id)


@router.get(
    "/{id}/logs",
    name="run.logs",
    response_model=list[RunLogLinePublic],
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def run_logs(
    id: uuid.UUID,
    principal: Reader,
    session: SessionDep,
    sessionmaker: SessionmakerDep,
    request: Request,
    follow: bool = False,
    after: Annotated[int, Query(ge=0, description="Only lines after this line id")] = 0,
    last_event_id: Annotated[int | None, Header(alias="Last-Event-ID")] = None,
) -> list[RunLogLine] | StreamingResponse:
    await runs.get_run_row(session, id)
    if not follow:
        return await runs.log_lines(session, id, after, LOG_PAGE)
    start = max(after, last_event_id or 0)

    async def events() -> AsyncIterator[str]:
        cursor = start
        while not await request.is_disconnected():
            async with sessionmaker() as reader:
                lines = await runs.log_lines(reader, id, cursor, LOG_PAGE)
                run = await runs.get_run_row(reader, id)
            for line in lines:
                cursor = line.id or cursor
                payload = RunLogLinePublic.model_validate(line, from_attributes=True)
                yield f"id: {cursor}\nevent: line\ndata: {payload.model_dump_json()}\n\n"
            if not lines and run.status in TERMINAL_RUN_STATUSES:
                yield f"event: end\ndata: {json.dumps({'status': run.status})}\n\n"
                return
            if not lines:
                await asyncio.sleep(FOLLOW_POLL_SECONDS)

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )


@router.post("/{id}/cancel", name="run.cancel", status_code=status.HTTP_202_ACCEPTED)
async def cancel_run(
    id: uuid.UUID, principal: Canceller, session: SessionDep, temporal: TemporalDep
) -> dict[str, str]:
    run = await runs.get_run_row(session, id)
    if run.status in TERMINAL_RUN_STATUSES:
        raise Conflict(f"run {id} already ended ({run.status})")
    try:
        await temporal.get_workflow_handle(run.workflow_id).cancel()
    except RPCError as error:
        raise DependencyUnavailable(
            f"Temporal did not accept the cancel: {error.message}"
        ) from None
    return {"status": "cancelling"}


@router.post("/{id}/approvals", name="run.approve", status_code=status.HTTP_200_OK)
async def decide_approval(
    id: uuid.UUID,
    body: ApprovalCreate,
    principal: Approver,
    session: SessionDep,
    temporal: TemporalDep,
    entry: AuditDep,
) -> dict[str, str]:
    run = await runs.get_run_row(session, id)
    entry.detail.update({"step": body.step, "decision": body.decision})
    if run.status in TERMINAL_RUN_STATUSES:
        raise Conflict(f"run {id} already ended ({run.status})")
    decision = ApprovalDecision(
        step=body.step,
        approve=body.decision == "approve",
        by=principal.user.username,
        role=str(principal.role),
        comment=body.comment,
    )
    handle = temporal.get_workflow_handle(run.workflow_id)
    try:
        outcome = await handle.execute_update("decide-approval", decision, result_type=str)
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        if isinstance(cause, ApplicationError) and cause.type == APPROVAL_NOT_PERMITTED:
            raise PermissionDenied(cause.message) from None
        if isinstance(cause, ApplicationError) and cause.type == APPROVAL_NOT_PENDING:
            raise Conflict(cause.message) from None
        raise
    except RPCError as error:
        raise DependencyUnavailable(
            f"Temporal did not take the decision: {error.message}"
        ) from None
    return {"step": body.step, "decision": outcome}
