"""One's own API tokens."""

import uuid

from fastapi import APIRouter, status

from opsconductor.api.auth import AuditDep
from opsconductor.api.deps import PageDep, SessionDep
from opsconductor.api.permissions import Account
from opsconductor.models.api_token import ApiToken, ApiTokenCreate, ApiTokenCreated, ApiTokenPublic
from opsconductor.models.base import utcnow
from opsconductor.models.page import Page
from opsconductor.services import tokens

router = APIRouter(prefix="/tokens", tags=["tokens"])


@router.post("", name="token.create", status_code=status.HTTP_201_CREATED)
async def create_token(
    body: ApiTokenCreate, principal: Account, session: SessionDep, entry: AuditDep
) -> ApiTokenCreated:
    created = await tokens.create_token(session, principal, body, utcnow())
    entry.on("token", created.id)
    entry.detail["role"] = created.role
    return created


@router.get("", name="token.list", response_model=Page[ApiTokenPublic])
async def list_tokens(principal: Account, session: SessionDep, page: PageDep) -> Page[ApiToken]:
    return await tokens.list_own(session, principal.user.id, page)


@router.delete("/{id}", name="token.revoke", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_token(id: uuid.UUID, principal: Account, session: SessionDep) -> None:
    await tokens.revoke(session, principal, id, utcnow())
