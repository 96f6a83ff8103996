"""Jobs: validate, create, read, save new versions, delete, and start runs."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response, status

from opsconductor.api.auth import AuditDep, authorized
from opsconductor.api.deps import PageDep, SessionDep, SettingsDep, TemporalDep
from opsconductor.db import commit_or_undo
from opsconductor.errors import DependencyUnavailable
from opsconductor.models.job import JobPublic, JobVersion, JobVersionPublic, ValidationAnswer
from opsconductor.models.page import Page
from opsconductor.models.run import RunAccepted, RunCreate
from opsconductor.security.rbac import Permission, Principal
from opsconductor.services import jobs, runs, schedules

router = APIRouter(prefix="/jobs", tags=["jobs"])

Reader = Annotated[Principal, authorized(Permission.jobs_read)]
Author = Annotated[Principal, authorized(Permission.jobs_manage)]
Runner = Annotated[Principal, authorized(Permission.jobs_run)]
# The job document is validated by our own validator, which names the path of each problem
# inside the document; its JSON Schema is published at GET /steps and in the docs.
DocumentBody = Annotated[dict[str, Any], Body(description="A job document (see docs/jobs.md)")]


@router.post("/validate", name="job.validate", response_model=ValidationAnswer)
async def validate_job(
    document: DocumentBody, principal: Author, session: SessionDep
) -> ValidationAnswer:
    report = (await jobs.check(session, document)).report
    return ValidationAnswer(
        valid=report.valid,
        errors=[{"path": item.path, "message": item.message} for item in report.problems],
    )


@router.post("", name="job.create", response_model=JobPublic, status_code=201)
async def create_job(
    document: DocumentBody, principal: Author, session: SessionDep, entry: AuditDep
) -> JobPublic:
    job = await jobs.create_job(session, document, principal.user.username)
    entry.on("job", job.id)
    return job


@router.get("", name="job.list", response_model=Page[JobPublic])
async def list_jobs(
    principal: Reader,
    session: SessionDep,
    page: PageDep,
    q: Annotated[str | None, Query(max_length=100, description="Name or description")] = None,
) -> Page[JobPublic]:
    return await jobs.list_jobs(session, q, page.limit, page.offset)


@router.get("/{id}", name="job.get", response_model=JobPublic)
async def get_job(id: uuid.UUID, principal: Reader, session: SessionDep) -> JobPublic:
    return await jobs.get_job(session, id)


@router.put("/{id}", name="job.update", response_model=JobPublic)
async def update_job(
    id: uuid.UUID,
    document: DocumentBody,
    principal: Author,
    session: SessionDep,
    entry: AuditDep,
    response: Response,
) -> JobPublic:
    job, changed = await jobs.update_job(session, id, document, principal.user.username)
    entry.detail["new_version"] = changed
    # Tells scripts (`opsconductor apply`) whether anything changed without diffing.
    response.headers["X-OpsConductor-Changed"] = "true" if changed else "false"
    return job


@router.delete("/{id}", name="job.delete", status_code=status.HTTP_204_NO_CONTENT)
async def delete_job(
    id: uuid.UUID, principal: Author, session: SessionDep, temporal: TemporalDep
) -> None:
    await jobs.delete_job(session, id)
    undo = await schedules.delete_job_schedules(session, temporal, id)
    await commit_or_undo(session, undo)


@router.get("/{id}/versions", name="job.versions", response_model=Page[JobVersionPublic])
async def list_versions(
    id: uuid.UUID, principal: Reader, session: SessionDep, page: PageDep
) -> Page[JobVersion]:
    return await jobs.list_versions(session, id, page.limit, page.offset)


@router.get("/{id}/versions/{version}", name="job.version", response_model=JobVersionPublic)
async def get_version(
    id: uuid.UUID, version: int, principal: Reader, session: SessionDep
) -> JobVersion:
    _, found = await jobs.get_job_version(session, id, version)
    return found


@router.post(
    "/{id}/runs", name="run.start", response_model=RunAccepted, status_code=status.HTTP_202_ACCEPTED
)
async def start_run(
    id: uuid.UUID,
    body: RunCreate,
    principal: Runner,
    session: SessionDep,
    temporal: TemporalDep,
    entry: AuditDep,
    request: Request,
    settings: SettingsDep,
) -> RunAccepted:
    prepared = await runs.prepare_run(
        session,
        await jobs.get_job(session, id),
        body,
        runs.RunOrigin(
            triggered_by=principal.user.username,
            request_id=getattr(request.state, "request_id", None),
            batch_size=settings.run_batch_size,
        ),
    )
    entry.on("run", prepared.run.id)
    # The run row must exist before its workflow can write to it: commit, then launch.
    await session.commit()
    try:
        await runs.launch(temporal, prepared.request)
    except DependencyUnavailable as error:
        # Recorded for good (the request's own transaction is about to roll back).
        await runs.mark_not_launched(session, prepared.run.id, error.detail)
        await session.commit()
        raise
    return RunAccepted(
        id=prepared.run.id, status=prepared.run.status, workflow_id=prepared.run.workflow_id
    )
