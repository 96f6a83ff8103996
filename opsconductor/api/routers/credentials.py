"""Credentials: admins manage them; everyone who may read sees them without secret material."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status
from sqlmodel import col, select

from opsconductor.api.auth import AuditDep
from opsconductor.api.deps import KeyRingDep, PageDep, SessionDep
from opsconductor.api.permissions import CredentialManager, CredentialReader
from opsconductor.models.credential import (
    CredentialAccess,
    CredentialAccessPublic,
    CredentialCreate,
    CredentialKind,
    CredentialPublic,
    CredentialRotate,
    CredentialUpdate,
    GrantsPublic,
    GrantsUpdate,
)
from opsconductor.models.page import Page
from opsconductor.services import credential_grants, vault
from opsconductor.services.paging import paginate

router = APIRouter(prefix="/credentials", tags=["credentials"])


@router.get("", name="credential.list")
async def list_credentials(
    _: CredentialReader,
    session: SessionDep,
    page: PageDep,
    kind: Annotated[CredentialKind | None, Query()] = None,
) -> Page[CredentialPublic]:
    return await vault.list_credentials(session, kind, page)


@router.post("", name="credential.create", status_code=status.HTTP_201_CREATED)
async def create_credential(
    body: CredentialCreate,
    _: CredentialManager,
    session: SessionDep,
    keyring: KeyRingDep,
    entry: AuditDep,
) -> CredentialPublic:
    credential = await vault.create_credential(session, keyring, body)
    entry.on("credential", credential.id)
    entry.detail.update(name=credential.name, kind=credential.kind)
    return await vault.public(session, credential)


@router.get("/{id}", name="credential.read")
async def get_credential(
    id: uuid.UUID, _: CredentialReader, session: SessionDep
) -> CredentialPublic:
    return await vault.public(session, await vault.get_credential(session, id))


@router.patch("/{id}", name="credential.update")
async def update_credential(
    id: uuid.UUID,
    body: CredentialUpdate,
    _: CredentialManager,
    session: SessionDep,
    entry: AuditDep,
) -> CredentialPublic:
    entry.detail["fields"] = sorted(body.model_fields_set)
    return await vault.public(session, await vault.update_credential(session, id, body))


@router.post("/{id}/rotate", name="credential.rotate")
async def rotate_credential(
    id: uuid.UUID,
    body: CredentialRotate,
    _: CredentialManager,
    session: SessionDep,
    keyring: KeyRingDep,
) -> CredentialPublic:
    credential = await vault.rotate_credential(session, keyring, id, body.secret)
    return await vault.public(session, credential)


@router.delete("/{id}", name="credential.delete", status_code=status.HTTP_204_NO_CONTENT)
async def delete_credential(id: uuid.UUID, _: CredentialManager, session: SessionDep) -> None:
    await vault.delete_credential(session, id)


@router.get(
    "/{id}/access", name="credential.access_log", response_model=Page[CredentialAccessPublic]
)
async def credential_access(
    id: uuid.UUID, _: CredentialReader, session: SessionDep, page: PageDep
) -> Page[CredentialAccess]:
    """When the credential was decrypted (always on a worker), for what, and where."""
    await vault.get_credential(session, id)
    statement = (
        select(CredentialAccess)
        .where(CredentialAccess.credential_id == id)
        .order_by(col(CredentialAccess.accessed_at).desc())
    )
    return await paginate(session, statement, page)


@router.get("/{id}/grants", name="credential.grants")
async def get_grants(id: uuid.UUID, _: CredentialManager, session: SessionDep) -> GrantsPublic:
    """Who besides admins may use the credential (docs/security.md)."""
    return await credential_grants.read_grants(session, id)


@router.put("/{id}/grants", name="credential.grants.update")
async def put_grants(
    id: uuid.UUID,
    body: GrantsUpdate,
    principal: CredentialManager,
    session: SessionDep,
    entry: AuditDep,
) -> GrantsPublic:
    """Replaces the credential's grants; runs already started keep theirs only until their
    next decryption, which checks again."""
    entry.on("credential", id)
    grants = await credential_grants.replace_grants(session, id, body, principal.user.username)
    entry.detail.update(users=[user.username for user in grants.users], roles=grants.roles)
    return grants
