"""Target groups and their membership. Jobs select groups by name, so a group a live job
selects can be neither renamed nor deleted."""

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.errors import Conflict, FieldProblem, InputInvalid
from opsconductor.models.base import public_view, utcnow
from opsconductor.models.page import Page
from opsconductor.models.target import (
    GroupMembers,
    Target,
    TargetGroup,
    TargetGroupCreate,
    TargetGroupMember,
    TargetGroupPublic,
    TargetGroupUpdate,
)
from opsconductor.services.jobs import DOCUMENT, live_jobs_where
from opsconductor.services.lookup import get_or_404
from opsconductor.services.paging import PageRequest, paginate_as

# -- names ------------------------------------------------------------------------------------


async def group_ids(session: AsyncSession, names: Sequence[str], path: str) -> dict[str, uuid.UUID]:
    """The id of each named group; InputInvalid names each unknown one (at `path.N`)."""
    found = dict(
        (
            await session.exec(
                select(TargetGroup.name, TargetGroup.id).where(col(TargetGroup.name).in_(names))
            )
        ).all()
    )
    problems = [
        FieldProblem(f"{path}.{index}", f"no target group named {name!r}", "unknown_group")
        for index, name in enumerate(names)
        if name not in found
    ]
    if problems:
        raise InputInvalid("unknown target groups", problems)
    return found


async def check_groups(session: AsyncSession, names: Sequence[str], path: str) -> None:
    """Raises InputInvalid naming each unknown group (at `path.N`)."""
    await group_ids(session, names, path)


async def set_groups(
    session: AsyncSession, target_id: uuid.UUID, names: Sequence[str], path: str = "body.groups"
) -> None:
    """Makes the target a member of exactly the named groups."""
    ids = await group_ids(session, names, path)
    await session.exec(
        delete(TargetGroupMember).where(col(TargetGroupMember.target_id) == target_id)
    )
    session.add_all(
        TargetGroupMember(target_id=target_id, group_id=group_id) for group_id in set(ids.values())
    )


# -- reading ----------------------------------------------------------------------------------


async def get_group(session: AsyncSession, group_id: uuid.UUID) -> TargetGroup:
    return await get_or_404(session, TargetGroup, group_id, "target group")


async def _member_counts(
    session: AsyncSession, group_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    rows = await session.exec(
        select(TargetGroupMember.group_id, func.count())
        .where(col(TargetGroupMember.group_id).in_(group_ids))
        .group_by(col(TargetGroupMember.group_id))
    )
    return dict(rows.all())


def _public(group: TargetGroup, count: int) -> TargetGroupPublic:
    return public_view(TargetGroupPublic, group, member_count=count)


async def public(session: AsyncSession, group: TargetGroup) -> TargetGroupPublic:
    return _public(group, (await _member_counts(session, [group.id])).get(group.id, 0))


async def _publics(session: AsyncSession, rows: Sequence[TargetGroup]) -> list[TargetGroupPublic]:
    counts = await _member_counts(session, [row.id for row in rows])
    return [_public(row, counts.get(row.id, 0)) for row in rows]


async def list_groups(
    session: AsyncSession, search: str | None, page: PageRequest
) -> Page[TargetGroupPublic]:
    statement = select(TargetGroup).order_by(col(TargetGroup.name))
    if search:
        statement = statement.where(func.lower(TargetGroup.name).like(f"%{search.lower()}%"))
    return await paginate_as(session, statement, page, _publics)


# -- writing ----------------------------------------------------------------------------------


async def _group_by_name(session: AsyncSession, name: str) -> TargetGroup | None:
    return (await session.exec(select(TargetGroup).where(TargetGroup.name == name))).first()


async def create_group(session: AsyncSession, data: TargetGroupCreate) -> TargetGroup:
    if await _group_by_name(session, data.name) is not None:
        raise Conflict(f"a target group named {data.name!r} already exists")
    group = TargetGroup(name=data.name, description=data.description)
    session.add(group)
    await session.flush()
    return group


async def _jobs_selecting(session: AsyncSession, group_name: str) -> list[str]:
    """Live jobs whose current version selects the group by name."""
    return await live_jobs_where(session, DOCUMENT["targets"]["groups"].contains([group_name]))


async def update_group(
    session: AsyncSession, group_id: uuid.UUID, data: TargetGroupUpdate
) -> TargetGroup:
    group = await get_group(session, group_id)
    changes = data.model_dump(exclude_unset=True)
    if "name" in changes and changes["name"] is None:
        raise InputInvalid.at("body.name", "may not be null")
    if "name" in changes and changes["name"] != group.name:
        if await _group_by_name(session, changes["name"]) is not None:
            raise Conflict(f"a target group named {changes['name']!r} already exists")
        # Jobs select groups by name: renaming one under them would silently empty their runs.
        jobs = await _jobs_selecting(session, group.name)
        if jobs:
            raise Conflict(
                f"target group {group.name!r} is selected by job(s) {', '.join(jobs)}; "
                "change their selectors first",
                jobs=jobs,
            )
    for name, value in changes.items():
        setattr(group, name, value if value is not None else "")
    group.updated_at = utcnow()
    session.add(group)
    await session.flush()
    return group


async def delete_group(session: AsyncSession, group_id: uuid.UUID) -> None:
    group = await get_group(session, group_id)
    members = list(
        (
            await session.exec(
                select(Target.name)
                .join(TargetGroupMember, col(TargetGroupMember.target_id) == col(Target.id))
                .where(TargetGroupMember.group_id == group.id)
                .order_by(col(Target.name))
            )
        ).all()
    )
    jobs = await _jobs_selecting(session, group.name)
    if members or jobs:
        used_by = []
        if members:
            used_by.append(f"target(s) {', '.join(members)}")
        if jobs:
            used_by.append(f"job(s) {', '.join(jobs)}")
        raise Conflict(
            f"target group {group.name!r} is used by {' and '.join(used_by)}",
            targets=members,
            jobs=jobs,
        )
    await session.delete(group)
    await session.flush()


async def set_members(
    session: AsyncSession, group_id: uuid.UUID, body: GroupMembers
) -> TargetGroup:
    """Replaces the group's membership with exactly the targets `body` selects."""
    group = await get_group(session, group_id)
    found = set(
        (await session.exec(select(Target.id).where(col(Target.id).in_(body.target_ids)))).all()
    )
    problems = [
        FieldProblem(f"body.target_ids.{index}", "names no target", "unknown_target")
        for index, target_id in enumerate(body.target_ids)
        if target_id not in found
    ]
    named = dict(
        (
            await session.exec(
                select(Target.name, Target.id).where(col(Target.name).in_(body.names))
            )
        ).all()
    )
    problems += [
        FieldProblem(f"body.names.{index}", f"no target named {name!r}", "unknown_target")
        for index, name in enumerate(body.names)
        if name not in named
    ]
    if problems:
        raise InputInvalid("unknown targets", problems)
    tagged = (
        (await session.exec(select(Target.id).where(col(Target.tags).contains(body.tags)))).all()
        if body.tags
        else []
    )
    wanted = list(dict.fromkeys([*body.target_ids, *named.values(), *tagged]))
    await session.exec(delete(TargetGroupMember).where(col(TargetGroupMember.group_id) == group.id))
    session.add_all(
        TargetGroupMember(target_id=target_id, group_id=group.id) for target_id in wanted
    )
    group.updated_at = utcnow()
    session.add(group)
    await session.flush()
    return group
