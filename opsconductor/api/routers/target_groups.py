"""Target groups: operators manage them; membership through targets' `groups` or PUT members."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from opsconductor.api.auth import AuditDep
from opsconductor.api.deps import PageDep, SessionDep
from opsconductor.api.permissions import TargetManager, TargetReader
from opsconductor.models.page import Page
from opsconductor.models.target import (
    GroupMembers,
    TargetGroupCreate,
    TargetGroupPublic,
    TargetGroupUpdate,
)
from opsconductor.services import targets

router = APIRouter(prefix="/target-groups", tags=["targets"])


@router.get("", name="target_group.list")
async def list_groups(
    _: TargetReader,
    session: SessionDep,
    page: PageDep,
    q: Annotated[str | None, Query(max_length=200, description="Part of the name")] = None,
) -> Page[TargetGroupPublic]:
    return await targets.list_groups(session, q, page)


@router.post("", name="target_group.create", status_code=status.HTTP_201_CREATED)
async def create_group(
    body: TargetGroupCreate, _: TargetManager, session: SessionDep, entry: AuditDep
) -> TargetGroupPublic:
    group = await targets.create_group(session, body)
    entry.on("target_group", group.id)
    entry.detail["name"] = group.name
    return await targets.group_public(session, group)


@router.get("/{id}", name="target_group.read")
async def get_group(id: uuid.UUID, _: TargetReader, session: SessionDep) -> TargetGroupPublic:
    return await targets.group_public(session, await targets.get_group(session, id))


@router.patch("/{id}", name="target_group.update")
async def update_group(
    id: uuid.UUID, body: TargetGroupUpdate, _: TargetManager, session: SessionDep, entry: AuditDep
) -> TargetGroupPublic:
    entry.detail["fields"] = sorted(body.model_fields_set)
    return await targets.group_public(session, await targets.update_group(session, id, body))


@router.put("/{id}/members", name="target_group.set_members")
async def set_members(
    id: uuid.UUID, body: GroupMembers, _: TargetManager, session: SessionDep, entry: AuditDep
) -> TargetGroupPublic:
    group = await targets.group_public(session, await targets.set_members(session, id, body))
    entry.detail["members"] = group.member_count
    return group


@router.delete("/{id}", name="target_group.delete", status_code=status.HTTP_204_NO_CONTENT)
async def delete_group(id: uuid.UUID, _: TargetManager, session: SessionDep) -> None:
    await targets.delete_group(session, id)
