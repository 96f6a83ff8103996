"""`POST /hooks/{id}`: where Alertmanager, GitHub or any signed sender delivers a trigger's
events. Outside `/api/v1` and its sign-in: the trigger's own secret authenticates the sender
(services/trigger_hooks.py, docs/triggers.md)."""

import uuid

from fastapi import APIRouter, Request, status

from opsconductor.api.auth import ClientDep
from opsconductor.api.deps import KeyRingDep, SessionDep, SettingsDep, WorkflowsDep
from opsconductor.models.base import utcnow
from opsconductor.models.trigger import HookAccepted
from opsconductor.services import trigger_hooks

router = APIRouter(prefix="/hooks", tags=["triggers"])


@router.post(
    "/{id}",
    name="trigger.deliver",
    status_code=status.HTTP_202_ACCEPTED,
    openapi_extra={"security": []},
)
async def deliver(
    id: uuid.UUID,
    request: Request,
    session: SessionDep,
    workflows: WorkflowsDep,
    keyring: KeyRingDep,
    settings: SettingsDep,
    client: ClientDep,
) -> HookAccepted:
    delivery = trigger_hooks.Delivery(
        # The raw bytes: the signature is over them, and nothing parses them before it is checked.
        body=await request.body(),
        headers={name.lower(): value for name, value in request.headers.items()},
        source_address=client.address,
        received_at=utcnow(),
        request_id=getattr(request.state, "request_id", None),
        batch_size=settings.run_batch_size,
    )
    return await trigger_hooks.receive(session, workflows, keyring, id, delivery)
