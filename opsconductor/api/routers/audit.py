"""The audit log, for admins."""

from typing import Annotated

from fastapi import APIRouter, Query

from opsconductor.api.deps import PageDep, SessionDep
from opsconductor.api.permissions import Auditor
from opsconductor.models.audit import AuditEvent, AuditEventPublic, AuditFilter
from opsconductor.models.page import Page
from opsconductor.services import audit

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", name="audit.list", response_model=Page[AuditEventPublic])
async def list_audit_events(
    _: Auditor,
    session: SessionDep,
    page: PageDep,
    filters: Annotated[AuditFilter, Query()],
) -> Page[AuditEvent]:
    return await audit.list_events(session, filters, page)
