"""Event triggers, the definitions: operators and admins manage them; the secret is sealed on
the way in and never answered. What a delivery does is in services/trigger_hooks.py.

A trigger's runs act for who created or last changed it (`run_as`, as for schedules), so the
same credential-grant check as saving a job is made against its job's document on every save.
"""

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.errors import Conflict, FieldProblem, InputInvalid, NotFound
from opsconductor.jobspec.document import JobDocument
from opsconductor.jobspec.durations import format_duration
from opsconductor.jobspec.templates import is_template, syntax_problem
from opsconductor.models.base import utcnow
from opsconductor.models.page import Page
from opsconductor.models.trigger import (
    Trigger,
    TriggerCreate,
    TriggerEvent,
    TriggerEventPublic,
    TriggerPublic,
    TriggerUpdate,
)
from opsconductor.security.envelope import KeyRing
from opsconductor.services import credential_grants, jobs
from opsconductor.services.credential_grants import Requester
from opsconductor.services.paging import PageRequest, paginate, paginate_as, with_items
from opsconductor.services.sealing import sealed_columns

HOOK_PATH = "/hooks"


def associated_data(trigger_id: uuid.UUID) -> bytes:
    return f"trigger:{trigger_id}".encode()


def _sealed_secret(keyring: KeyRing, trigger_id: uuid.UUID, secret: str) -> dict[str, Any]:
    return sealed_columns(keyring, secret.encode(), associated_data(trigger_id))


def public(trigger: Trigger) -> TriggerPublic:
    return TriggerPublic(
        id=trigger.id,
        name=trigger.name,
        job_id=trigger.job_id,
        source=trigger.source,
        url=f"{HOOK_PATH}/{trigger.id}",
        parameters=trigger.parameters,
        targets=trigger.targets,
        when=trigger.when,
        dedup_key=trigger.dedup_key,
        dedup_window=format_duration(timedelta(seconds=trigger.dedup_window_seconds)),
        on_resolved=trigger.on_resolved,
        enabled=trigger.enabled,
        rate_limit=trigger.rate_limit,
        created_by=trigger.created_by,
        created_at=trigger.created_at,
        updated_at=trigger.updated_at,
    )


def _template_problems(value: Any, path: str) -> list[FieldProblem]:
    """Every template in the value that does not parse, at its path (`body.parameters.mount`)."""
    if isinstance(value, str):
        problem = syntax_problem(value) if is_template(value) else None
        return [FieldProblem(path, problem, "template_syntax")] if problem else []
    if isinstance(value, dict):
        return [
            item
            for key, inner in value.items()
            for item in _template_problems(inner, f"{path}.{key}")
        ]
    if isinstance(value, list):
        return [
            item
            for index, inner in enumerate(value)
            for item in _template_problems(inner, f"{path}.{index}")
        ]
    return []


def _check_templates(trigger: Trigger) -> None:
    problems = [
        problem
        for field in ("parameters", "targets", "when", "dedup_key")
        for problem in _template_problems(getattr(trigger, field), f"body.{field}")
    ]
    if problems:
        raise InputInvalid("the trigger's templates do not parse", problems)


async def _check_job(session: AsyncSession, job_id: uuid.UUID, requester: Requester) -> None:
    """The job exists and its saver may use every credential it names, as when saving it."""
    job = await jobs.job_named_in_body(session, job_id)
    document = JobDocument.model_validate(job.document)
    await credential_grants.check_document(session, requester, document, "job")


async def _check_name_free(session: AsyncSession, name: str, trigger_id: uuid.UUID) -> None:
    taken = await session.exec(
        select(Trigger.id).where(Trigger.name == name, Trigger.id != trigger_id)
    )
    if taken.first() is not None:
        raise Conflict(f"a trigger named {name!r} already exists")


async def get_trigger(session: AsyncSession, trigger_id: uuid.UUID) -> Trigger:
    trigger = await session.get(Trigger, trigger_id)
    if trigger is None:
        raise NotFound(f"no trigger {trigger_id}")
    return trigger


async def list_triggers(session: AsyncSession, page: PageRequest) -> Page[TriggerPublic]:
    statement = select(Trigger).order_by(col(Trigger.name))
    return await paginate_as(session, statement, page, _publics)


async def _publics(session: AsyncSession, rows: Sequence[Trigger]) -> list[TriggerPublic]:
    return [public(row) for row in rows]


async def create_trigger(
    session: AsyncSession, keyring: KeyRing, body: TriggerCreate, requester: Requester
) -> Trigger:
    trigger_id = uuid.uuid4()
    trigger = Trigger(
        id=trigger_id,
        name=body.name,
        job_id=body.job_id,
        source=body.source,
        parameters=body.parameters,
        targets=None if body.targets is None else body.targets.model_dump(mode="json"),
        when=body.when,
        dedup_key=body.dedup_key,
        dedup_window_seconds=int(body.dedup_window.total_seconds()),
        on_resolved=body.on_resolved,
        enabled=body.enabled,
        rate_limit=body.rate_limit,
        created_by=requester.username,
        run_as=requester.username,
        **_sealed_secret(keyring, trigger_id, body.secret),
    )
    _check_templates(trigger)
    await _check_job(session, trigger.job_id, requester)
    await _check_name_free(session, trigger.name, trigger_id)
    session.add(trigger)
    await session.flush()
    return trigger


async def update_trigger(
    session: AsyncSession,
    keyring: KeyRing,
    trigger_id: uuid.UUID,
    body: TriggerUpdate,
    requester: Requester,
) -> Trigger:
    trigger = await get_trigger(session, trigger_id)
    changes = body.model_dump(exclude_unset=True)
    nullable = {"targets", "when", "dedup_key"}
    for name, value in changes.items():
        if value is None and name not in nullable:
            raise InputInvalid.at(f"body.{name}", "may not be null")
    if "secret" in changes:
        trigger.sqlmodel_update(_sealed_secret(keyring, trigger.id, changes.pop("secret")))
    if "dedup_window" in changes:
        window: timedelta = changes.pop("dedup_window")
        trigger.dedup_window_seconds = int(window.total_seconds())
    if "targets" in changes and body.targets is not None:
        changes["targets"] = body.targets.model_dump(mode="json")
    trigger.sqlmodel_update(changes)
    _check_templates(trigger)
    if "name" in changes:
        await _check_name_free(session, trigger.name, trigger.id)
    # Whoever changes a trigger answers for its runs from now on, as for a schedule.
    await _check_job(session, trigger.job_id, requester)
    trigger.run_as = requester.username
    trigger.updated_at = utcnow()
    session.add(trigger)
    await session.flush()
    return trigger


async def delete_trigger(session: AsyncSession, trigger_id: uuid.UUID) -> Trigger:
    trigger = await get_trigger(session, trigger_id)
    await session.delete(trigger)
    await session.flush()
    return trigger


async def list_events(
    session: AsyncSession, trigger_id: uuid.UUID, page: PageRequest
) -> Page[TriggerEventPublic]:
    await get_trigger(session, trigger_id)
    statement = (
        select(TriggerEvent)
        .where(TriggerEvent.trigger_id == trigger_id)
        .order_by(col(TriggerEvent.received_at).desc(), col(TriggerEvent.id))
    )
    rows = await paginate(session, statement, page)
    return with_items(
        rows, [TriggerEventPublic.model_validate(row, from_attributes=True) for row in rows.items]
    )
