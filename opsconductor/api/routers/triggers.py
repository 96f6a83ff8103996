"""Event triggers: operators and admins manage them, viewers read them and their delivery log;
the secret is write-only."""

import uuid

from fastapi import APIRouter, Request, status

from opsconductor.api.auth import AuditDep, ClientDep
from opsconductor.api.deps import KeyRingDep, PageDep, SessionDep, SettingsDep, WorkflowsDep
from opsconductor.api.permissions import TriggerManager, TriggerReader
from opsconductor.models.base import utcnow
from opsconductor.models.page import Page
from opsconductor.models.trigger import (
    TriggerCreate,
    TriggerEventPublic,
    TriggerPublic,
    TriggerTestRequest,
    TriggerTestResult,
    TriggerUpdate,
)
from opsconductor.services import trigger_hooks, triggers
from opsconductor.services.credential_grants import Requester

router = APIRouter(prefix="/triggers", tags=["triggers"])


@router.get("", name="trigger.list")
async def list_triggers(
    _: TriggerReader, session: SessionDep, page: PageDep
) -> Page[TriggerPublic]:
    return await triggers.list_triggers(session, page)


@router.post("", name="trigger.create", status_code=status.HTTP_201_CREATED)
async def create_trigger(
    body: TriggerCreate,
    principal: TriggerManager,
    session: SessionDep,
    keyring: KeyRingDep,
    entry: AuditDep,
) -> TriggerPublic:
    trigger = await triggers.create_trigger(session, keyring, body, Requester.of(principal))
    entry.on("trigger", trigger.id)
    entry.detail.update(name=trigger.name, source=trigger.source, job_id=str(trigger.job_id))
    return triggers.public(trigger)


@router.get("/{id}", name="trigger.read")
async def get_trigger(id: uuid.UUID, _: TriggerReader, session: SessionDep) -> TriggerPublic:
    return triggers.public(await triggers.get_trigger(session, id))


@router.patch("/{id}", name="trigger.update")
async def update_trigger(
    id: uuid.UUID,
    body: TriggerUpdate,
    principal: TriggerManager,
    session: SessionDep,
    keyring: KeyRingDep,
    entry: AuditDep,
) -> TriggerPublic:
    # The names of the fields that changed, never their values (the secret is one).
    entry.detail["fields"] = sorted(body.model_fields_set)
    trigger = await triggers.update_trigger(session, keyring, id, body, Requester.of(principal))
    return triggers.public(trigger)


@router.delete("/{id}", name="trigger.delete", status_code=status.HTTP_204_NO_CONTENT)
async def delete_trigger(
    id: uuid.UUID, _: TriggerManager, session: SessionDep, entry: AuditDep
) -> None:
    trigger = await triggers.delete_trigger(session, id)
    entry.detail["name"] = trigger.name


@router.get("/{id}/events", name="trigger.events")
async def list_events(
    id: uuid.UUID, _: TriggerReader, session: SessionDep, page: PageDep
) -> Page[TriggerEventPublic]:
    """The delivery log, newest first: one row per event, or per delivery refused whole."""
    return await triggers.list_events(session, id, page)


@router.post("/{id}/test", name="trigger.test")
async def send_test_event(
    id: uuid.UUID,
    body: TriggerTestRequest,
    request: Request,
    _: TriggerManager,
    session: SessionDep,
    workflows: WorkflowsDep,
    settings: SettingsDep,
    client: ClientDep,
    entry: AuditDep,
) -> TriggerTestResult:
    """A test event through the delivery path without the secret: by default a dry run that
    starts nothing; logged as a test (docs/triggers.md, Test events)."""
    entry.on("trigger", id)
    entry.detail.update(dry_run=body.dry_run, sample=body.payload is None)
    sender = trigger_hooks.TestSender(
        source_address=client.address,
        request_id=getattr(request.state, "request_id", None),
        batch_size=settings.run_batch_size,
        received_at=utcnow(),
    )
    return await trigger_hooks.send_test(session, workflows, id, body, sender)
