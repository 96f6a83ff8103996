"""Jobs: saving a document makes a new immutable version; an unchanged document makes none.

Library steps are expanded when a job is saved (jobspec/expansion.py): a version stores the
expanded document that runs, the document as written, and the library versions it pinned.
"""

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.errors import Conflict, FieldProblem, InputInvalid, NotFound
from opsconductor.jobspec.document import JobDocument
from opsconductor.jobspec.expansion import JobCheck, LibraryPin, check_job, referenced_libraries
from opsconductor.models.base import utcnow
from opsconductor.models.job import Job, JobPublic, JobVersion, ValidationAnswer
from opsconductor.models.page import Page
from opsconductor.services import credential_grants
from opsconductor.services.credential_grants import Requester
from opsconductor.services.libraries import installed_libraries
from opsconductor.services.paging import PageRequest, paginate, with_items

# The stored document, for conditions on the JSONB value (e.g. `.contains({...})`).
DOCUMENT = JobVersion.__table__.c.document  # type: ignore[attr-defined]


async def live_jobs_where(session: AsyncSession, condition: ColumnElement[bool]) -> list[str]:
    """Names of the jobs (not deleted) whose current version's document meets the condition:
    what refuses renaming or deleting something that jobs name."""
    rows = await session.exec(
        select(Job.name)
        .join(
            JobVersion,
            (col(JobVersion.job_id) == col(Job.id))
            & (col(JobVersion.version) == col(Job.current_version)),
        )
        .where(col(Job.deleted_at).is_(None), condition)
        .order_by(col(Job.name))
    )
    return list(rows.all())


async def check(session: AsyncSession, raw: Any) -> JobCheck:
    """The document validated with its library steps expanded from the installed libraries."""
    return check_job(raw, await installed_libraries(session, referenced_libraries(raw)))


@dataclass(frozen=True, slots=True)
class _Stored:
    """What a job version stores of a checked document."""

    document: dict[str, Any]
    source: dict[str, Any] | None
    libraries: list[dict[str, Any]]

    def version(self, job_id: uuid.UUID, number: int, actor: str) -> JobVersion:
        return JobVersion(
            job_id=job_id,
            version=number,
            document=self.document,
            source=self.source,
            libraries=self.libraries,
            created_by=actor,
        )

    def matches(self, saved: JobVersion) -> bool:
        return (saved.document, saved.source, saved.libraries) == (
            self.document,
            self.source,
            self.libraries,
        )


async def validate(session: AsyncSession, raw: Any, requester: Requester) -> ValidationAnswer:
    """What `POST /jobs/validate` answers: the document's problems, and once it is valid, the
    credentials it names that the requester may not use, with the document as a save would
    store it (so `apply --dry-run` compares what the server would keep)."""
    report = (await check(session, raw)).report
    if not report.valid or report.document is None:
        problems, document = list(report.problems), None
    else:
        problems = await credential_grants.document_problems(session, requester, report.document)
        document = report.document.model_dump(mode="json", by_alias=True)
    return ValidationAnswer(
        valid=not problems,
        errors=[{"path": item.path, "message": item.message} for item in problems],
        document=document,
    )


async def checked(
    session: AsyncSession, raw: Any, requester: Requester
) -> tuple[JobDocument, _Stored]:
    """The validated document, and what its version stores. A document naming a credential
    the requester may not use is refused (403)."""
    result = await check(session, raw)
    report = result.report
    if not report.valid or report.document is None:
        paths = ", ".join(problem.path for problem in report.problems[:10])
        raise InputInvalid(f"the job document is invalid at: {paths}", report.problems)
    await credential_grants.check_document(session, requester, report.document, "body")
    stored = _Stored(
        document=report.document.model_dump(mode="json", by_alias=True),
        source=result.source,
        libraries=[pin.model_dump() for pin in result.pins],
    )
    return report.document, stored


async def _get(session: AsyncSession, job_id: uuid.UUID) -> Job:
    job = await session.get(Job, job_id)
    if job is None or job.deleted_at is not None:
        raise NotFound(f"no job {job_id}")
    return job


async def _by_name(session: AsyncSession, name: str) -> Job | None:
    result = await session.exec(select(Job).where(Job.name == name, col(Job.deleted_at).is_(None)))
    return result.first()


async def current_version(session: AsyncSession, job: Job) -> JobVersion:
    result = await session.exec(
        select(JobVersion).where(
            JobVersion.job_id == job.id, JobVersion.version == job.current_version
        )
    )
    return result.one()


def public(job: Job, version: JobVersion) -> JobPublic:
    return JobPublic(
        id=job.id,
        name=job.name,
        description=job.description,
        version=version.version,
        document=version.document,
        source=version.source,
        libraries=[LibraryPin.model_validate(pin) for pin in version.libraries],
        created_by=job.created_by,
        created_at=job.created_at,
        updated_at=job.updated_at,
    )


async def create_job(session: AsyncSession, raw: Any, requester: Requester) -> JobPublic:
    actor = requester.username
    document, stored = await checked(session, raw, requester)
    if await _by_name(session, document.name) is not None:
        raise Conflict(f"a job named {document.name!r} already exists")
    job = Job(name=document.name, description=document.description, created_by=actor)
    session.add(job)
    await session.flush()
    version = stored.version(job.id, 1, actor)
    session.add(version)
    await session.flush()
    return public(job, version)


async def update_job(
    session: AsyncSession, job_id: uuid.UUID, raw: Any, requester: Requester
) -> tuple[JobPublic, bool]:
    """Saves the document as the job's next version; answers whether a version was made."""
    actor = requester.username
    job = await _get(session, job_id)
    document, stored = await checked(session, raw, requester)
    latest = await current_version(session, job)
    if stored.matches(latest):
        return public(job, latest), False
    if document.name != job.name:
        other = await _by_name(session, document.name)
        if other is not None and other.id != job.id:
            raise Conflict(f"a job named {document.name!r} already exists")
    job.name = document.name
    job.description = document.description
    job.current_version += 1
    job.updated_at = utcnow()
    version = stored.version(job.id, job.current_version, actor)
    session.add_all([job, version])
    await session.flush()
    return public(job, version), True


async def get_job(session: AsyncSession, job_id: uuid.UUID) -> JobPublic:
    job = await _get(session, job_id)
    return public(job, await current_version(session, job))


async def job_named_in_body(session: AsyncSession, job_id: uuid.UUID) -> JobPublic:
    """The job a request's `job_id` names (a schedule's, a trigger's); 422 at `body.job_id`
    when there is none."""
    try:
        return await get_job(session, job_id)
    except NotFound:
        raise InputInvalid(
            f"no job {job_id}", [FieldProblem("body.job_id", "no such job", "not_found")]
        ) from None


async def get_job_by_name(session: AsyncSession, name: str) -> JobPublic:
    job = await _by_name(session, name)
    if job is None:
        raise NotFound(f"no job named {name!r}")
    return public(job, await current_version(session, job))


async def get_job_version(
    session: AsyncSession, job_id: uuid.UUID, number: int
) -> tuple[Job, JobVersion]:
    job = await _get(session, job_id)
    result = await session.exec(
        select(JobVersion).where(JobVersion.job_id == job_id, JobVersion.version == number)
    )
    version = result.first()
    if version is None:
        raise NotFound(f"job {job_id} has no version {number}")
    return job, version


async def list_jobs(
    session: AsyncSession, search: str | None, page: PageRequest
) -> Page[JobPublic]:
    statement = (
        select(Job, JobVersion)
        .join(
            JobVersion,
            (col(JobVersion.job_id) == col(Job.id))
            & (col(JobVersion.version) == col(Job.current_version)),
        )
        .where(col(Job.deleted_at).is_(None))
        .order_by(col(Job.name))
    )
    if search:
        pattern = f"%{search.lower()}%"
        statement = statement.where(
            func.lower(Job.name).like(pattern) | func.lower(Job.description).like(pattern)
        )
    rows = await paginate(session, statement, page)
    return with_items(rows, [public(job, version) for job, version in rows.items])


async def list_versions(
    session: AsyncSession, job_id: uuid.UUID, page: PageRequest
) -> Page[JobVersion]:
    await _get(session, job_id)
    statement = (
        select(JobVersion)
        .where(JobVersion.job_id == job_id)
        .order_by(col(JobVersion.version).desc())
    )
    return await paginate(session, statement, page)


async def delete_job(session: AsyncSession, job_id: uuid.UUID) -> None:
    """Soft delete: runs keep naming the version they ran, and the name becomes free (names
    are unique among jobs that are not deleted)."""
    job = await _get(session, job_id)
    job.deleted_at = utcnow()
    session.add(job)
