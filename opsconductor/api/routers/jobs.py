"""Jobs: validate, create, read, save new versions, delete, and start runs."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request, Response, status

from opsconductor.api.auth import AuditDep
from opsconductor.api.deps import PageDep, SessionDep, SettingsDep, WorkflowsDep
from opsconductor.api.permissions import JobAuthor, JobReader, JobRunner
from opsconductor.models.job import JobPublic, JobVersion, JobVersionPublic, ValidationAnswer
from opsconductor.models.page import Page
from opsconductor.models.run import IDEMPOTENCY_KEY_PATTERN, RunAccepted, RunCreate
from opsconductor.services import jobs, runs, schedules
from opsconductor.services.credential_grants import Requester

router = APIRouter(prefix="/jobs", tags=["jobs"])

# The job document is validated by our own validator, which names the path of each problem
# inside the document; its JSON Schema is published at GET /steps and in the docs.
DocumentBody = Annotated[dict[str, Any], Body(description="A job document (see docs/jobs.md)")]


@router.post("/validate", name="job.validate")
async def validate_job(
    document: DocumentBody, principal: JobAuthor, session: SessionDep
) -> ValidationAnswer:
    return await jobs.validate(session, document, Requester.of(principal))


@router.post("", name="job.create", status_code=201)
async def create_job(
    document: DocumentBody, principal: JobAuthor, session: SessionDep, entry: AuditDep
) -> JobPublic:
    job = await jobs.create_job(session, document, Requester.of(principal))
    entry.on("job", job.id)
    return job


@router.get("", name="job.list")
async def list_jobs(
    principal: JobReader,
    session: SessionDep,
    page: PageDep,
    q: Annotated[str | None, Query(max_length=100, description="Name or description")] = None,
) -> Page[JobPublic]:
    return await jobs.list_jobs(session, q, page)


@router.get("/{id}", name="job.get")
async def get_job(id: uuid.UUID, principal: JobReader, session: SessionDep) -> JobPublic:
    return await jobs.get_job(session, id)


@router.put("/{id}", name="job.update")
async def update_job(
    id: uuid.UUID,
    document: DocumentBody,
    principal: JobAuthor,
    session: SessionDep,
    entry: AuditDep,
    response: Response,
) -> JobPublic:
    job, changed = await jobs.update_job(session, id, document, Requester.of(principal))
    entry.detail["new_version"] = changed
    # Tells scripts (`opsconductor apply`) whether anything changed without diffing.
    response.headers["X-OpsConductor-Changed"] = "true" if changed else "false"
    return job


@router.delete("/{id}", name="job.delete", status_code=status.HTTP_204_NO_CONTENT)
async def delete_job(
    id: uuid.UUID, principal: JobAuthor, session: SessionDep, workflows: WorkflowsDep
) -> None:
    await schedules.delete_job(session, workflows, id)


@router.get("/{id}/versions", name="job.versions", response_model=Page[JobVersionPublic])
async def list_versions(
    id: uuid.UUID, principal: JobReader, session: SessionDep, page: PageDep
) -> Page[JobVersion]:
    return await jobs.list_versions(session, id, page)


@router.get("/{id}/versions/{version}", name="job.version", response_model=JobVersionPublic)
async def get_version(
    id: uuid.UUID, version: int, principal: JobReader, session: SessionDep
) -> JobVersion:
    _, found = await jobs.get_job_version(session, id, version)
    return found


@router.post("/{id}/runs", name="run.start", status_code=status.HTTP_202_ACCEPTED)
async def start_run(
    id: uuid.UUID,
    body: RunCreate,
    principal: JobRunner,
    session: SessionDep,
    workflows: WorkflowsDep,
    entry: AuditDep,
    request: Request,
    settings: SettingsDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=128,
            pattern=IDEMPOTENCY_KEY_PATTERN,
            description="The same key (per job and user) answers the same run, not a second",
        ),
    ] = None,
) -> RunAccepted:
    origin = runs.RunOrigin(
        triggered_by=principal.user.username,
        request_id=getattr(request.state, "request_id", None),
        batch_size=settings.run_batch_size,
        idempotency_key=idempotency_key,
        user_id=principal.user.id,
        requester=Requester.of(principal),
    )
    return await runs.start_run(session, workflows, id, body, origin, entry)
