"""Runs: list, inspect, follow the log, cancel, and decide approvals."""

import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, status
from fastapi.responses import StreamingResponse

from opsconductor.api.auth import AuditDep
from opsconductor.api.deps import PageDep, SessionDep, SessionmakerDep, WorkflowsDep
from opsconductor.api.permissions import RunApprover, RunCanceller, RunReader
from opsconductor.contracts.runs import RunStatus, StepStatus
from opsconductor.jobspec.document import STEP_ID_PATTERN
from opsconductor.models.page import Page
from opsconductor.models.run import (
    ApprovalCreate,
    RunDetail,
    RunListItem,
    RunLogLine,
    RunLogLinePublic,
    RunTargetPublic,
)
from opsconductor.services import run_grid, runs
from opsconductor.services.run_grid import RunInclude

router = APIRouter(prefix="/runs", tags=["runs"])


@router.get("", name="run.list")
async def list_runs(
    principal: RunReader,
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
        page=page,
    )


@router.get("/{id}", name="run.get")
async def get_run(
    id: uuid.UUID,
    principal: RunReader,
    session: SessionDep,
    include: Annotated[
        RunInclude | None,
        Query(description="`targets` adds every target's steps (the whole grid) to the answer"),
    ] = None,
) -> RunDetail:
    return await run_grid.get_run(session, id, include)


@router.get("/{id}/targets", name="run.targets")
async def list_run_targets(
    id: uuid.UUID,
    principal: RunReader,
    session: SessionDep,
    page: PageDep,
    status: Annotated[
        StepStatus | None,
        Query(description="The target's status, or with `step` that step's status on it"),
    ] = None,
    step: Annotated[str | None, Query(pattern=STEP_ID_PATTERN)] = None,
) -> Page[RunTargetPublic]:
    return await run_grid.list_targets(session, id, status=status, step=step, page=page)


@router.get(
    "/{id}/logs",
    name="run.logs",
    response_model=list[RunLogLinePublic],
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def run_logs(
    id: uuid.UUID,
    principal: RunReader,
    session: SessionDep,
    sessionmaker: SessionmakerDep,
    request: Request,
    follow: bool = False,
    after: Annotated[int, Query(ge=0, description="Only lines after this line id")] = 0,
    last_event_id: Annotated[int | None, Header(alias="Last-Event-ID")] = None,
) -> list[RunLogLine] | StreamingResponse:
    if not follow:
        return await runs.read_log(session, id, after)
    start = max(after, last_event_id or 0)
    followed = await runs.follow_log(session, sessionmaker, id, start, request.is_disconnected)
    return StreamingResponse(
        _server_sent(followed),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store"},
    )


async def _server_sent(followed: AsyncIterator[RunLogLine | RunStatus]) -> AsyncIterator[str]:
    async for item in followed:
        if isinstance(item, RunLogLine):
            payload = RunLogLinePublic.model_validate(item, from_attributes=True)
            yield f"id: {item.id}\nevent: line\ndata: {payload.model_dump_json()}\n\n"
        else:
            yield f"event: end\ndata: {json.dumps({'status': item})}\n\n"


@router.post("/{id}/cancel", name="run.cancel", status_code=status.HTTP_202_ACCEPTED)
async def cancel_run(
    id: uuid.UUID, principal: RunCanceller, session: SessionDep, workflows: WorkflowsDep
) -> dict[str, str]:
    await runs.cancel_run(session, workflows, id)
    return {"status": "cancelling"}


@router.post("/{id}/approvals", name="run.approve", status_code=status.HTTP_200_OK)
async def decide_approval(
    id: uuid.UUID,
    body: ApprovalCreate,
    principal: RunApprover,
    session: SessionDep,
    workflows: WorkflowsDep,
    entry: AuditDep,
) -> dict[str, str]:
    outcome = await runs.decide_approval(session, workflows, id, body, principal, entry)
    return {"step": body.step, "decision": outcome}
