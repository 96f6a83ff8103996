"""The job engine's view of the inventory: a selector resolved into target snapshots."""

import uuid

from sqlalchemy import ColumnElement, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opsconductor.contracts.steps import TargetSnapshot
from opsconductor.errors import FieldProblem, InputInvalid
from opsconductor.jobspec.document import TargetSelector
from opsconductor.models.target import Target, TargetGroupMember, TargetSelection
from opsconductor.services.targets.groups import group_ids


def snapshot(target: Target) -> TargetSnapshot:
    return TargetSnapshot.model_validate(target, from_attributes=True)


async def resolve_selector(session: AsyncSession, selector: TargetSelector) -> list[TargetSnapshot]:
    """The union of the selector's groups, its tags (all must match) and its names, by name.

    Unknown group or target names are errors (at `targets.groups.N` / `targets.names.N`): a
    typo must not quietly shrink a run.
    """
    problems: list[FieldProblem] = []
    groups: dict[str, uuid.UUID] = {}
    if selector.groups:
        try:
            groups = await group_ids(session, selector.groups, "targets.groups")
        except InputInvalid as error:
            problems += error.problems
    if selector.names:
        known = set(
            (
                await session.exec(select(Target.name).where(col(Target.name).in_(selector.names)))
            ).all()
        )
        problems += [
            FieldProblem(f"targets.names.{index}", f"no target named {name!r}", "unknown_target")
            for index, name in enumerate(selector.names)
            if name not in known
        ]
    if problems:
        raise InputInvalid("the target selector names unknown groups or targets", problems)
    conditions: list[ColumnElement[bool]] = []
    if groups:
        conditions.append(
            col(Target.id).in_(
                select(TargetGroupMember.target_id).where(
                    col(TargetGroupMember.group_id).in_(list(groups.values()))
                )
            )
        )
    if selector.tags:
        conditions.append(col(Target.tags).contains(selector.tags))
    if selector.names:
        conditions.append(col(Target.name).in_(selector.names))
    if not conditions:
        return []
    rows = await session.exec(select(Target).where(or_(*conditions)).order_by(col(Target.name)))
    return [snapshot(target) for target in rows]


SELECTION_SAMPLE = 20


async def preview_selector(session: AsyncSession, selector: TargetSelector) -> TargetSelection:
    """How many targets a selector matches now, and the first names: what a run started with
    it would act on, asked before starting it."""
    names = [target.name for target in await resolve_selector(session, selector)]
    return TargetSelection(count=len(names), names=names[:SELECTION_SAMPLE])
